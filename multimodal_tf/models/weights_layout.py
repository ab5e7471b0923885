"""The two HDF5 layouts Keras writes weights in: read, check against an architecture, write.

Keras' own downloads (`keras.applications`' `.h5` files) hold layers by name and
load in order; Keras 3's `.weights.h5` holds them by class name and order. Both
are read here to check a file against the model it should fit, layer by layer,
and a model's weights are written in the first layout, the one Keras' cache holds.
"""

import warnings

import h5py

from multimodal_tf.errors import ConfigError


def bare_backbone(architecture, alpha=1.0):
    """The `keras.applications` model without top or weights, as the encoder builds it."""
    from multimodal_tf.models.backbone_image_encoder import ARCHITECTURES

    constructor, takes_alpha, _ = ARCHITECTURES[architecture]
    options = {"alpha": alpha} if takes_alpha else {}
    return constructor(include_top=False, weights=None, input_shape=(None, None, 3), **options)


def check_weights_fit(path, model, what):
    """Raises `ConfigError` naming the first layer whose weights in `path` differ from `model`'s.

    Reads both layouts Keras writes: Keras' own `.h5` (layers by name, loaded
    in order) and the Keras 3 `.weights.h5` (layers by class name and order).

    Args:
        path: str or Path. The weights file.
        model: a Keras model built as the file should fit it.
        what: str. The architecture, as the message names it.
    """
    expected = [
        (layer.name, [tuple(weight.shape) for weight in layer.weights])
        for layer in model.layers
        if layer.weights
    ]
    try:
        with h5py.File(path, "r") as handle:
            found = (
                _keras3_layers(handle, model) if is_keras3_layout(path) else _legacy_layers(handle)
            )
    except OSError as error:
        raise ConfigError(f"{path} is not a readable HDF5 weights file: {error}") from None
    for (name, shapes), (file_name, file_shapes) in zip(expected, found, strict=False):
        if shapes != file_shapes:
            raise ConfigError(
                f"{path} does not hold {what} weights: layer {name!r} has weights of shapes "
                f"{_shapes(shapes)}, and the file's layer {file_name!r} holds "
                f"{_shapes(file_shapes)}."
            )
    if len(found) != len(expected):
        extra = (found if len(found) > len(expected) else expected)[min(len(found), len(expected))]
        raise ConfigError(
            f"{path} does not hold {what} weights: the file has weights for {len(found)} "
            f"layers and {what} has {len(expected)} layers with weights (first unmatched: "
            f"{extra[0]!r}, {_shapes(extra[1])})."
        )


def is_keras3_layout(path):
    return str(path).endswith(".weights.h5")


def _legacy_layers(handle):
    if "model_weights" in handle:  # a whole model saved by Keras 2
        handle = handle["model_weights"]
    layers = []
    for name in _strings(handle.attrs.get("layer_names", [])):
        group = handle[name]
        weight_names = _strings(group.attrs.get("weight_names", []))
        if weight_names:
            layers.append((name, [tuple(group[weight].shape) for weight in weight_names]))
    return layers


def _keras3_layers(handle, model):
    """The file's layers in `model.layers` order, keyed as Keras 3 saves a functional model."""
    from keras.src.utils.naming import to_snake_case

    stored = handle.get("layers", {})
    used, layers = {}, []
    for layer in model.layers:
        key = to_snake_case(layer.__class__.__name__)
        if key in used:
            used[key] += 1
            key = f"{key}_{used[key]}"
        else:
            used[key] = 0
        variables = stored[key]["vars"] if key in stored and "vars" in stored[key] else {}
        shapes = [tuple(variables[str(index)].shape) for index in range(len(variables))]
        if shapes or layer.weights:
            layers.append((key, shapes))
    return layers


def write_legacy_h5(model, path):
    from keras.src.legacy.saving.legacy_h5_format import save_weights_to_hdf5_group

    with h5py.File(path, "w") as handle:
        save_weights_to_hdf5_group(handle, model)


def load_quietly(model, path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.load_weights(str(path))


def _strings(values):
    return [value.decode("utf8") if isinstance(value, bytes) else str(value) for value in values]


def _shapes(shapes):
    return "[" + ", ".join(str(tuple(shape)) for shape in shapes) + "]" if shapes else "none"
