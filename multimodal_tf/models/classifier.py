"""The image+text classification task: encoders, a fusion layer and one or more heads."""

import keras

from multimodal_tf.layers.fusion import FUSIONS, get_fusion
from multimodal_tf.layers.heads.classification_head import ClassificationHead
from multimodal_tf.layers.image_augmentation import image_augmenter
from multimodal_tf.layers.modality_dropout import ModalityDropout
from multimodal_tf.models.base_image_encoder import BaseImageEncoder
from multimodal_tf.models.classifier_graph import GraphLayers, head_outputs
from multimodal_tf.models.embeddings import load_word_vectors
from multimodal_tf.models.encoder_layers import (
    image_encoder_layer,
    resolve_layer,
    text_encoder_layer,
)
from multimodal_tf.models.feature_map_model import build_feature_map_model
from multimodal_tf.models.strategy_fit import StrategyAwareFit
from multimodal_tf.models.task import (
    DEFAULT_HEAD,
    ClassificationTask,
    _heads,
    _multi_label_heads,
)
from multimodal_tf.models.wide_model import WideModel, build_wide_model, wide_path_layers

MODALITIES = ("text", "image")


@keras.saving.register_keras_serializable(package="multimodal_tf")
class MultimodalClassifier(ClassificationTask, StrategyAwareFit, keras.Model):
    """Classifier over a text and an image (or just one of them), with one or more heads.

    A functional `keras.Model` on preprocessed tensors (`{"token_ids": int32
    [batch, sequence_length], "image": float32 [batch, height, width, 3],
    "image_present": float32 [batch]}`, as `MultimodalPreprocessor` makes
    them), so `fit`, `evaluate`, `predict`, callbacks and `.keras` saving work
    as in any Keras model. The path of a sample: each modality's encoder
    turns it into a token sequence; `ModalityDropout` puts a learned
    placeholder where a modality is absent (empty text, empty image bytes) and,
    in training, drops modalities at random; the fusion layer makes features;
    each `ClassificationHead` turns them into probabilities.

    Encoders and the fusion are interchangeable: pass a name (`"lstm"`,
    `"bilstm"`, `"gru"`, `"cnn"`, `"transformer"`; `"conv"` or a
    `keras.applications` backbone; `"concat"`, `"attention"`,
    `"cross_attention"`, `"gated"`, `"late"`) and it is built with the widths
    below, or pass your own layer that keeps the same contract.

    Args:
        class_names: list of str, or dict of str to list of str. Label names in
            output order; a dict makes one head per key (e.g. `{"sentiment":
            [...], "emotion": [...]}`) and dict outputs.
        preprocessor: `MultimodalPreprocessor`. An adapted preprocessor; it sets
            the vocabulary size, the sequence length and the image size.
        modalities: tuple of str. `("text", "image")`, `("text",)` or `("image",)`.
        text_encoder: str or layer. Token ids -> `[batch, length, hidden_dim]`;
            `"hub"` (or a `HubTextEncoder`) reads the raw text instead (input
            `"text"`, tf.string `[batch]`) through a KerasHub preset.
        image_encoder: str or layer. Images (0..255) -> `[batch, tokens, hidden_dim]`.
        fusion: str or `Fusion`. How the token sequences are combined.
        multi_label: bool or list of str. Sigmoid heads with per-class
            thresholds instead of softmax: `True` for every head, or the names
            of the heads that are multi-label.
        embedding_dim: int. Token embedding width.
        lstm_units: int. Recurrent state width (recurrent text encoders).
        hidden_dim: int. Width shared by text and image tokens in the fusion.
        image_filters: tuple of int. Channels of the `"conv"` image encoder.
        grid_size: int. Image tokens form a `grid_size` x `grid_size` grid.
        num_heads: int. Attention heads (attention fusions, Transformer encoder).
        dropout_rate: float. Dropout in the encoders, the fusion and the heads.
        modality_dropout: float. Training-time probability of dropping each
            modality of a sample, so the model also predicts from one alone.
        image_weights: str or None. For a backbone image encoder: `None`,
            `"imagenet"` or a local weights file.
        trainable_backbone: bool. Fine-tune the backbone instead of freezing it.
        backbone_alpha: float. Width multiplier of a MobileNet backbone; must
            match the weights file (e.g. 0.35).
        text_embeddings: str or None. A GloVe-format vectors file that
            initialises the token embeddings (words matched to the vocabulary).
        token_dropout: float. For the `"bag"` text encoder: fraction of
            n-grams hidden from each training text.
        image_augmentation: bool. Random flips, shifts, zooms and contrast
            on training images only (Keras preprocessing layers, identity at
            inference and in the export).
        wide: bool. Wide & Deep: each head also gets the logits of a linear
            model over the TF-IDF bag of the token ids (`WideTextLogits`),
            added before its softmax or sigmoid. Needs the text modality.
        wide_l2: float. With `wide`: logistic regression's L2 penalty on the
            linear model's weights (`WideTextLogits(l2=...)`), `1 / (2 * C * n)`
            for LR's `C` on `n` training rows. 0: none.
        wide_image: bool. With `wide` and the image modality: the wide path
            also holds a linear model over the image encoder's pooled feature
            map (`WideImageLogits`, with the same `wide_l2`). Meant for a
            pretrained backbone, whose features are useful before any
            training; `train()` turns it on only for one (`model.wide_image`).
        text_preset: str. For `text_encoder="hub"`: a KerasHub preset name or
            folder (`HubTextEncoder`); a saved model keeps the encoder itself.
        fine_tune_text: bool. For `"hub"`: train the preset's backbone too.

    Example:
    >>> preprocessor = MultimodalPreprocessor(sequence_length=8, image_size=(32, 32))
    >>> preprocessor.adapt(["a red circle", "a blue square"], min_frequency=1)
    >>> model = MultimodalClassifier(["match", "mismatch"], preprocessor, hidden_dim=8,
    ...                              num_heads=2, image_filters=(8, 8), grid_size=2,
    ...                              fusion="gated")
    >>> model.compile()
    >>> model.predict(preprocessor({"text": ["a red circle"],
    ...     "image": [tf.io.encode_png(tf.zeros([5, 5, 3], tf.uint8))]})).shape
    (1, 2)
    """

    def __init__(
        self,
        class_names,
        preprocessor,
        modalities=MODALITIES,
        text_encoder="lstm",
        image_encoder="conv",
        fusion="attention",
        multi_label=False,
        embedding_dim=64,
        lstm_units=64,
        hidden_dim=64,
        image_filters=(32, 64, 96),
        grid_size=4,
        num_heads=4,
        dropout_rate=0.1,
        modality_dropout=0.0,
        image_weights=None,
        trainable_backbone=False,
        backbone_alpha=1.0,
        text_embeddings=None,
        token_dropout=0.0,
        image_augmentation=False,
        wide=False,
        wide_l2=0.0,
        wide_image=False,
        text_preset="",
        fine_tune_text=False,
        _load_pretrained=True,
        **kwargs,
    ):
        if isinstance(preprocessor, dict):
            preprocessor = keras.layers.deserialize(preprocessor)
        modalities = tuple(modalities)
        unknown = [name for name in modalities if name not in MODALITIES]
        if not modalities or unknown or len(set(modalities)) != len(modalities):
            raise ValueError(
                f"`modalities` must be a non-empty subset of {MODALITIES}; received {modalities}."
            )
        if wide and "text" not in modalities:
            raise ValueError(
                f"`wide=True` adds a linear model over the text; `modalities` "
                f"{modalities} has no text."
            )
        if wide_image and not (wide and "image" in modalities):
            raise ValueError(
                "`wide_image=True` adds the image to the wide path: it needs `wide=True` and "
                f"the image modality; received wide={wide}, modalities {modalities}."
            )
        heads_classes = _heads(class_names)
        multi_label_heads = _multi_label_heads(multi_label, heads_classes)

        # === Layers ===
        text_layer = image_layer = None
        if "text" in modalities:
            text_layer = text_encoder_layer(
                text_encoder,
                preprocessor,
                embedding_dim,
                hidden_dim,
                dropout_rate,
                lstm_units,
                num_heads,
                token_dropout,
                text_preset,
                fine_tune_text,
            )
        if "image" in modalities:
            image_layer = image_encoder_layer(
                image_encoder,
                hidden_dim,
                grid_size,
                dropout_rate,
                image_filters,
                image_weights if _load_pretrained else None,
                trainable_backbone,
                backbone_alpha,
            )
        if wide_image and not isinstance(image_layer, BaseImageEncoder):
            raise ValueError(
                "`wide_image=True` reads the pooled feature map of a `BaseImageEncoder`; "
                f"received a {type(image_layer).__name__}."
            )
        fusion_layer = resolve_layer(fusion)
        if isinstance(fusion_layer, str):
            fusion_layer = get_fusion(
                fusion_layer, hidden_dim, len(modalities), num_heads, dropout_rate
            )
        placeholders = ModalityDropout(
            hidden_dim, len(modalities), rate=modality_dropout, name="modality_dropout"
        )
        head_layers = {
            name: ClassificationHead(
                len(names),
                multi_label=name in multi_label_heads,
                dropout_rate=dropout_rate,
                name=name,
            )
            for name, names in heads_classes.items()
        }
        wide_layers, wide_image_layers = wide_path_layers(
            heads_classes, preprocessor, wide, wide_image, wide_l2
        )

        # === Functional Model ===
        inputs, token_ids, image_present, encode_image = {}, None, None, None
        text = None
        raw_text = getattr(text_layer, "reads_raw_text", False)
        if "text" in modalities and raw_text:
            text = keras.Input((), dtype="string", name="text")
            inputs["text"] = text
        if "text" in modalities and (wide or not raw_text):
            token_ids = keras.Input(
                (preprocessor.sequence_length,), dtype="int32", name="token_ids"
            )
            inputs["token_ids"] = token_ids
        if "image" in modalities:
            image = keras.Input((*preprocessor.image_size, 3), dtype="float32", name="image")
            image_present = keras.Input((), dtype="float32", name="image_present")
            inputs["image"] = image
            inputs["image_present"] = image_present

            def encode_image():
                augmented = image_augmenter()(image) if image_augmentation else image
                if wide_image:
                    return image_layer(augmented, return_pooled=True)
                return image_layer(augmented), None

        layers = GraphLayers(
            text_layer, placeholders, fusion_layer, head_layers, wide_layers, wide_image_layers
        )
        outputs = head_outputs(layers, token_ids, encode_image, image_present, text=text)
        if not isinstance(class_names, dict):
            outputs = outputs[DEFAULT_HEAD]
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)

        # === Config ===
        self.class_names = (
            heads_classes if isinstance(class_names, dict) else heads_classes[DEFAULT_HEAD]
        )
        self.preprocessor = preprocessor
        self.modalities = modalities
        self.text_encoder = text_layer
        self.image_encoder = image_layer
        self.fusion = fusion_layer
        self.multi_label = multi_label if isinstance(multi_label, bool) else list(multi_label)
        self.embedding_dim = embedding_dim
        self.lstm_units = lstm_units
        self.hidden_dim = hidden_dim
        self.image_filters = tuple(image_filters)
        self.grid_size = grid_size
        self.num_heads = num_heads
        self.dropout_rate = dropout_rate
        self.modality_dropout = modality_dropout
        self.image_weights = image_weights
        self.trainable_backbone = trainable_backbone
        self.backbone_alpha = backbone_alpha
        self.text_embeddings = text_embeddings
        self.token_dropout = token_dropout
        self.image_augmentation = image_augmentation
        self.wide = wide
        self.wide_l2 = wide_l2
        self.wide_image = wide_image
        self.text_preset = text_preset
        self.fine_tune_text = fine_tune_text
        self.text_embedding_coverage = None
        if text_embeddings and _load_pretrained and text_layer is not None:
            matrix, found = load_word_vectors(
                text_embeddings, preprocessor.vocabulary, text_layer.embedding_dim
            )
            text_layer.set_embeddings(matrix)
            self.text_embedding_coverage = found / max(len(preprocessor.vocabulary), 1)

    def call(self, inputs, training=None, mask=None):
        if isinstance(inputs, dict):
            inputs = self._used_inputs(inputs)
            if isinstance(mask, dict):
                mask = {name: mask.get(name) for name in self.input_names_used}
        return super().call(inputs, training=training, mask=mask)

    def wide_layer_names(self):
        """The wide path's layers: `<head>_wide` and, with `wide_image`, `<head>_wide_image`."""
        suffixes = ("_wide", "_wide_image") if self.wide_image else ("_wide",)
        return [f"{name}{suffix}" for name in self.head_names for suffix in suffixes]

    def wide_model(self, pooled_features=False):
        """The linear path alone, as a Keras model sharing this model's wide layers.

        Token ids in (and, with `wide_image`, the image and `image_present`),
        each head's softmax (or sigmoid) of the wide logits out, with the same
        output names, so it fits on the same datasets and compiles with
        `default_loss()` and `default_metrics()`. Training it trains the wide
        path of this model, and only that: the image encoder it reads pooled
        features from is not trained by it (images are not augmented there).
        `train()` does that first with `training.wide_epochs`, then freezes
        the path and trains the rest.

        Args:
            pooled_features: bool. With `wide_image`, the model takes the
                image encoder's pooled features (input `"image_pooled"`,
                `[batch, image_encoder.pooled_dim]`) instead of the image, as
                `train()` does when it computes them once for every epoch.

        Example:
        >>> linear = model.wide_model()  # doctest: +SKIP
        >>> linear.compile("adam", model.default_loss(), metrics=model.default_metrics())
        >>> linear.fit(train_batches, validation_data=val_batches, epochs=30)
        """
        if not self.wide:
            raise ValueError("`wide_model()` needs a model built with `wide=True`.")
        return build_wide_model(self, pooled_features)

    def feature_map_model(self):
        """This model over the image encoder's feature map instead of the image.

        A Keras model sharing every layer after `image_encoder.feature_map`:
        inputs `token_ids` (with text), `"image_feature_map"` (`[batch,
        *image_encoder.feature_map_shape]`) and `image_present`; the same
        outputs, and no image augmentation (a map is of the image as it is).
        With a frozen pretrained backbone (`image_encoder.frozen_feature_map`)
        and `image_augmentation=False` an image's map never changes, so
        `train()` computes it once and trains this model on the cached maps:
        training it trains this model. It is a training device, not a model
        to save or serve: save this one.

        Example:
        >>> over_maps = model.feature_map_model()  # doctest: +SKIP
        >>> over_maps.compile(optimizer=model.optimizer, loss=model.loss)
        """
        return build_feature_map_model(self)

    @property
    def input_names_used(self):
        """Feature names the model reads: `token_ids` and/or `image`, `image_present`."""
        text = ["token_ids"]
        if getattr(self.text_encoder, "reads_raw_text", False):
            text = ["text", "token_ids"] if self.wide else ["text"]
        names = {"text": text, "image": ["image", "image_present"]}
        return [name for modality in self.modalities for name in names[modality]]

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "class_names": self.class_names,
            "preprocessor": keras.layers.serialize(self.preprocessor),
            "modalities": self.modalities,
            "text_encoder": _serialize(self.text_encoder),
            "image_encoder": _serialize(self.image_encoder),
            "fusion": keras.layers.serialize(self.fusion),
            "multi_label": self.multi_label,
            "embedding_dim": self.embedding_dim,
            "lstm_units": self.lstm_units,
            "hidden_dim": self.hidden_dim,
            "image_filters": self.image_filters,
            "grid_size": self.grid_size,
            "num_heads": self.num_heads,
            "dropout_rate": self.dropout_rate,
            "modality_dropout": self.modality_dropout,
            "image_weights": self.image_weights,
            "trainable_backbone": self.trainable_backbone,
            "backbone_alpha": self.backbone_alpha,
            "text_embeddings": self.text_embeddings,
            "token_dropout": self.token_dropout,
            "image_augmentation": self.image_augmentation,
            "wide": self.wide,
            "wide_l2": self.wide_l2,
            "wide_image": self.wide_image,
            "text_preset": self.text_preset,
            "fine_tune_text": self.fine_tune_text,
            # Layers set `trainable = False` after building (e.g. the wide path
            # that `training.wide_epochs` trained first), so a loaded model
            # trains, and restores its optimizer, as the saved one did.
            "frozen_layers": [layer.name for layer in self.layers if not layer.trainable],
        }

    @classmethod
    def from_config(cls, config):
        # A rebuilt model gets its weights from the saved file: reading GloVe
        # or backbone weights again would be wasted work, or fail on a machine
        # without the file. The config still records where they came from.
        config = dict(config)
        frozen = config.pop("frozen_layers", [])
        model = cls(**config, _load_pretrained=False)
        for name in frozen:
            model.get_layer(name).trainable = False
        return model


def _serialize(layer):
    return None if layer is None else keras.layers.serialize(layer)


__all__ = ["DEFAULT_HEAD", "FUSIONS", "MODALITIES", "MultimodalClassifier", "WideModel"]
