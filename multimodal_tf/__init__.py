"""multimodal_tf: image+text classifiers in Keras 3, served raw by TF Serving.

The path of one sample: a manifest row (`data.manifest.read_manifest`) is
streamed by `data.dataset.make_dataset` through a `MultimodalPreprocessor`
(raw text + image bytes -> tensors, in the TF graph) into a
`MultimodalClassifier` (text and image encoders, a fusion layer, a head);
`serving.export.export_saved_model` puts the same preprocessor in front of the
model in a SavedModel that TF Serving runs on raw input.

Public names load on first use (PEP 562), so `import multimodal_tf.serving.rest`
(a TF Serving client) works where TensorFlow is not installed. Where Keras is
installed, importing the package registers its layers and models with Keras,
so `keras.saving.load_model("model.keras")` works right after `import multimodal_tf`.
The `multimodal-tf` command (or `python -m multimodal_tf`) registers them itself,
before a subcommand that uses Keras, so that its `--help` needs no TensorFlow.
"""

import importlib
import os
import sys

__version__ = "0.1.0"

# Public name -> the module that defines it.
_EXPORTS = {
    "RunConfig": "multimodal_tf.config",
    "load_config": "multimodal_tf.config",
    "make_dataset": "multimodal_tf.data.dataset",
    "demo_config": "multimodal_tf.data.demo",
    "make_demo_dataset": "multimodal_tf.data.demo",
    "split_labels": "multimodal_tf.data.labels",
    "Record": "multimodal_tf.data.manifest",
    "read_manifest": "multimodal_tf.data.manifest",
    "split_records": "multimodal_tf.data.manifest",
    "ReadResult": "multimodal_tf.data.readers",
    "read_any": "multimodal_tf.data.readers",
    "read_class_folders": "multimodal_tf.data.readers",
    "read_dataframe": "multimodal_tf.data.readers",
    "read_hateful_memes": "multimodal_tf.data.readers",
    "read_mvsa_raw": "multimodal_tf.data.readers",
    "ValidationReport": "multimodal_tf.data.validate",
    "check_images": "multimodal_tf.data.validate",
    "validate_manifest": "multimodal_tf.data.validate",
    "ConfigError": "multimodal_tf.errors",
    "DataError": "multimodal_tf.errors",
    "MultimodalTFError": "multimodal_tf.errors",
    "FUSIONS": "multimodal_tf.layers.fusion",
    "AttentionFusion": "multimodal_tf.layers.fusion",
    "ConcatFusion": "multimodal_tf.layers.fusion",
    "CrossAttentionFusion": "multimodal_tf.layers.fusion",
    "Fusion": "multimodal_tf.layers.fusion",
    "GatedFusion": "multimodal_tf.layers.fusion",
    "LateFusion": "multimodal_tf.layers.fusion",
    "ClassificationHead": "multimodal_tf.layers.heads.classification_head",
    "ModalityDropout": "multimodal_tf.layers.modality_dropout",
    "ImageDecoder": "multimodal_tf.layers.preprocessing.image_decoder",
    "TextStandardizer": "multimodal_tf.layers.preprocessing.text_standardizer",
    "BackboneImageEncoder": "multimodal_tf.models.backbone_image_encoder",
    "MultimodalClassifier": "multimodal_tf.models.classifier",
    "ConvTextEncoder": "multimodal_tf.models.conv_text_encoder",
    "MultimodalEnsemble": "multimodal_tf.models.ensemble",
    "load_word_vectors": "multimodal_tf.models.embeddings",
    "ImageEncoder": "multimodal_tf.models.image_encoder",
    "MultimodalPreprocessor": "multimodal_tf.models.preprocessor",
    "TextEncoder": "multimodal_tf.models.text_encoder",
    "TransformerTextEncoder": "multimodal_tf.models.transformer_text_encoder",
    "LazyAdamW": "multimodal_tf.models.lazy_adamw",
    "WarmupCosineDecay": "multimodal_tf.models.warmup_cosine_decay",
    "export_saved_model": "multimodal_tf.serving.export",
    "predict_manifest": "multimodal_tf.serving.predict",
    "run_ablation": "multimodal_tf.training.ablation",
    "evaluate": "multimodal_tf.training.evaluate",
    "train": "multimodal_tf.training.fit",
    "classification_metrics": "multimodal_tf.training.metrics",
    "tune_thresholds": "multimodal_tf.training.thresholds",
}

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
    "LazyAdamW",
    "ModalityDropout",
    "MultimodalClassifier",
    "MultimodalEnsemble",
    "MultimodalPreprocessor",
    "MultimodalTFError",
    "ReadResult",
    "Record",
    "RunConfig",
    "TextEncoder",
    "TextStandardizer",
    "TransformerTextEncoder",
    "ValidationReport",
    "WarmupCosineDecay",
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


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    # The eager package made every subpackage an attribute (`mtf.data.manifest`); keep that.
    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as error:
        if error.name != f"{__name__}.{name}":
            raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))


def _register_keras_classes():
    """Imports every layer and model module, which registers its classes with Keras."""
    # Keras finds a saved custom class only if its module was imported, and it
    # imports nothing outside its own packages itself.
    try:
        import keras  # noqa: F401
    except ImportError:  # a client-only install: no TensorFlow, no Keras
        return
    for module in sorted(set(_EXPORTS.values())):
        if module.startswith(("multimodal_tf.layers", "multimodal_tf.models")):
            importlib.import_module(module)


def _imported_to_run_the_command():
    """Whether `multimodal-tf` or `python -m multimodal_tf[.cli]` is importing the package.

    Both import it before their command line is read; `cli.main` registers the
    Keras classes for the subcommands that use Keras, so `--help` stays fast.
    """
    argv = getattr(sys, "argv", None) or [""]
    # The console script; on Windows multimodal-tf.exe or multimodal-tf-script.py.
    script = os.path.basename(argv[0]).lower().removesuffix(".exe").removesuffix("-script.py")
    if script == "multimodal-tf":
        return True
    # `python -m NAME` imports NAME's packages while sys.argv[0] is still "-m".
    if argv[0] != "-m":
        return False
    return _module_named_by(getattr(sys, "orig_argv", [])) in ("multimodal_tf", "multimodal_tf.cli")


def _module_named_by(interpreter_argv):
    """NAME in `python [options] -m NAME [arguments]`, or None."""
    arguments = iter(interpreter_argv[1:])
    for argument in arguments:
        if argument == "--check-hash-based-pycs":
            next(arguments, None)
        elif argument in ("-", "--") or not argument.startswith("-"):
            return None  # stdin or a script
        elif not argument.startswith("--"):
            flags = argument[1:]  # one or more flags: -I, -Im, -X importtime, -mNAME
            for index, flag in enumerate(flags):
                if flag in "cmWX":
                    value = flags[index + 1 :] or next(arguments, None)
                    if flag in "cm":
                        return value if flag == "m" else None
                    break
    return None


if not _imported_to_run_the_command():
    _register_keras_classes()
