"""Token ids -> text tokens through parallel 1D convolutions (n-gram detectors)."""

import keras
from keras import ops

from multimodal_tf.models.base_text_encoder import BaseTextEncoder


@keras.saving.register_keras_serializable(package="multimodal_tf")
class ConvTextEncoder(BaseTextEncoder):
    """`Embedding` -> parallel `Conv1D`s, one per kernel size -> projection, per token.

    Each convolution sees a window of `kernel_size` tokens around each position
    (`padding="same"`, so there is one output token per input token); their
    outputs are concatenated. Faster than an RNN on a CPU, but each token only
    sees its neighbourhood.

    Args:
        vocabulary_size: int. Size of the token id space (padding and OOV included).
        embedding_dim: int. Width of the token embeddings.
        hidden_dim: int. Width of the output tokens (shared with the image encoder).
        dropout_rate: float. Dropout on the embeddings during training.
        filters: int. Output channels of each convolution.
        kernel_sizes: tuple of int. Window widths, in tokens, one convolution each.

    Example:
    >>> encoder = ConvTextEncoder(vocabulary_size=10, embedding_dim=4, hidden_dim=8, filters=4)
    >>> tuple(encoder(np.array([[2, 3, 0]])).shape)
    (1, 3, 8)
    """

    def __init__(
        self,
        vocabulary_size,
        embedding_dim=64,
        hidden_dim=64,
        dropout_rate=0.0,
        filters=64,
        kernel_sizes=(3, 5),
        **kwargs,
    ):
        super().__init__(vocabulary_size, embedding_dim, hidden_dim, dropout_rate, **kwargs)
        kernel_sizes = tuple(int(size) for size in kernel_sizes)
        if not kernel_sizes or min(kernel_sizes) < 1:
            raise ValueError(
                f"`kernel_sizes` must be one or more positive ints; received {kernel_sizes}."
            )
        # === Layers ===
        self.convolutions = [
            keras.layers.Conv1D(
                filters, size, padding="same", activation="relu", name=f"conv_{size}"
            )
            for size in kernel_sizes
        ]
        # === Config ===
        self.filters = filters
        self.kernel_sizes = kernel_sizes

    def build_encoder(self, embedded_shape):
        for convolution in self.convolutions:
            convolution.build(embedded_shape)
        return (*embedded_shape[:-1], self.filters * len(self.convolutions))

    def encode(self, embedded, mask, training=None):
        # Zeroed padding looks like the convolutions' own "same" padding, so a
        # text gives the same outputs however much padding follows it.
        embedded = embedded * ops.cast(mask, embedded.dtype)[:, :, None]
        return ops.concatenate([conv(embedded) for conv in self.convolutions], axis=-1)

    def get_config(self):
        config = super().get_config()
        config.update({"filters": self.filters, "kernel_sizes": self.kernel_sizes})
        return config
