"""multimodal_tf: image+text classifiers in Keras 3, served raw by TF Serving.

The path of one sample: a manifest row (`data.manifest.read_manifest`) is
streamed by `data.dataset.make_dataset` through a `MultimodalPreprocessor`
(raw text + image bytes -> tensors, in the TF graph) into a
`MultimodalClassifier` (text and image encoders, a fusion layer, a head);
`serving.export.export_saved_model` puts the same preprocessor in front of the
model in a SavedModel that TF Serving runs on raw input.
"""

from multimodal_tf.config import RunConfig, load_config
from multimodal_tf.data.dataset import make_dataset
from multimodal_tf.data.demo import make_demo_dataset
from multimodal_tf.data.labels import split_labels
from multimodal_tf.data.manifest import Record, read_manifest, split_records
from multimodal_tf.data.readers import (
    ReadResult,
    read_any,
    read_class_folders,
    read_dataframe,
    read_hateful_memes,
    read_mvsa_raw,
)
from multimodal_tf.data.validate import ValidationReport, check_images, validate_manifest
from multimodal_tf.errors import ConfigError, DataError, MultimodalTFError
from multimodal_tf.layers.fusion import (
    FUSIONS,
    AttentionFusion,
    ConcatFusion,
    CrossAttentionFusion,
    Fusion,
    GatedFusion,
    LateFusion,
)
from multimodal_tf.layers.heads.classification_head import ClassificationHead
from multimodal_tf.layers.modality_dropout import ModalityDropout
from multimodal_tf.layers.preprocessing.image_decoder import ImageDecoder
from multimodal_tf.layers.preprocessing.text_standardizer import TextStandardizer
from multimodal_tf.models.backbone_image_encoder import BackboneImageEncoder
from multimodal_tf.models.classifier import MultimodalClassifier
from multimodal_tf.models.conv_text_encoder import ConvTextEncoder
from multimodal_tf.models.embeddings import load_word_vectors
from multimodal_tf.models.image_encoder import ImageEncoder
from multimodal_tf.models.preprocessor import MultimodalPreprocessor
from multimodal_tf.models.text_encoder import TextEncoder
from multimodal_tf.models.transformer_text_encoder import TransformerTextEncoder
from multimodal_tf.serving.export import export_saved_model
from multimodal_tf.serving.predict import predict_manifest
from multimodal_tf.training.ablation import run_ablation
from multimodal_tf.training.fit import evaluate, train
from multimodal_tf.training.metrics import classification_metrics
from multimodal_tf.training.thresholds import tune_thresholds

__version__ = "0.1.0"

__all__ = [
    "FUSIONS",
    "AttentionFusion",
    "BackboneImageEncoder",
    "ClassificationHead",
    "ConcatFusion",
    "ConfigError",
    "ConvTextEncoder",
    "CrossAttentionFusion",
    "DataError",
    "Fusion",
    "GatedFusion",
    "ImageDecoder",
    "ImageEncoder",
    "LateFusion",
    "ModalityDropout",
    "MultimodalClassifier",
    "MultimodalPreprocessor",
    "MultimodalTFError",
    "ReadResult",
    "Record",
    "RunConfig",
    "TextEncoder",
    "TextStandardizer",
    "TransformerTextEncoder",
    "ValidationReport",
    "check_images",
    "classification_metrics",
    "evaluate",
    "export_saved_model",
    "load_config",
    "load_word_vectors",
    "make_dataset",
    "make_demo_dataset",
    "predict_manifest",
    "read_any",
    "read_class_folders",
    "read_dataframe",
    "read_hateful_memes",
    "read_manifest",
    "read_mvsa_raw",
    "run_ablation",
    "split_labels",
    "split_records",
    "train",
    "tune_thresholds",
    "validate_manifest",
]
