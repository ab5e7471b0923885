"""A backbone for serving: each inference-mode BatchNormalization folded into its convolution.

Keras 3 computes an inference-mode `BatchNormalization` as four or five
element-wise ops over the whole feature map; MobileNetV2 has 52 of them. Once the
weights are fixed, as in an exported model, each is an affine map per channel that
the convolution before it can absorb: its kernel scaled per output channel and a
bias added, which TensorFlow fuses with the convolution. The export serves such a
copy of a `BackboneImageEncoder`'s backbone; the Keras model keeps the original.
"""

import contextlib

import keras
import numpy as np

_CONVOLUTIONS = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)


class _FoldedAway(keras.layers.Layer):
    """Stands where a folded `BatchNormalization` was: passes its input on."""

    def call(self, inputs, training=None, mask=None):
        return inputs


def fold_batch_norms(backbone):
    """A copy of a functional backbone with each BatchNormalization folded into the conv before it.

    A `BatchNormalization` (channels last) whose only input is a `Conv2D` or
    `DepthwiseConv2D` used by nothing else is folded: the convolution's kernel
    is scaled by `gamma / sqrt(moving_variance + epsilon)` per output channel
    and it gets the bias `beta - moving_mean * scale` (plus its own bias,
    scaled). Other layers are copied with their weights. The copy computes what
    `backbone(x, training=False)` does, up to float rounding, and shares no
    variables with it.

    Args:
        backbone: a functional `keras.Model` (a `keras.applications` backbone).

    Returns:
        `(copy, folded)`: the new model and how many BatchNormalizations it folded.

    Example:
    >>> backbone = keras.applications.MobileNetV2(alpha=0.35, include_top=False,
    ...     weights=None, input_shape=(None, None, 3))
    >>> copy, folded = fold_batch_norms(backbone)
    >>> folded
    52
    """
    pairs = {}  # convolution name -> the BatchNormalization folded into it
    for layer in backbone.layers:
        if not isinstance(layer, keras.layers.BatchNormalization) or layer.axis not in (-1, 3):
            continue
        if len(layer._inbound_nodes) != 1 or len(layer._inbound_nodes[0].parent_nodes) != 1:
            continue
        producer = layer._inbound_nodes[0].parent_nodes[0].operation
        if isinstance(producer, _CONVOLUTIONS) and len(producer._outbound_nodes) == 1:
            pairs[producer.name] = layer
    folded_away = {layer.name for layer in pairs.values()}

    def clone(layer):
        if layer.name in folded_away:
            return _FoldedAway(name=layer.name)
        config = layer.get_config()
        if layer.name in pairs:
            config["use_bias"] = True
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(backbone, clone_function=clone)
    for layer in backbone.layers:
        if layer.name in folded_away or not layer.weights:
            continue
        target = copy.get_layer(layer.name)
        if layer.name in pairs:
            target.set_weights(_folded_weights(layer, pairs[layer.name]))
        else:
            target.set_weights(layer.get_weights())
    return copy, len(pairs)


@contextlib.contextmanager
def serving_backbones(model):
    """While in effect, each `BackboneImageEncoder` of `model` runs a folded copy of its backbone.

    Yields the copies, whose variables an export must track. The encoders'
    own backbones, weights and Keras tracking are left as they were.
    """
    from multimodal_tf.models.backbone_image_encoder import BackboneImageEncoder

    encoders = [layer for layer in _sublayers(model) if isinstance(layer, BackboneImageEncoder)]
    copies = []
    try:
        for encoder in encoders:
            copy, _ = fold_batch_norms(encoder.backbone)
            # Not a Keras attribute: the encoder's layers and weights stay as saved.
            object.__setattr__(encoder, "_serving_backbone", copy)
            copies.append(copy)
        yield copies
    finally:
        for encoder in encoders:
            if "_serving_backbone" in encoder.__dict__:
                object.__delattr__(encoder, "_serving_backbone")


def _sublayers(model):
    members = getattr(model, "members", None)
    if members is not None:  # an ensemble: each member's layers
        return [layer for member in members for layer in _sublayers(member)]
    return list(model._flatten_layers(include_self=False, recursive=False))


def _folded_weights(convolution, norm):
    kernel = convolution.kernel.numpy()
    bias = convolution.bias.numpy() if convolution.use_bias else 0.0
    variance = norm.moving_variance.numpy()
    scale = 1.0 / np.sqrt(variance + norm.epsilon)
    if norm.scale:
        scale = scale * norm.gamma.numpy()
    offset = -norm.moving_mean.numpy() * scale
    if norm.center:
        offset = offset + norm.beta.numpy()
    if isinstance(convolution, keras.layers.DepthwiseConv2D):
        # [height, width, channels, multiplier]: output channel c * multiplier + m.
        kernel = kernel * scale.reshape(kernel.shape[2], kernel.shape[3])
    else:
        kernel = kernel * scale  # [height, width, in, out]
    return [kernel.astype("float32"), (bias * scale + offset).astype("float32")]
