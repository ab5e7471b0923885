"""Decoded images -> a short sequence of image tokens."""

import keras

from multimodal_tf.models.backbone_image_encoder import BackboneImageEncoder
from multimodal_tf.models.base_image_encoder import BaseImageEncoder


@keras.saving.register_keras_serializable(package="multimodal_tf")
class ImageEncoder(BaseImageEncoder):
    """A strided `Conv2D` stack pooled to a `grid_size` x `grid_size` token grid.

    Each stride-2 convolution halves the resolution, so the costly part runs on
    small maps; the last map is average-pooled to a small grid (e.g. 4 x 4 = 16
    tokens) so that attention over image tokens stays cheap on a CPU. Each
    token gets a learned position embedding. For pretrained backbones see
    `BackboneImageEncoder`.

    Args:
        filters: tuple of int. Output channels of each stride-2 convolution.
        hidden_dim: int. Width of the output tokens (shared with the text encoder).
        grid_size: int. The output has `grid_size ** 2` tokens.
        dropout_rate: float. Spatial dropout after the convolutions.

    Example:
    >>> encoder = ImageEncoder(filters=(4, 4), hidden_dim=8, grid_size=2)
    >>> tuple(encoder(np.zeros((1, 16, 16, 3), "float32")).shape)
    (1, 4, 8)
    """

    def __init__(
        self, filters=(32, 64, 96), hidden_dim=64, grid_size=4, dropout_rate=0.0, **kwargs
    ):
        super().__init__(hidden_dim, grid_size, dropout_rate, **kwargs)
        # === Layers ===
        self.rescaling = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0)
        self.convolutions = [
            keras.layers.Conv2D(
                width, 3, strides=2, padding="same", activation="relu", name=f"conv_{i}"
            )
            for i, width in enumerate(filters)
        ]
        # === Config ===
        self.filters = tuple(int(width) for width in filters)

    @property
    def downsampling(self):
        return 2 ** len(self.filters)

    def describe_feature_map(self):
        return f"{len(self.filters)} stride-2 convolutions (fewer filters shrink less)"

    def build_feature_map(self, input_shape):
        shape = input_shape
        for convolution in self.convolutions:
            convolution.build(shape)
            shape = convolution.compute_output_shape(shape)
        return shape

    def feature_map(self, images, training=None):
        features = self.rescaling(images)
        for convolution in self.convolutions:
            features = convolution(features)
        return features

    def get_config(self):
        config = super().get_config()
        config.update({"filters": self.filters})
        return config


IMAGE_ENCODERS = (
    "conv",
    "mobilenet_v2",
    "mobilenet_v3_small",
    "mobilenet_v3_large",
    "efficientnet_b0",
    "resnet50",
)


def get_image_encoder(
    name,
    /,
    hidden_dim=64,
    grid_size=4,
    dropout_rate=0.0,
    filters=(32, 64, 96),
    weights=None,
    trainable_backbone=False,
    **kwargs,
):
    """Returns the image encoder called `name`, configured; an encoder instance is returned as is.

    `"conv"` is `ImageEncoder`; the other names are `BackboneImageEncoder`
    architectures. `name` is positional-only, so `name="image_encoder"` among
    `kwargs` names the layer.

    Args:
        name: str or `BaseImageEncoder`. One of `IMAGE_ENCODERS`.
        hidden_dim: int. Width of the output tokens.
        grid_size: int. The output has `grid_size ** 2` tokens.
        dropout_rate: float. Spatial dropout on the feature map.
        filters: tuple of int. Channels of the `"conv"` encoder; unused by backbones.
        weights: str or None. A backbone's `backbone_weights`: `None`,
            `"imagenet"` or a local weights file. Must be `None` for `"conv"`.
        trainable_backbone: bool. Fine-tune a backbone; unused by `"conv"`.
        **kwargs: Passed to the encoder's constructor (e.g. `alpha`, `name`).

    Example:
    >>> encoder = get_image_encoder("conv", hidden_dim=8, grid_size=2, filters=(4, 4))
    >>> tuple(encoder(np.zeros((1, 16, 16, 3), "float32")).shape)
    (1, 4, 8)
    """
    if isinstance(name, BaseImageEncoder):
        return name
    if name not in IMAGE_ENCODERS:
        raise ValueError(f"Unknown image encoder {name!r}; expected one of {IMAGE_ENCODERS}.")
    common = dict(hidden_dim=hidden_dim, grid_size=grid_size, dropout_rate=dropout_rate, **kwargs)
    if name == "conv":
        if weights is not None:
            raise ValueError(
                f"The 'conv' image encoder is trained from scratch; received weights={weights!r}. "
                f"Pretrained weights need a backbone: one of {IMAGE_ENCODERS[1:]}."
            )
        return ImageEncoder(filters, **common)
    return BackboneImageEncoder(
        name, backbone_weights=weights, trainable_backbone=trainable_backbone, **common
    )
