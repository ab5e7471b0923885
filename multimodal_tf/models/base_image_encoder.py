"""What every image encoder shares: a feature map pooled to a token grid, projected."""

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
        self._channels = int(shape[-1])
        self._feature_map_shape = tuple(int(size) for size in shape[1:])
        self.projection.build((None, shape[-1]))
        self.position_embedding = self.add_weight(
            shape=(self.grid_size**2, self.hidden_dim),
            initializer=keras.initializers.RandomNormal(stddev=0.02),
            name="position_embedding",
        )

    def call(self, images, training=None, return_pooled=False):
        """Images -> tokens; with `return_pooled`, `(tokens, pooled)`.

        `pooled` is the feature map averaged and max-pooled over the whole
        image, `[batch, 2 * channels]`, before dropout: what
        `WideImageLogits` reads.
        """
        features = self.feature_map(images, training=training)
        return self.tokens_from_feature_map(features, training, return_pooled)

    def tokens_from_feature_map(self, features, training=None, return_pooled=False):
        """The rest of `call` after `feature_map`: `[batch, h, w, channels]` -> tokens.

        `MultimodalClassifier.feature_map_model()` runs this over cached
        feature maps of a frozen backbone (see `frozen_feature_map`).
        """
        pooled = self.pool_feature_map(features) if return_pooled else None
        features = self.dropout(features, training=training)
        rows = ops.cast(self._pool_rows, features.dtype)
        columns = ops.cast(self._pool_columns, features.dtype)
        features = ops.einsum("ih,bhwc->biwc", rows, features)
        features = ops.einsum("jw,biwc->bijc", columns, features)
        tokens = ops.reshape(features, (-1, self.grid_size**2, features.shape[-1]))
        tokens = self.projection(tokens) + self.position_embedding
        return (tokens, pooled) if return_pooled else tokens

    @staticmethod
    def pool_feature_map(features):
        """`[batch, h, w, channels]` -> `[batch, 2 * channels]`: the map's mean, then its max.

        What `call(..., return_pooled=True)` returns as `pooled`; applied to a
        cached feature map it gives the same features without the encoder.
        """
        return ops.concatenate(
            [ops.mean(features, axis=(1, 2)), ops.max(features, axis=(1, 2))], axis=-1
        )

    @property
    def frozen_feature_map(self):
        """True if `feature_map` has no weights that train and no randomness.

        Then an image's feature map is the same in every epoch and can be
        computed once (`feature_map_model()`). A scratch encoder trains its
        convolutions: False here; a frozen pretrained backbone says True.
        """
        return False

    @property
    def feature_map_shape(self):
        """`(h, w, channels)` of `feature_map`'s output for the built image size."""
        return self._feature_map_shape

    @property
    def pooled_dim(self):
        """Width of `call(..., return_pooled=True)`'s pooled features (after `build`)."""
        return 2 * self._channels

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.grid_size**2, self.hidden_dim)

    def compute_output_spec(self, images, training=None, return_pooled=False):
        tokens = keras.KerasTensor(self.compute_output_shape(images.shape), self.compute_dtype)
        if not return_pooled:
            return tokens
        pooled = (images.shape[0], self.pooled_dim)  # build() ran first
        return tokens, keras.KerasTensor(pooled, self.compute_dtype)

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
