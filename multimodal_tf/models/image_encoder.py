"""Decoded images -> a short sequence of image tokens."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="multimodal_tf")
class ImageEncoder(keras.layers.Layer):
    """A strided `Conv2D` stack pooled to a `grid_size` x `grid_size` token grid.

    Each stride-2 convolution halves the resolution, so the costly part runs on
    small maps; the last map is average-pooled to a small grid (e.g. 4 x 4 = 16
    tokens) so that attention over image tokens stays cheap on a CPU. Each
    token gets a learned position embedding.

    Args:
        filters: tuple of int. Output channels of each stride-2 convolution.
        hidden_dim: int. Width of the output tokens (shared with the text encoder).
        grid_size: int. The output has `grid_size ** 2` tokens.
        dropout_rate: float. Spatial dropout after the convolutions.

    Example:
    >>> encoder = ImageEncoder(filters=(4, 4), hidden_dim=8, grid_size=2)
    >>> encoder(np.zeros((1, 16, 16, 3), "float32")).shape
    (1, 4, 8)
    """

    def __init__(
        self, filters=(32, 64, 96), hidden_dim=64, grid_size=4, dropout_rate=0.0, **kwargs
    ):
        super().__init__(**kwargs)
        # === Layers ===
        self.rescaling = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0)
        self.convolutions = [
            keras.layers.Conv2D(
                width, 3, strides=2, padding="same", activation="relu", name=f"conv_{i}"
            )
            for i, width in enumerate(filters)
        ]
        self.dropout = keras.layers.SpatialDropout2D(dropout_rate)
        self.projection = keras.layers.Dense(hidden_dim, name="projection")
        # === Config ===
        self.filters = tuple(int(width) for width in filters)
        self.hidden_dim = hidden_dim
        self.grid_size = grid_size
        self.dropout_rate = dropout_rate

    def build(self, input_shape):
        height, width = input_shape[1], input_shape[2]
        if height is None or width is None:
            raise ValueError(
                f"ImageEncoder needs a fixed image size; received shape {input_shape}."
            )
        shape = tuple(input_shape)
        for convolution in self.convolutions:
            convolution.build(shape)
            shape = convolution.compute_output_shape(shape)
        if shape[1] < self.grid_size or shape[2] < self.grid_size:
            raise ValueError(
                f"Images of {height}x{width} shrink to {shape[1]}x{shape[2]} after "
                f"{len(self.filters)} stride-2 convolutions, smaller than "
                f"grid_size={self.grid_size}. Use larger images or fewer filters."
            )
        self.pooling = keras.layers.AveragePooling2D(
            pool_size=(shape[1] // self.grid_size, shape[2] // self.grid_size)
        )
        self.projection.build((None, shape[-1]))
        self.position_embedding = self.add_weight(
            shape=(self.grid_size**2, self.hidden_dim),
            initializer=keras.initializers.RandomNormal(stddev=0.02),
            name="position_embedding",
        )

    def call(self, images, training=None):
        features = self.rescaling(images)
        for convolution in self.convolutions:
            features = convolution(features)
        features = self.dropout(features, training=training)
        features = self.pooling(features)[:, : self.grid_size, : self.grid_size, :]
        tokens = ops.reshape(features, (-1, self.grid_size**2, features.shape[-1]))
        return self.projection(tokens) + self.position_embedding

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.grid_size**2, self.hidden_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "hidden_dim": self.hidden_dim,
                "grid_size": self.grid_size,
                "dropout_rate": self.dropout_rate,
            }
        )
        return config
