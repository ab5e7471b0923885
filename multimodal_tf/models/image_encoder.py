"""Decoded images -> a short sequence of image tokens."""

import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="multimodal_tf")
class BaseImageEncoder(keras.layers.Layer):
    """Base class: images -> a feature map -> a `grid_size` x `grid_size` token grid.

    Every image encoder takes float32 images `[batch, height, width, 3]` with
    values in [0, 255] (what `ImageDecoder` gives) and returns
    `[batch, grid_size ** 2, hidden_dim]` tokens, so a classifier can swap one
    for another. Subclasses implement `build_feature_map(input_shape)` and
    `feature_map(images, training)`; this class average-pools the map to the
    grid (each token covers an equal share of the map, whole cells or not),
    projects it to `hidden_dim` and adds a learned position embedding.

    Args:
        hidden_dim: int. Width of the output tokens (shared with the text encoder).
        grid_size: int. The output has `grid_size ** 2` tokens.
        dropout_rate: float. Spatial dropout on the feature map.
    """

    #: How many pixels one feature-map cell spans; only used in error messages.
    downsampling = 1

    def __init__(self, hidden_dim=64, grid_size=4, dropout_rate=0.0, **kwargs):
        super().__init__(**kwargs)
        # === Layers ===
        self.dropout = keras.layers.SpatialDropout2D(dropout_rate)
        self.projection = keras.layers.Dense(hidden_dim, name="projection")
        # === Config ===
        self.hidden_dim = hidden_dim
        self.grid_size = grid_size
        self.dropout_rate = dropout_rate

    def build_feature_map(self, input_shape):
        """Builds the layers of `feature_map`; returns the feature map's shape."""
        raise NotImplementedError

    def feature_map(self, images, training=None):
        """`[batch, height, width, 3]` images in [0, 255] -> `[batch, h, w, channels]`."""
        raise NotImplementedError

    def describe_feature_map(self):
        """Where the feature map comes from, for error messages."""
        return f"a {self.downsampling}x downsampling"

    def build(self, input_shape):
        height, width = input_shape[1], input_shape[2]
        if height is None or width is None:
            raise ValueError(
                f"{type(self).__name__} needs a fixed image size; received shape {input_shape}."
            )
        shape = self.build_feature_map(tuple(input_shape))
        if shape[1] < self.grid_size or shape[2] < self.grid_size:
            needed = self.grid_size * self.downsampling
            raise ValueError(
                f"Images of {height}x{width} shrink to {shape[1]}x{shape[2]} after "
                f"{self.describe_feature_map()}, smaller than grid_size={self.grid_size}. "
                f"Use images of at least {needed}x{needed} or grid_size <= "
                f"{max(1, min(shape[1], shape[2]))}."
            )
        # Constants, not variables: the pooling is fixed by the shapes.
        self._pool_rows = _pooling_matrix(shape[1], self.grid_size)
        self._pool_columns = _pooling_matrix(shape[2], self.grid_size)
        self.projection.build((None, shape[-1]))
        self.position_embedding = self.add_weight(
            shape=(self.grid_size**2, self.hidden_dim),
            initializer=keras.initializers.RandomNormal(stddev=0.02),
            name="position_embedding",
        )

    def call(self, images, training=None):
        features = self.feature_map(images, training=training)
        features = self.dropout(features, training=training)
        rows = ops.cast(self._pool_rows, features.dtype)
        columns = ops.cast(self._pool_columns, features.dtype)
        features = ops.einsum("ih,bhwc->biwc", rows, features)
        features = ops.einsum("jw,biwc->bijc", columns, features)
        tokens = ops.reshape(features, (-1, self.grid_size**2, features.shape[-1]))
        return self.projection(tokens) + self.position_embedding

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.grid_size**2, self.hidden_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "hidden_dim": self.hidden_dim,
                "grid_size": self.grid_size,
                "dropout_rate": self.dropout_rate,
            }
        )
        return config


def _pooling_matrix(size, grid_size):
    """`[grid_size, size]` weights that average `size` cells into `grid_size` equal bins.

    A cell split by a bin edge counts in both bins by the share it has in each;
    when `grid_size` divides `size` this is plain average pooling. Unlike
    `AveragePooling2D` plus a crop, no row or column is left out (a 7x7 map
    pooled to 4x4 would otherwise lose 3 of its 7 rows).
    """
    edges = np.arange(grid_size + 1) * size / grid_size
    cells = np.arange(size)
    overlap = np.minimum(edges[1:, None], cells + 1) - np.maximum(edges[:-1, None], cells)
    return (np.clip(overlap, 0.0, None) * grid_size / size).astype("float32")


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
    # Imported here: that module imports `BaseImageEncoder` from this one.
    from multimodal_tf.models.backbone_image_encoder import BackboneImageEncoder

    return BackboneImageEncoder(
        name, backbone_weights=weights, trainable_backbone=trainable_backbone, **common
    )
