"""Token ids -> a masked sequence of text tokens."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="multimodal_tf")
class TextEncoder(keras.layers.Layer):
    """`Embedding` -> LSTM -> projection: one `hidden_dim` vector per token.

    Padding (id 0) is masked; the mask travels with the output so that a
    fusion layer ignores padded positions.

    Args:
        vocabulary_size: int. Size of the token id space (padding and OOV included).
        embedding_dim: int. Width of the token embeddings.
        lstm_units: int. Width of the LSTM state.
        hidden_dim: int. Width of the output tokens (shared with the image encoder).
        dropout_rate: float. Dropout on the embeddings during training.

    Example:
    >>> encoder = TextEncoder(vocabulary_size=10, embedding_dim=4, lstm_units=4, hidden_dim=8)
    >>> encoder(np.array([[2, 3, 0]])).shape
    (1, 3, 8)
    """

    def __init__(
        self,
        vocabulary_size,
        embedding_dim=64,
        lstm_units=64,
        hidden_dim=64,
        dropout_rate=0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        # === Layers ===
        self.embedding = keras.layers.Embedding(
            vocabulary_size, embedding_dim, name="token_embedding"
        )
        self.dropout = keras.layers.Dropout(dropout_rate)
        self.lstm = keras.layers.LSTM(lstm_units, return_sequences=True, name="lstm")
        self.projection = keras.layers.Dense(hidden_dim, name="projection")
        # === Config ===
        self.vocabulary_size = vocabulary_size
        self.embedding_dim = embedding_dim
        self.lstm_units = lstm_units
        self.hidden_dim = hidden_dim
        self.dropout_rate = dropout_rate
        self.supports_masking = True

    def build(self, input_shape):
        self.embedding.build(input_shape)
        self.lstm.build((*input_shape, self.embedding_dim))
        self.projection.build((*input_shape, self.lstm_units))

    def call(self, token_ids, training=None):
        mask = ops.not_equal(token_ids, 0)
        tokens = self.dropout(self.embedding(token_ids), training=training)
        tokens = self.lstm(tokens, mask=mask, training=training)
        return self.projection(tokens)

    def compute_mask(self, token_ids, mask=None):
        return ops.not_equal(token_ids, 0)

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.hidden_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "embedding_dim": self.embedding_dim,
                "lstm_units": self.lstm_units,
                "hidden_dim": self.hidden_dim,
                "dropout_rate": self.dropout_rate,
            }
        )
        return config
