"""Raw text -> the token features of a pretrained KerasHub transformer (BERT, MiniLM, ...)."""

import contextlib
import difflib
import importlib
import os
from pathlib import Path

import keras
from keras import ops

from multimodal_tf.errors import ConfigError

HUB_EXTRA = 'pip install "multimodal_tf[hub]"'
POOLINGS = (None, "mean", "first")
TRUNCATIONS = ("waterfall", "round_robin")
# The files every KerasHub text preset directory holds (`save_to_preset` of a
# backbone and of its tokenizer or text preprocessor).
PRESET_FILES = ("config.json", "tokenizer.json")
# `backbone(...)` inputs this layer can feed.
FEATURES = ("token_ids", "segment_ids", "padding_mask")


class HubExtraMissingError(ConfigError, ImportError):
    """keras-hub or tensorflow-text is not installed (or does not load): the `[hub]` extra.

    Both a `ConfigError` (the CLI prints it as one `error:` line) and an
    `ImportError` (what a caller that imports optional packages expects).
    """


def require_hub():
    """Imports and returns `(keras_hub, tensorflow_text)`, or says how to install them.

    KerasHub tokenizers run TensorFlow Text ops inside the graph (WordPiece,
    Unicode normalization, regex splitting), so both packages are needed to
    train and to export; TF Serving has the ops linked in.

    Returns:
        tuple of the two modules.

    Raises:
        HubExtraMissingError: either package is missing, or tensorflow-text
            does not load with the installed tensorflow (their minor versions
            must match).

    Example:
    >>> keras_hub, tf_text = require_hub()  # doctest: +SKIP
    """
    modules, problems, cause = [], [], None
    for name, package in (("keras_hub", "keras-hub"), ("tensorflow_text", "tensorflow-text")):
        try:
            modules.append(importlib.import_module(name))
        except ImportError as error:
            missing = getattr(error, "name", None) in (name, None) or name in str(error)
            problems.append(
                f"`{package}` is not installed"
                if missing
                else f"`{package}` does not import ({error})"
            )
            cause = cause or error
        except Exception as error:  # noqa: BLE001 - a .so built for another tensorflow
            import tensorflow as tf

            first_line = str(error).splitlines()[0] if str(error) else ""
            raise HubExtraMissingError(
                f"`{package}` is installed but does not load with tensorflow {tf.__version__} "
                f"({type(error).__name__}: {first_line}). Its minor version must match "
                f"tensorflow's: pip install \"tensorflow-text=="
                f'{".".join(tf.__version__.split(".")[:2])}.*", or {HUB_EXTRA}.'
            ) from error
    if problems:
        raise HubExtraMissingError(
            "Pretrained text encoders from KerasHub presets need keras-hub and tensorflow-text: "
            + "; ".join(problems)
            + f". Install the [hub] extra: {HUB_EXTRA} (from a clone: pip install -e '.[hub]')."
        ) from cause
    return tuple(modules)


def resolve_preset(preset):
    """Checks that a KerasHub text preset can be read here, before anything is built or trained.

    A local directory (written by `save_to_preset`) is read as it is, without
    network. A preset name (`"bert_tiny_en_uncased"`) or handle
    (`"kaggle://..."`, `"hf://..."`) is looked up in the local cache first
    (kagglehub's, `$KAGGLEHUB_CACHE`, default `~/.cache/kagglehub`) and
    downloaded otherwise; when that fails (no network) the error says how to
    bring the preset onto this machine.

    Args:
        preset: str or Path. A preset directory, name or handle.

    Returns:
        str: the preset as `from_preset` takes it (a directory as given,
        `~` expanded).

    Raises:
        ConfigError: an unknown name, a directory that is not a text preset,
            or a name that is neither cached nor downloadable.
        HubExtraMissingError: the [hub] extra is not installed.

    Example:
    >>> resolve_preset("/models/bert_tiny_en_uncased")  # doctest: +SKIP
    '/models/bert_tiny_en_uncased'
    """
    if not isinstance(preset, (str, os.PathLike)) or not str(preset).strip():
        raise ConfigError(
            "A KerasHub text preset is a preset name such as 'bert_tiny_en_uncased' or the "
            f"path of a preset directory; received {preset!r}."
        )
    preset = str(preset)
    path = Path(preset).expanduser()
    if path.is_dir():
        absent = [name for name in PRESET_FILES if not (path / name).is_file()]
        if absent:
            raise ConfigError(
                f"{path} is not a KerasHub text preset directory: it has no "
                f"{' or '.join(absent)}. Write one with `backbone.save_to_preset(dir)` and "
                "`tokenizer.save_to_preset(dir)` (or a text preprocessor's) into the same folder."
            )
        return str(path)
    looks_like_path = "://" not in preset and (
        os.sep in preset or preset.startswith((".", "~")) or path.suffix
    )
    if looks_like_path:
        raise ConfigError(
            f"The KerasHub preset directory {preset} does not exist (a preset is a preset name "
            "or the folder that `save_to_preset` wrote)."
        )
    require_hub()
    from keras_hub.src.utils import preset_utils

    if "://" not in preset and preset not in preset_utils.BUILTIN_PRESETS:
        close = difflib.get_close_matches(preset, list(preset_utils.BUILTIN_PRESETS), n=3)
        hint = f" Did you mean {', '.join(repr(name) for name in close)}?" if close else ""
        raise ConfigError(
            f"{preset!r} is not a KerasHub preset name nor an existing directory.{hint} "
            "Names: keras_hub.models.TextClassifierPreprocessor.presets; or give the path of "
            "a folder written by `save_to_preset`."
        )
    try:
        for name in PRESET_FILES:
            preset_utils.get_file(preset, name)
    except Exception as error:  # noqa: BLE001 - kagglehub / requests / OSError: all mean "not here"
        raise ConfigError(offline_message(preset, error)) from error
    return preset


def offline_message(preset, error=None):
    """What to do when a preset name is neither cached nor downloadable (no network)."""
    folder = preset.rstrip("/").rsplit("/", 1)[-1].split("://")[-1] or "preset"
    cache = os.environ.get("KAGGLEHUB_CACHE", "~/.cache/kagglehub")
    reason = ""
    if error is not None:
        text = " ".join(str(error).split())
        text = text if len(text) <= 160 else text[:157] + "..."
        reason = f" ({type(error).__name__}: {text})"
    return (
        f"The KerasHub preset {preset!r} is not on this machine (not in the kagglehub cache, "
        f"{cache}) and could not be downloaded{reason}. On a machine with network, save it "
        "as a folder:\n"
        f'    python -c "import keras_hub; '
        f"keras_hub.models.Backbone.from_preset('{preset}').save_to_preset('{folder}'); "
        f"keras_hub.models.Tokenizer.from_preset('{preset}').save_to_preset('{folder}')\"\n"
        f"copy the folder {folder}/ to this machine and point the config at it "
        f"(model.text_preset: /path/to/{folder}); a preset folder is read without network."
    )


@keras.saving.register_keras_serializable(package="multimodal_tf")
class HubTextEncoder(keras.layers.Layer):
    """Raw UTF-8 text `[batch]` -> a KerasHub backbone's token features, with a padding mask.

    Holds a preset's three parts: its tokenizer (e.g. BERT's WordPiece), a
    packer that adds the special tokens and pads or truncates to
    `sequence_length` (the preset's text-classifier `MultiSegmentPacker`, or a
    `StartEndPacker` for a family without one), and its backbone. Called on
    `tf.string` text `[batch]`, it returns `[batch, sequence_length, dim]`
    float tokens whose Keras mask is the padding mask (so a masked pooling or
    a fusion layer ignores padding), or, with `pooling`, one `[batch, dim]`
    vector. Called on int token ids `[batch, seq]` (what `tokenize` returns),
    it skips tokenization: a `tf.data` pipeline can tokenize on the CPU while
    the model trains.

    Everything runs in the TF graph: tokenization uses TensorFlow Text ops
    (always the TF path, never keras-hub's eager Python path, so training,
    `predict` and the exported graph tokenize alike), and truncation is
    `"waterfall"` by default: TF Serving 2.12-2.19 link TF Text 2.12.1, which
    has no `RoundRobinTrim` op (`multimodal_tf.serving.op_check`). On one
    text both truncations keep the same tokens.

    The backbone is frozen by default (`fine_tune=False`): its weights do not
    train and its dropout stays off, as a frozen image backbone's
    BatchNormalization does. `fine_tune=True` trains it (use a small learning
    rate). A `.keras` file stores everything: the backbone, tokenizer and
    packer configs in this layer's config, the backbone's weights with the
    model's weights and the tokenizer's vocabulary as an asset, so loading it
    needs neither the preset nor network.

    Args:
        preset: str or None. A KerasHub preset name (`"bert_tiny_en_uncased"`,
            from the local cache or downloaded) or the path of a preset
            directory (`save_to_preset`); checked by `resolve_preset`. Kept in
            the config for reference when `backbone`, `tokenizer` and
            `packer` are given.
        sequence_length: int. Tokens per text, special tokens included; longer
            texts are cut, shorter ones padded. At most the backbone's
            `max_sequence_length`.
        pooling: None, "mean" or "first". None returns the masked token
            sequence; "mean" the mean over non-padding tokens (sentence-
            transformers' pooling, e.g. all-MiniLM); "first" the first token
            (BERT's `[CLS]`).
        hidden_dim: int or None. A trainable dense projection of each token to
            this width (the width the fusion layers share); None keeps the
            backbone's `hidden_dim`.
        fine_tune: bool. Train the backbone's weights (default: frozen).
        truncate: str. The packer's truncation, `"waterfall"` (default) or
            `"round_robin"` (needs TF Serving >= 2.20 / TF Text >= 2.13).
        backbone, tokenizer, packer: KerasHub layers or their serialized
            configs. Given by `from_config`; by default loaded from `preset`.

    Example:
    >>> preset = "/models/bert_tiny_en_uncased"  # a folder that save_to_preset wrote
    >>> encoder = HubTextEncoder(preset, sequence_length=32)  # doctest: +SKIP
    >>> tokens = encoder(tf.constant(["a red circle", "a blue square"]))  # doctest: +SKIP
    >>> tuple(tokens.shape), tuple(tokens._keras_mask.shape)  # doctest: +SKIP
    ((2, 32, 128), (2, 32))
    >>> text = keras.Input(shape=(), dtype="string")  # doctest: +SKIP
    >>> pooled = HubTextEncoder(preset, pooling="mean")(text)  # doctest: +SKIP
    >>> model = keras.Model(text, keras.layers.Dense(2, "softmax")(pooled))  # doctest: +SKIP
    """

    def __init__(
        self,
        preset=None,
        sequence_length=128,
        pooling=None,
        hidden_dim=None,
        fine_tune=False,
        truncate="waterfall",
        backbone=None,
        tokenizer=None,
        packer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if pooling not in POOLINGS:
            raise ConfigError(f"`pooling` must be one of {POOLINGS}; received {pooling!r}.")
        if truncate not in TRUNCATIONS:
            raise ConfigError(f"`truncate` must be one of {TRUNCATIONS}; received {truncate!r}.")
        if isinstance(sequence_length, bool) or not isinstance(sequence_length, int):
            raise ConfigError(f"`sequence_length` must be an int; received {sequence_length!r}.")
        keras_hub, _ = require_hub()
        parts = (backbone, tokenizer, packer)
        if all(part is None for part in parts):
            if preset is None:
                raise ConfigError("HubTextEncoder needs a `preset` (a name or a directory).")
            backbone, tokenizer, packer = load_preset_parts(preset, sequence_length, truncate)
        elif any(part is None for part in parts):
            raise ConfigError(
                "Give `backbone`, `tokenizer` and `packer` together (or only a `preset`)."
            )
        else:
            backbone, tokenizer, packer = (_deserialize(part) for part in parts)
        # === Layers ===
        self.backbone = backbone
        self.tokenizer = tokenizer
        self.packer = packer
        self.projection = None
        # === Config ===
        self.preset = None if preset is None else str(preset)
        self.sequence_length = sequence_length
        self.pooling = pooling
        self.hidden_dim = hidden_dim
        self.truncate = truncate
        self._check_parts(keras_hub)
        self.packer.sequence_length = sequence_length
        if hasattr(self.packer, "truncate"):
            self.packer.truncate = truncate
        # Keras-hub >= 0.2x runs its preprocessing layers' eager calls in pure
        # Python; the TF path runs the TF Text ops the exported graph runs.
        for layer in (self.tokenizer, self.packer):
            if hasattr(layer, "_allow_python_workflow"):
                layer._allow_python_workflow = False
        self.backbone.trainable = bool(fine_tune)
        if fine_tune:
            _freeze_unused_layers(self.backbone)
        self.backbone_dim = _backbone_dim(self.backbone)
        if hidden_dim:
            self.projection = keras.layers.Dense(int(hidden_dim), name="projection")
            self.projection.build((None, None, self.backbone_dim))
        # Tokenizers and packers take raw strings: no conversion to float tensors, and
        # no XLA (Keras' jit_compile="auto" would turn it on with a GPU): string ops
        # have no XLA kernels.
        self.supports_jit = False
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True
        self.supports_masking = pooling is None
        self.built = True

    # `MultimodalClassifier` feeds this encoder the raw text (input "text"), not token ids.
    reads_raw_text = True

    @property
    def num_special_tokens(self):
        """Tokens the packer adds to every text (BERT: `[CLS]` and `[SEP]`)."""
        count = 0
        for name in ("start_value", "end_value"):
            value = getattr(self.packer, name, None)
            count += len(value) if isinstance(value, (list, tuple)) else int(value is not None)
        return count

    @property
    def fine_tune(self):
        """Whether the backbone's weights train (`backbone.trainable`)."""
        return bool(self.backbone.trainable)

    @property
    def output_dim(self):
        return int(self.hidden_dim) if self.hidden_dim else self.backbone_dim

    @property
    def pad_value(self):
        pad = getattr(self.packer, "pad_value", None)
        return 0 if pad is None else int(pad)

    def _check_parts(self, keras_hub):
        inputs = self.backbone.input
        names = list(inputs) if isinstance(inputs, dict) else []
        unknown = [name for name in names if name not in FEATURES]
        if not names or unknown:
            raise ConfigError(
                f"The preset's backbone ({type(self.backbone).__name__}) takes "
                f"{names or 'one unnamed input'}; HubTextEncoder feeds a dict of "
                f"{', '.join(FEATURES)} (text encoders such as BERT, DistilBERT, RoBERTa, MiniLM)."
            )
        packers = (
            keras_hub.layers.MultiSegmentPacker,
            keras_hub.layers.StartEndPacker,
        )
        if not isinstance(self.packer, packers):
            raise ConfigError(
                f"`packer` must be a MultiSegmentPacker or StartEndPacker; received "
                f"{type(self.packer).__name__}."
            )
        limit = getattr(self.backbone, "max_sequence_length", None)
        if self.sequence_length < 3 or (limit and self.sequence_length > limit):
            raise ConfigError(
                f"`sequence_length` must be between 3 and the backbone's max_sequence_length "
                f"({limit}); received {self.sequence_length}."
            )

    def tokenize(self, text):
        """Raw text `[batch]` -> `{"token_ids", "segment_ids", "padding_mask"}`, `[batch, seq]`.

        The ids and segment ids are int32, the mask is bool. Runs the
        tokenizer and packer in the TF graph (TF Text ops); map it over a
        `tf.data` pipeline to tokenize ahead of the model.
        """
        import tensorflow as tf

        text = tf.convert_to_tensor(text, tf.string)
        if text.shape.rank == 2:  # keras.Input(shape=(1,), dtype="string")
            text = tf.squeeze(text, axis=-1)
        elif text.shape.rank == 0:
            text = text[None]
        with _tensor_outputs():
            pieces = self.tokenizer(text)
            packed = self.packer(pieces)
        if isinstance(packed, (tuple, list)) and self._is_multi_segment():
            token_ids, segment_ids = packed
            padding_mask = tf.not_equal(token_ids, self.pad_value)
        else:
            token_ids, padding_mask = (
                packed if isinstance(packed, (tuple, list)) else (packed, None)
            )
            if padding_mask is None:
                padding_mask = tf.not_equal(token_ids, self.pad_value)
            segment_ids = tf.zeros_like(token_ids)
        return {
            "token_ids": tf.cast(token_ids, "int32"),
            "segment_ids": tf.cast(segment_ids, "int32"),
            "padding_mask": tf.cast(padding_mask, "bool"),
        }

    def _is_multi_segment(self):
        keras_hub, _ = require_hub()
        return isinstance(self.packer, keras_hub.layers.MultiSegmentPacker)

    def call(self, inputs, training=None, return_mask=False):
        """Text `[batch]` (or token ids `[batch, seq]`) -> tokens, or the pooled vector.

        With `return_mask=True` it returns `(output, padding_mask)`, the mask a
        bool `[batch, sequence_length]` tensor: a functional graph that reads
        raw text (whose symbolic mask cannot exist before tokenization) gets
        the mask as a tensor of its own, e.g. for a fusion layer's `mask=`.
        In functional graphs call one layer either always with it or always
        without: Keras takes the number of a layer's outputs from its first
        symbolic call.
        """
        features = self._features(inputs)
        backbone_inputs = {name: ops.cast(features[name], "int32") for name in self.backbone.input}
        # A frozen backbone runs in inference mode (no dropout); a fine-tuned one follows
        # `training`.
        outputs = self.backbone(backbone_inputs, training=training if self.fine_tune else False)
        tokens = outputs["sequence_output"] if isinstance(outputs, dict) else outputs
        if self.projection is not None:
            tokens = self.projection(tokens)
        mask = features["padding_mask"]
        if self.pooling == "first":
            output = tokens[:, 0, :]
        elif self.pooling == "mean":
            weights = ops.cast(mask, tokens.dtype)[..., None]
            total = ops.sum(tokens * weights, axis=1)
            output = total / ops.maximum(ops.sum(weights, axis=1), 1.0)
        else:
            output = tokens
            _attach_mask(output, mask)
        if return_mask:
            _attach_mask(mask, mask)  # so that Keras computes no mask for it (no second tokenizing)
            return output, mask
        return output

    def _features(self, inputs):
        if _is_string(inputs):
            return self.tokenize(inputs)
        token_ids = ops.convert_to_tensor(inputs, "int32")
        return {
            "token_ids": token_ids,
            "segment_ids": ops.zeros_like(token_ids),
            "padding_mask": ops.not_equal(token_ids, self.pad_value),
        }

    def compute_mask(self, inputs, mask=None):
        if self.pooling is not None:
            return None
        if isinstance(inputs, keras.KerasTensor):
            # Symbolic text has no tokens yet: no mask in the functional graph. When
            # the model runs, `call` attaches the padding mask to its output and Keras
            # hands it to the next layer (`GlobalAveragePooling1D`, a fusion).
            return None if _is_string(inputs) else ops.not_equal(inputs, self.pad_value)
        return self._features(inputs)["padding_mask"]

    def compute_output_shape(self, input_shape):
        batch = input_shape[0] if input_shape else None
        if self.pooling is not None:
            return (batch, self.output_dim)
        return (batch, self.sequence_length, self.output_dim)

    def compute_output_spec(self, inputs, training=None, return_mask=False):
        output = keras.KerasTensor(
            self.compute_output_shape(tuple(inputs.shape)), dtype=self.compute_dtype
        )
        if not return_mask:
            return output
        return output, keras.KerasTensor((inputs.shape[0], self.sequence_length), dtype="bool")

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "preset": self.preset,
                "sequence_length": self.sequence_length,
                "pooling": self.pooling,
                "hidden_dim": self.hidden_dim,
                "fine_tune": self.fine_tune,
                "truncate": self.truncate,
                "backbone": keras.saving.serialize_keras_object(self.backbone),
                "tokenizer": keras.saving.serialize_keras_object(self.tokenizer),
                "packer": keras.saving.serialize_keras_object(self.packer),
            }
        )
        return config


def load_preset_parts(preset, sequence_length=128, truncate="waterfall"):
    """`(backbone, tokenizer, packer)` of a KerasHub text preset, checked by `resolve_preset`.

    The tokenizer and packer are those of the preset's text-classifier
    preprocessor (`MultiSegmentPacker`, e.g. BERT's `[CLS] ... [SEP]`) with
    `truncate`; a family without one gets its tokenizer and a
    `StartEndPacker` of its start, end and padding tokens.

    Args:
        preset: str. A preset name or directory.
        sequence_length: int. The packer's output length.
        truncate: str. `"waterfall"` or `"round_robin"`.

    Returns:
        tuple `(keras_hub.models.Backbone, keras_hub.tokenizers.Tokenizer,
        packer layer)`.
    """
    keras_hub, _ = require_hub()
    preset = resolve_preset(preset)
    backbone = keras_hub.models.Backbone.from_preset(preset)
    try:
        preprocessor = keras_hub.models.TextClassifierPreprocessor.from_preset(
            preset, sequence_length=sequence_length, truncate=truncate
        )
    except ValueError as error:
        if "Unable to find a subclass" not in str(error):
            raise
        tokenizer = keras_hub.models.Tokenizer.from_preset(preset)
        packer = keras_hub.layers.StartEndPacker(
            sequence_length=sequence_length,
            start_value=getattr(tokenizer, "start_token_id", None),
            end_value=getattr(tokenizer, "end_token_id", None),
            pad_value=getattr(tokenizer, "pad_token_id", None),
            return_padding_mask=True,
        )
        return backbone, tokenizer, packer
    preprocessor.build(None)
    return backbone, preprocessor.tokenizer, preprocessor.packer


def choose_sequence_length(preset, texts, percentile=99, multiple=8, special_tokens=2):
    """A `sequence_length` that keeps `percentile`% of `texts` whole, as `adapt()` picks its own.

    The preset tokenizer's token counts of the (training) texts, their
    `percentile`, plus the special tokens the packer adds (`[CLS]` and
    `[SEP]`), rounded up to a multiple of `multiple` and at most the
    backbone's `max_sequence_length` (read from the preset's `config.json`;
    no weights are loaded).

    Args:
        preset: str. A preset name or directory (`resolve_preset`).
        texts: list of str. Training texts.
        percentile: float. Share of texts that fit whole.
        multiple: int. Round up to this.
        special_tokens: int. Tokens the packer adds to each text.

    Returns:
        int.

    Example:
    >>> choose_sequence_length("/models/bert_tiny_en_uncased", ["a red circle"])  # doctest: +SKIP
    8
    """
    import numpy as np
    import tensorflow as tf

    keras_hub, _ = require_hub()
    from keras_hub.src.utils import preset_utils

    preset = resolve_preset(preset)
    tokenizer = keras_hub.models.Tokenizer.from_preset(preset)
    count = tf.function(lambda batch: tokenizer(batch).row_lengths())
    lengths = [
        count(tf.constant(list(texts[start : start + 512]), tf.string)).numpy()
        for start in range(0, len(texts), 512)
    ]
    longest = float(np.percentile(np.concatenate(lengths), percentile)) if lengths else 0.0
    length = int(-(-(int(np.ceil(longest)) + special_tokens) // multiple) * multiple)
    config = preset_utils.load_json(preset, preset_utils.CONFIG_FILE).get("config", {})
    limit = config.get("max_sequence_length")
    return min(max(length, multiple), int(limit)) if limit else max(length, multiple)


def _deserialize(part):
    if isinstance(part, dict):
        return keras.saving.deserialize_keras_object(part)
    return part


def _backbone_dim(backbone):
    outputs = backbone.output
    tensor = outputs["sequence_output"] if isinstance(outputs, dict) else outputs
    return int(tensor.shape[-1])


def _freeze_unused_layers(backbone):
    """Freezes the backbone's layers that `sequence_output` does not read (BERT's pooler).

    They get no gradient (this layer pools the sequence itself), and the
    optimizer would warn about them at every step.
    """
    outputs = backbone.output
    if not isinstance(outputs, dict) or "sequence_output" not in outputs:
        return
    used = {id(layer) for layer in keras.Model(backbone.input, outputs["sequence_output"]).layers}
    for layer in backbone.layers:
        if id(layer) not in used and layer.weights:
            layer.trainable = False


def _is_string(value):
    dtype = getattr(value, "dtype", None)
    if dtype is None:  # a Python list of str / bytes
        first = value
        while isinstance(first, (list, tuple)) and first:
            first = first[0]
        return isinstance(first, (str, bytes))
    name = getattr(dtype, "name", str(dtype))
    return name in ("string", "object") or str(dtype).startswith(("<U", "<S", "|S"))


def _tensor_outputs():
    """A context in which keras-hub's layers return TF tensors when called eagerly too.

    Outside a `tf.function`, keras-hub converts its preprocessing layers'
    outputs to Python lists (ragged) or backend tensors; the packer then
    converts them back. Inside this context they stay `tf.Tensor` /
    `tf.RaggedTensor`, as in the graph.
    """
    try:
        from keras_hub.src.utils.tensor_utils import no_convert_scope
    except ImportError:  # another keras-hub: its conversions, slower but the same values
        return contextlib.nullcontext()
    return no_convert_scope()


def _attach_mask(tensor, mask):
    """Sets `tensor`'s Keras mask, so that Keras does not tokenize again in `compute_mask`."""
    try:
        from keras.src.backend.common.masking import set_keras_mask
    except ImportError:  # another Keras: `compute_mask` recomputes it
        return
    set_keras_mask(tensor, mask)
