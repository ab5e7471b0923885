"""A pretrained `keras.applications` backbone as image encoder."""

from collections.abc import Callable
from typing import NamedTuple

import keras
import numpy as np

from multimodal_tf.models.backbone_weights import resolve_backbone_weights
from multimodal_tf.models.base_image_encoder import BaseImageEncoder


class Architecture(NamedTuple):
    """How to build one backbone and scale its input."""

    constructor: Callable
    takes_alpha: bool
    #: The scaling this layer applies to 0..255 images, or None. MobileNetV3 and
    #: EfficientNet scale with layers inside the keras.applications model (their
    #: `preprocess_input` does nothing), so scaling them here would scale twice.
    preprocess_input: Callable | None


ARCHITECTURES = {
    "mobilenet_v2": Architecture(
        keras.applications.MobileNetV2,
        True,
        keras.applications.mobilenet_v2.preprocess_input,  # x / 127.5 - 1
    ),
    "mobilenet_v3_small": Architecture(keras.applications.MobileNetV3Small, True, None),
    "mobilenet_v3_large": Architecture(keras.applications.MobileNetV3Large, True, None),
    "efficientnet_b0": Architecture(keras.applications.EfficientNetB0, False, None),
    "resnet50": Architecture(
        keras.applications.ResNet50,
        False,
        keras.applications.resnet50.preprocess_input,  # RGB -> BGR, minus ImageNet means
    ),
}

# The ImageNet EfficientNet files store these per-channel standard deviations
# as the variance of the input `Normalization` layer.
_IMAGENET_STDDEV_RGB = np.array([0.229, 0.224, 0.225], "float32")


@keras.saving.register_keras_serializable(package="multimodal_tf")
class BackboneImageEncoder(BaseImageEncoder):
    """A `keras.applications` backbone pooled to a `grid_size` x `grid_size` token grid.

    Takes float32 images in [0, 255] and applies the backbone's own input
    scaling inside the graph, so the served model needs no other preprocessing.
    All five backbones downsample 32x: the feature map of an `s` x `s` image
    is `ceil(s / 32)` cells a side (64 -> 2, 96 -> 3, 128 -> 4, 224 -> 7), and
    `grid_size` can be at most that; with the default 64x64 images use
    `grid_size=2` or 128x128 images for `grid_size=4`.

    The backbone always runs in inference mode, frozen or fine-tuned: its
    BatchNormalization layers keep their ImageNet moving statistics, as the
    Keras transfer-learning guide advises, instead of re-estimating them
    from small, augmented batches of a new dataset (which wrecks the
    pretrained features in the first steps). Fine-tuning still trains their
    scales and offsets and every other backbone weight.

    Args:
        architecture: str. One of `"mobilenet_v2"`, `"mobilenet_v3_small"`,
            `"mobilenet_v3_large"`, `"efficientnet_b0"`, `"resnet50"`.
        backbone_weights: str or None. `None` (random initialization),
            `"imagenet"` (the file `keras.applications` loads for
            `weights="imagenet"`, from the Keras cache, `$KERAS_HOME/models/`,
            downloaded into it on first use; MobileNetV2 takes its 224x224
            checkpoint; see `backbone_weights.resolve_backbone_weights`), or
            the path of a local `.weights.h5` or `.h5` file holding the
            backbone without its classification top, for the same
            `architecture` and `alpha`.
        trainable_backbone: bool. `True` fine-tunes the backbone with the rest
            of the model.
        alpha: float. Width multiplier of the MobileNets; must stay 1.0 for
            the other architectures.
        hidden_dim: int. Width of the output tokens (shared with the text encoder).
        grid_size: int. The output has `grid_size ** 2` tokens.
        dropout_rate: float. Spatial dropout on the backbone's feature map.

    Example:
    >>> encoder = BackboneImageEncoder("mobilenet_v2", alpha=0.35, hidden_dim=8, grid_size=2)
    >>> tuple(encoder(np.zeros((1, 64, 64, 3), "float32")).shape)
    (1, 4, 8)
    """

    downsampling = 32

    def __init__(
        self,
        architecture="mobilenet_v2",
        backbone_weights=None,
        trainable_backbone=False,
        alpha=1.0,
        hidden_dim=64,
        grid_size=4,
        dropout_rate=0.0,
        **kwargs,
    ):
        if backbone_weights is not None:
            backbone_weights = str(backbone_weights)
        if architecture not in ARCHITECTURES:
            raise ValueError(
                f"Unknown architecture {architecture!r}; choose one of {tuple(ARCHITECTURES)}."
            )
        constructor, takes_alpha, _ = ARCHITECTURES[architecture]
        if alpha != 1.0 and not takes_alpha:
            raise ValueError(
                f"alpha only applies to the MobileNets; received alpha={alpha} "
                f"for {architecture!r}."
            )
        super().__init__(hidden_dim, grid_size, dropout_rate, **kwargs)
        # === Layers ===
        options = {"alpha": alpha} if takes_alpha else {}
        weights_file = resolve_backbone_weights(backbone_weights, architecture, alpha)
        self.backbone = constructor(
            include_top=False, weights=weights_file, input_shape=(None, None, 3), **options
        )
        if architecture == "efficientnet_b0" and weights_file is not None:
            self.backbone = _fold_imagenet_stddev(self.backbone)
        self.backbone.trainable = trainable_backbone
        # === Config ===
        self.architecture = architecture
        self.backbone_weights = backbone_weights
        self.trainable_backbone = trainable_backbone
        self.alpha = alpha

    def describe_feature_map(self):
        return f"the {self.architecture} backbone (32x downsampling)"

    def build_feature_map(self, input_shape):
        return self.backbone.compute_output_shape(input_shape)

    def feature_map(self, images, training=None):
        # On a NumPy array `preprocess_input` would work in place.
        images = keras.ops.convert_to_tensor(images, dtype=self.compute_dtype)
        preprocess_input = ARCHITECTURES[self.architecture].preprocess_input
        if preprocess_input is not None:
            images = preprocess_input(images)
        # An export swaps in a copy with BatchNormalization folded (`serving_backbones`).
        backbone = self.__dict__.get("_serving_backbone") or self.backbone
        return backbone(images, training=False)

    @property
    def frozen_feature_map(self):
        # The backbone runs in inference mode (no dropout, fixed BatchNorm
        # statistics), so frozen it gives every image the same map every epoch.
        return not (self.trainable and self.backbone.trainable)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "architecture": self.architecture,
                "backbone_weights": self.backbone_weights,
                "trainable_backbone": self.trainable_backbone,
                "alpha": self.alpha,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        # Loading a `.keras` file calls this and then fills every variable from
        # the file, so loading `backbone_weights` here would only repeat a
        # download, or fail where the original file is gone (a serving host, a
        # colleague's machine). The config keeps the recorded value, so it still
        # says which weights the model started from.
        config = dict(config)
        backbone_weights = config.pop("backbone_weights", None)
        layer = cls(backbone_weights=None, **config)
        layer.backbone_weights = backbone_weights
        return layer


def _fold_imagenet_stddev(backbone):
    """The EfficientNet loaded from a copy of Keras' ImageNet file, scaled as Keras scales it.

    For `weights="imagenet"` keras.applications adds a `Rescaling` layer after
    the input `Normalization`, because the ImageNet file stores the standard
    deviations as its variance; the encoder always builds the model as with
    `weights=None` and loads the file itself (`"imagenet"` resolves to the
    cached file), so that layer is missing. Folding the rescaling into the
    variance keeps one graph for every `backbone_weights`, so `from_config`
    rebuilds the same layers.
    """
    normalization = next(
        layer for layer in backbone.layers if isinstance(layer, keras.layers.Normalization)
    )
    variance = keras.ops.convert_to_numpy(normalization.adapt_variance)
    if np.allclose(variance, _IMAGENET_STDDEV_RGB):
        normalization.adapt_variance.assign(variance * _IMAGENET_STDDEV_RGB)
        normalization.finalize_state()
    return backbone
