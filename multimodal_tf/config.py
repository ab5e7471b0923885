"""The run config: data, model, training and export sections.

Each section is a plain dataclass whose fields map onto constructor or `fit`
arguments. A YAML or JSON file overrides the defaults; an unknown key or a
value of the wrong type is a `ConfigError` that names the key and the allowed
ones.
"""

import dataclasses
import json
from pathlib import Path

import yaml

from multimodal_tf.errors import ConfigError
from multimodal_tf.files import write_text_atomically

# What an exported model reads of a text, in UTF-8 bytes; the rest is cut off before
# any standardization (`multimodal-tf export --max-text-bytes`). About 3,000 words: far
# above a post, a caption or a review, and it bounds the work and memory of a request
# (a 1 MB text cost 0.5-0.7 s and 300 MB that the serving process kept).
MAX_TEXT_BYTES = 20_000


@dataclasses.dataclass
class DataConfig:
    """How manifest rows become tensors (the preprocessor's arguments) and batches."""

    # The pretrained backbone's input; 224 px gave no more on val at 2-3x the time
    # (docs/defaults.md). The scratch conv encoder was measured at 64 x 64.
    image_size: tuple = (128, 128)
    sequence_length: int = 0  # 0: the 99th percentile of the training texts' lengths
    spacy_norms: bool = True
    # ASCII emoticons as word tokens (":-)" -> xsmile, "<3" -> xheart) in the standardizer,
    # after unescaping HTML-escaped text ("&lt;3", "&amp;") as Twitter's API sends it.
    emoticons: bool = True
    # A sentiment lexicon's valence tokens in the n-gram bag: "vader" (VADER's, from the
    # vaderSentiment package), a word<TAB>valence file, or "" / "none" (docs/defaults.md).
    lexicon: str = "vader"
    # Every n-gram the training split has (MVSA-Single: 107k): rare n-grams pruned away
    # cost text-only val macro-F1: 0.572 -> 0.554 (docs/defaults.md).
    max_vocabulary_size: int = 200000
    min_frequency: int = 1
    batch_size: int = 32
    cache_decoded_images_mb: int = 1024  # cache a split's decoded images if they fit; 0: never
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    split_seed: int = 1337
    encoding: str = "utf-8"
    max_pixels: int = 40_000_000
    on_error: str = "raise"
    allow_missing_modalities: bool = False
    multi_label: bool = False


@dataclasses.dataclass
class ModelConfig:
    """`MultimodalClassifier` constructor arguments."""

    modalities: tuple = ("text", "image")
    fusion: str = "attention"
    text_encoder: str = "bag"  # faster than lstm, better on MVSA-Single (docs/defaults.md)
    # A frozen ImageNet MobileNetV2 (alpha 0.35): on tweets a scratch image branch reads
    # almost nothing, ImageNet features do (docs/defaults.md). "conv": the scratch
    # encoder, which loads no weights.
    image_encoder: str = "mobilenet_v2"
    # "imagenet": Keras' file, from the Keras cache ($KERAS_HOME/models, downloaded once;
    # `multimodal-tf weights install` offline), a local .h5 file, or "" (random).
    image_weights: str = "imagenet"
    trainable_backbone: bool = False
    backbone_alpha: float = 0.35
    text_embeddings: str = ""
    # text_encoder: hub -- a pretrained KerasHub transformer (the [hub] extra): a preset name
    # ("bert_tiny_en_uncased": the kagglehub cache, downloaded once) or a folder written by
    # save_to_preset (read offline).
    text_preset: str = ""
    fine_tune_text: bool = False  # true: train the preset's backbone too (small learning rate)
    # Its tokens per text ([CLS] and [SEP] included); 0: the 99th percentile of the training
    # texts' token counts, rounded up to 8, at most the backbone's max_sequence_length.
    text_sequence_length: int = 0
    modality_dropout: float = 0.0  # 0.3 hid the demo's text-image match cue: 1.00 -> 0.78
    embedding_dim: int = 64
    lstm_units: int = 64
    hidden_dim: int = 64
    image_filters: tuple = (32, 64, 96)
    grid_size: int = 4
    num_heads: int = 4
    dropout_rate: float = 0.3
    token_dropout: float = 0.3
    # Random flips, shifts, zooms and contrast on training images. "auto": on for an
    # image encoder that trains, off for a frozen pretrained backbone (image_weights,
    # trainable_backbone false), where val gained nothing and the second stage ran
    # half as fast (docs/defaults.md). true / false: always / never.
    image_augmentation: str = "auto"
    # Wide & Deep: a linear TF-IDF path added to each head's logits; with
    # training.wide_epochs it trains first (docs/design.md, docs/defaults.md).
    wide: bool = True
    wide_c: float = 2.0  # that path's L2 as LR's C: 1 / (2 C n) on n training rows; 0: none
    # With wide and a pretrained backbone (image_weights): the wide path also holds a
    # linear model over the backbone's pooled features (docs/defaults.md).
    wide_image: bool = True


@dataclasses.dataclass
class TrainingConfig:
    """`compile` and `fit` arguments and model selection."""

    epochs: int = 30
    learning_rate: float = 2e-3  # the demo's text-image match needs it (docs/defaults.md)
    weight_decay: float = 1e-4
    label_smoothing: float = 0.1
    lr_schedule: str = "cosine"
    early_stopping_patience: int = 8
    # With model.wide: >0 trains the linear path alone first (at most this many
    # epochs, best val epoch kept), then freezes it and trains the rest.
    wide_epochs: int = 30
    # >0: that stage's weights are averaged as it trains (an exponential moving average
    # over about this many epochs of steps; Polyak averaging): its val curve stops
    # jumping from epoch to epoch and the kept epoch's weights are that average
    # (docs/defaults.md).
    wide_ema_epochs: float = 4.0
    # After both stages, the rest of the model is dropped (its logits zeroed) if its best
    # val macro-F1 is below the wide path's alone (docs/design.md, docs/defaults.md).
    drop_deep_if_worse: bool = True
    class_weight: str = "sqrt"
    oversample: bool = False
    seed: int = 1337
    ensemble: int = 1  # >1: that many seeds, probabilities averaged (training/ensemble.py)
    deterministic: bool = False  # deterministic TF ops: identical reruns, slower
    strategy: str = "none"  # none | mirrored | multi_worker (tf.distribute)
    tensorboard: bool = True  # TensorBoard logs in RUN/logs
    report: bool = True  # RUN/report.html and RUN/report/*.png after training


@dataclasses.dataclass
class ExportConfig:
    """Where `export` writes the TF Serving model."""

    name: str = "model"
    directory: str = "saved_models"


@dataclasses.dataclass
class RunConfig:
    """The whole run config; `RunConfig()` is the zero-config default."""

    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    training: TrainingConfig = dataclasses.field(default_factory=TrainingConfig)
    export: ExportConfig = dataclasses.field(default_factory=ExportConfig)

    def to_dict(self):
        """A JSON/YAML-safe dict (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, values, source="config"):
        """Builds a config from nested dicts, checking every key and type.

        Args:
            values: dict. Sections `data`, `model`, `training`, `export`; any
                may be left out, as may any key within them.
            source: str. Named in error messages (usually the file path).
        """
        values = values or {}
        if not isinstance(values, dict):
            raise ConfigError(
                f"{source}: expected a mapping of sections, got {type(values).__name__}."
            )
        sections = {field.name: field for field in dataclasses.fields(cls)}
        _reject_unknown(values, sections, source, where="top level")
        built = {}
        for name, field in sections.items():
            section_cls = field.default_factory().__class__
            built[name] = _build_section(section_cls, values.get(name) or {}, source, name)
        return cls(**built)


_CHOICES = {
    ("data", "on_error"): ("raise", "skip"),
    ("training", "class_weight"): ("balanced", "sqrt", "none"),
    ("training", "lr_schedule"): ("cosine", "constant"),
    ("training", "strategy"): ("none", "mirrored", "multi_worker"),
    ("model", "fusion"): ("concat", "attention", "cross_attention", "gated", "late"),
    ("model", "text_encoder"): ("bag", "lstm", "bilstm", "gru", "cnn", "transformer", "hub"),
    ("model", "image_encoder"): (
        "conv",
        "mobilenet_v2",
        "mobilenet_v3_small",
        "mobilenet_v3_large",
        "efficientnet_b0",
        "resnet50",
    ),
}

#: Keys that take `true`, `false` or the string `"auto"`.
_BOOL_OR_AUTO = {("model", "image_augmentation")}


def load_config(path=None):
    """Reads a YAML (`.yaml`, `.yml`) or JSON (`.json`) run config.

    Args:
        path: str, Path or None. `None` gives the defaults.

    Example:
    >>> load_config().model.hidden_dim
    64
    """
    if path is None:
        return RunConfig()
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Config file not found: {path}")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".json":
            values = json.loads(text)
        elif path.suffix.lower() in (".yaml", ".yml"):
            values = yaml.safe_load(text)
        else:
            raise ConfigError(f"{path}: config files must end in .yaml, .yml or .json.")
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise ConfigError(f"{path}: not valid {path.suffix[1:].upper()}: {error}") from None
    return RunConfig.from_dict(values, source=str(path))


def save_config(config, path):
    """Writes the config as YAML (or JSON if `path` ends in `.json`)."""
    path = Path(path)
    values = config.to_dict()
    if path.suffix.lower() == ".json":
        write_text_atomically(path, json.dumps(values, indent=2) + "\n")
    else:
        write_text_atomically(path, yaml.safe_dump(values, sort_keys=False))


def _reject_unknown(values, allowed, source, where):
    for key in values:
        if key not in allowed:
            raise ConfigError(
                f"{source}: unknown key {key!r} at {where}; allowed keys: {', '.join(allowed)}."
            )


def _build_section(section_cls, values, source, section):
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: section {section!r} must be a mapping, got {values!r}.")
    fields = {field.name: field for field in dataclasses.fields(section_cls)}
    _reject_unknown(values, fields, source, where=f"section {section!r}")
    kwargs = {}
    for key, value in values.items():
        default = getattr(section_cls(), key)
        if (section, key) in _BOOL_OR_AUTO:
            if not (isinstance(value, bool) or value == "auto"):
                raise ConfigError(
                    f"{source}: {section}.{key} must be true, false or auto; got {value!r}."
                )
            kwargs[key] = value
            continue
        kwargs[key] = _coerce(value, default, f"{source}: {section}.{key}")
        choices = _CHOICES.get((section, key))
        if choices and kwargs[key] not in choices:
            raise ConfigError(
                f"{source}: {section}.{key} must be one of {', '.join(choices)}; got {value!r}."
            )
    return section_cls(**kwargs)


def _coerce(value, default, where):
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}.")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, got {value!r}.")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, got {value!r}.")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}.")
        return value
    if isinstance(default, tuple):
        if not isinstance(value, (list, tuple)) or not value:
            raise ConfigError(
                f"{where} must be a non-empty list like {list(default)}, got {value!r}."
            )
        return tuple(_coerce(item, default[0], where) for item in value)
    return value
