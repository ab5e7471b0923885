"""What every text encoder shares: embedding, padding mask, projection to `hidden_dim`."""

import keras
from keras import ops


class BaseTextEncoder(keras.layers.Layer):
    """Base class: `Embedding` -> a sequence model -> projection to `hidden_dim`.

    Every text encoder is called the same way, `encoder(token_ids)` with int
    `[batch, seq]` ids, and returns float `[batch, seq, hidden_dim]` tokens.
    Padding (id 0) is masked; the mask travels with the output so that a
    fusion layer ignores padded positions. Subclasses implement
    `build_encoder(embedded_shape)` (returning the shape it outputs) and
    `encode(embedded, mask, training)`.

    Args:
        vocabulary_size: int. Size of the token id space (padding and OOV included).
        embedding_dim: int. Width of the token embeddings.
        hidden_dim: int. Width of the output tokens (shared with the image encoder).
        dropout_rate: float. Dropout on the embeddings during training.
    """

    def __init__(
        self, vocabulary_size, embedding_dim=64, hidden_dim=64, dropout_rate=0.0, **kwargs
    ):
        super().__init__(**kwargs)
        # === Layers ===
        self.embedding = keras.layers.Embedding(
            vocabulary_size, embedding_dim, name="token_embedding"
        )
        self.dropout = keras.layers.Dropout(dropout_rate)
        self.projection = keras.layers.Dense(hidden_dim, name="projection")
        # === Config ===
        self.vocabulary_size = vocabulary_size
        self.embedding_dim = embedding_dim
        self.hidden_dim = hidden_dim
        self.dropout_rate = dropout_rate
        self.supports_masking = True

    def build(self, input_shape):
        self.embedding.build(input_shape)
        self.projection.build(self.build_encoder((*input_shape, self.embedding_dim)))

    def build_encoder(self, embedded_shape):
        """Builds the sequence model; returns the shape of what `encode` outputs."""
        raise NotImplementedError

    def call(self, token_ids, training=None):
        mask = ops.not_equal(token_ids, 0)
        embedded = self.dropout(self.embedding(token_ids), training=training)
        return self.projection(self.encode(embedded, mask, training=training))

    def encode(self, embedded, mask, training=None):
        raise NotImplementedError

    def compute_mask(self, token_ids, mask=None):
        return ops.not_equal(token_ids, 0)

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.hidden_dim)

    def set_embeddings(self, matrix):
        """Replaces the token embeddings, e.g. with `load_word_vectors(...)[0]`."""
        if not self.built:
            self.build((None, None))
        expected = tuple(self.embedding.embeddings.shape)
        received = tuple(ops.shape(matrix))
        if received != expected:
            raise ValueError(
                f"The embedding matrix must have shape {expected} "
                f"(vocabulary_size, embedding_dim); received shape {received}."
            )
        self.embedding.embeddings.assign(ops.cast(matrix, self.embedding.embeddings.dtype))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "embedding_dim": self.embedding_dim,
                "hidden_dim": self.hidden_dim,
                "dropout_rate": self.dropout_rate,
            }
        )
        return config
