"""Export a classifier's model part to TensorFlow Lite; the app runs the preprocessing.

TFLite cannot run the raw-input serving function of `export_saved_model`
(checked with TF 2.21 by converting `preprocessor` + model on `text`, `image`
tf.string [1]; `tests/serving/test_tflite.py` keeps the first two checks):

- With builtin ops only: "'tf.TensorListReserve' op requires element_shape
  to be static during TF Lite transformation pass" (the Keras LSTM loop, when
  variables are not frozen first), and the string ops below need Flex anyway.
- With `SELECT_TF_OPS` too, it stops at ops that have neither a builtin nor a
  Flex kernel: "Custom ops: ExtractJpegShape, ResizeArea, StatelessCase"
  (`ImageDecoder`: DCT-scaled JPEG decoding, area resizing, the
  JPEG/other-format switch).
- Frozen first (as `export_tflite` does): "Merge of two inputs that differ on
  more than one predicate ... Failed to functionalize Control Flow V1 ops"
  (the nested `tf.cond` / `tf.switch_case` of `ImageDecoder`).
- The text half alone (`TextStandardizer` regexes, splitting, `StringLookup`)
  converts only with `SELECT_TF_OPS`: StaticRegexReplace, StringLower,
  StringStrip, StringSplitV2 and RaggedTensorToTensor need Flex kernels (the
  `StringLookup` hash table becomes a builtin HASHTABLE op). The pip
  `tf.lite.Interpreter` has no Flex delegate and refuses to run it; an Android
  app would need `tensorflow-lite-select-tf-ops`. The image half alone also
  needs Flex DecodeImage, DecodeJpeg, StringLength and Substr.

So `export_tflite` converts the model on preprocessed tensors, which builtin
ops express for every encoder and fusion, and writes beside the `.tflite`
what an app needs to make those tensors itself: `labels.txt` and
`preprocessor.json` (vocabulary, sequence length, image size, standardizer
rules and norm table). In Python, `model.preprocessor` does it exactly.
"""

import json
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from multimodal_tf.errors import DataError
from multimodal_tf.files import write_bytes_atomically, write_text_atomically
from multimodal_tf.serving.export import LABELS_FILE

PREPROCESSOR_FILE = "preprocessor.json"
_LAYER_KEYS = ("name", "trainable", "dtype", "norm_table")
_INPUT_DTYPES = {"token_ids": tf.int32, "image": tf.float32, "image_present": tf.float32}


def export_tflite(model, path, representative=None, select_tf_ops=False):
    """Writes `model` on preprocessed tensors as a `.tflite` file, with its labels and inputs.

    The file has one signature, `serving_default`, with batch-1 inputs
    `token_ids` (int32 [1, sequence_length]; word ids, or the n-gram ids of a
    `"bag"` text encoder), `image` (float32 [1, height, width, 3], RGB in
    0..255) and `image_present` (float32 [1], 0.0 for a sample without an
    image), only those the model's modalities use, and outputs
    `probabilities` (float32 [1, num_classes]) or `<head>_probabilities` for a
    multi-head model. `labels.txt` (as in `export_saved_model`) and
    `preprocessor.json` (the preprocessor's config plus the input specs) are
    written in the same folder. Raw strings cannot go in: see the module notes.

    Args:
        model: `MultimodalClassifier`.
        path: str or Path. The `.tflite` file to write; its folder is created.
        representative: iterable of feature dicts or None. Sample features (as
            `model.preprocessor` makes them, any batch size) to calibrate
            post-training quantization (`tf.lite.Optimize.DEFAULT`, float
            inputs and outputs); `None` keeps float32. Check the result with a
            looser `atol` (0.035 max abs diff on a tiny CNN-text model). Not
            for recurrent text encoders: TF 2.21's calibrator crashes the
            process (segfault) on their While loop, so this raises instead.
        select_tf_ops: bool. Let ops without a TFLite builtin fall back to
            TensorFlow kernels (the app then needs the Flex delegate). No
            built-in encoder or fusion needs it.

    Returns:
        Path of the `.tflite` file.

    Example:
    >>> path = export_tflite(model, "tflite/demo/model.tflite")  # doctest: +SKIP
    >>> check_tflite_parity(model, path, model.preprocessor(raw))  # doctest: +SKIP
    3.0e-08
    """
    # Imported here: a private API, and only conversion needs it.
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    if getattr(model.text_encoder, "reads_raw_text", False):
        raise DataError(
            "A KerasHub text encoder (model.text_encoder: hub) tokenizes raw text with "
            "TensorFlow Text ops, which TFLite does not run: export it as a SavedModel."
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    specs = input_specs(model)
    single = not isinstance(model.class_names, dict)

    heads = list(model.head_classes())
    names = ["probabilities"] if single else [f"{head}_probabilities" for head in heads]

    @tf.function(input_signature=[specs])
    def predict(features):
        outputs = model(features, training=False)
        return dict(
            zip(names, [outputs] if single else [outputs[head] for head in heads], strict=True)
        )

    # Frozen constants, not resource variables: the LSTM reads its kernels inside
    # a While body, where a converted READ_VARIABLE fails at run time
    # ("variable != nullptr was not true").
    frozen = convert_variables_to_constants_v2(predict.get_concrete_function())

    # Freezing flattens the outputs (dict keys in sorted order); name them again.
    @tf.function(input_signature=[specs])
    def serving_default(features):
        return dict(zip(sorted(names), frozen(**features), strict=True))

    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [serving_default.get_concrete_function()], tf.Module()
    )
    if select_tf_ops:
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.TFLITE_BUILTINS,
            tf.lite.OpsSet.SELECT_TF_OPS,
        ]
    if representative is not None:
        if _has_recurrent_layer(model):
            raise ValueError(
                "`representative` (calibrated quantization) crashes TF 2.21's TFLite "
                "calibrator on recurrent text encoders (lstm, bilstm, gru); export this "
                "model without it, or use the cnn, transformer or bag encoder."
            )
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: _rows(representative, specs)
    write_bytes_atomically(path, converter.convert())
    _write_sidecars(model, path.parent, specs)
    return path


def check_tflite_parity(model, path, features, atol=1e-5):
    """Runs the `.tflite` file row by row on `features` and returns its max abs diff from Keras.

    Args:
        model: `MultimodalClassifier`. The model that was exported.
        path: str or Path. The `.tflite` file.
        features: dict of arrays. A batch of preprocessed features, as
            `model.preprocessor` makes them.
        atol: float. Largest accepted absolute difference of any probability.

    Returns:
        float. The largest absolute difference over rows, classes and heads.

    Raises:
        ValueError: if the difference exceeds `atol`.

    Example:
    >>> features = model.preprocessor({"text": texts, "image": images})  # doctest: +SKIP
    >>> check_tflite_parity(model, "tflite/demo/model.tflite", features)  # doctest: +SKIP
    5.96e-08
    """
    features = {name: np.asarray(value) for name, value in features.items()}
    expected = model.predict(features, verbose=0)
    if not isinstance(expected, dict):
        expected = {"probabilities": expected}
    else:
        expected = {f"{head}_probabilities": value for head, value in expected.items()}
    runner = load_tflite(path)
    specs = input_specs(model)
    rows = len(next(iter(features.values())))
    largest = 0.0
    for index in range(rows):
        outputs = runner(**{name: features[name][index : index + 1] for name in specs})
        for name, value in expected.items():
            largest = max(largest, float(np.max(np.abs(outputs[name][0] - value[index]))))
    if largest > atol:
        raise ValueError(
            f"{path} differs from the Keras model by up to {largest:.3g} "
            f"(allowed {atol:.3g}) on {rows} rows."
        )
    return largest


def load_tflite(path):
    """The `serving_default` signature runner of a `.tflite` file (keyword arrays in, dict out).

    Args:
        path: str or Path. A file written by `export_tflite`.

    Example:
    >>> runner = load_tflite("tflite/demo/model.tflite")  # doctest: +SKIP
    >>> outputs = runner(token_ids=ids, image=pixels, image_present=present)  # doctest: +SKIP
    >>> outputs["probabilities"].shape  # doctest: +SKIP
    (1, 2)
    """
    import warnings

    with warnings.catch_warnings():  # "deprecated ... use ai_edge_litert", not installed here
        warnings.simplefilter("ignore", UserWarning)
        interpreter = tf.lite.Interpreter(model_path=str(path))
    return interpreter.get_signature_runner("serving_default")


def input_specs(model):
    """Batch-1 `tf.TensorSpec`s of the preprocessed features `model` reads, by name.

    Args:
        model: `MultimodalClassifier`.

    Example:
    >>> sorted(input_specs(model))  # doctest: +SKIP
    ['image', 'image_present', 'token_ids']
    """
    preprocessor = model.preprocessor
    shapes = {
        "token_ids": [1, preprocessor.sequence_length],
        "image": [1, *preprocessor.image_size, 3],
        "image_present": [1],
    }
    return {
        name: tf.TensorSpec(shapes[name], _INPUT_DTYPES[name], name=name)
        for name in model.input_names_used
    }


def _has_recurrent_layer(model):
    return any(isinstance(layer, keras.layers.RNN) for layer in model._flatten_layers())


def _rows(representative, specs):
    for features in representative:
        size = len(next(iter(features.values())))
        for index in range(size):
            yield {
                name: np.asarray(features[name][index : index + 1], spec.dtype.as_numpy_dtype)
                for name, spec in specs.items()
            }


def _write_sidecars(model, folder, specs):
    if isinstance(model.class_names, dict):
        lines = [f"{head}: {','.join(names)}" for head, names in model.class_names.items()]
    else:
        lines = list(model.class_names)
    write_text_atomically(folder / LABELS_FILE, "\n".join(lines) + "\n")
    standardizer = model.preprocessor.text_standardizer.get_config()
    description = {
        "inputs": {
            name: {"dtype": spec.dtype.name, "shape": spec.shape.as_list()}
            for name, spec in specs.items()
        },
        "outputs": [
            "probabilities" if not isinstance(model.class_names, dict) else f"{head}_probabilities"
            for head in model.head_classes()
        ],
        "token_ids": "index in vocabulary + 2 (0 padding, 1 unknown), padded with 0",
        "image": "decoded RGB, area-resized (squashed, no crop) to image_size, float 0..255",
        "standardizer": {
            key: value for key, value in standardizer.items() if key not in _LAYER_KEYS
        },
        # `MultimodalPreprocessor.from_config(...)` rebuilds the exact preprocessor.
        "preprocessor": model.preprocessor.get_config(),
    }
    write_text_atomically(
        folder / PREPROCESSOR_FILE, json.dumps(description, indent=1, ensure_ascii=False) + "\n"
    )
