"""Token ids -> a masked sequence of text tokens: the shared base, the RNN encoder, a registry."""

import keras
from keras import ops

TEXT_ENCODERS = ("lstm", "bilstm", "gru", "cnn", "transformer")
RNN_TYPES = ("lstm", "gru")


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


@keras.saving.register_keras_serializable(package="multimodal_tf")
class TextEncoder(BaseTextEncoder):
    """`Embedding` -> LSTM or GRU (optionally bidirectional) -> projection, per token.

    Args:
        vocabulary_size: int. Size of the token id space (padding and OOV included).
        embedding_dim: int. Width of the token embeddings.
        lstm_units: int. Width of the recurrent state (of each direction).
        hidden_dim: int. Width of the output tokens (shared with the image encoder).
        dropout_rate: float. Dropout on the embeddings during training.
        rnn: str. `"lstm"` or `"gru"`.
        bidirectional: bool. Also read the text backwards and concatenate both states.

    Example:
    >>> encoder = TextEncoder(vocabulary_size=10, embedding_dim=4, lstm_units=4, hidden_dim=8)
    >>> tuple(encoder(np.array([[2, 3, 0]])).shape)
    (1, 3, 8)
    """

    def __init__(
        self,
        vocabulary_size,
        embedding_dim=64,
        lstm_units=64,
        hidden_dim=64,
        dropout_rate=0.0,
        rnn="lstm",
        bidirectional=False,
        **kwargs,
    ):
        if rnn not in RNN_TYPES:
            raise ValueError(f"`rnn` must be one of {RNN_TYPES}; received {rnn!r}.")
        super().__init__(vocabulary_size, embedding_dim, hidden_dim, dropout_rate, **kwargs)
        # === Layers ===
        rnn_cls = keras.layers.LSTM if rnn == "lstm" else keras.layers.GRU
        recurrent = rnn_cls(lstm_units, return_sequences=True, name=rnn)
        if bidirectional:
            recurrent = keras.layers.Bidirectional(recurrent, name=f"bi{rnn}")
        # `.keras` files store weights under attribute names: keeping the name
        # `lstm` whatever the cell lets models saved before `rnn` existed load.
        self.lstm = recurrent
        # === Config ===
        self.lstm_units = lstm_units
        self.rnn = rnn
        self.bidirectional = bidirectional

    def build_encoder(self, embedded_shape):
        self.lstm.build(embedded_shape)
        return self.lstm.compute_output_shape(embedded_shape)

    def encode(self, embedded, mask, training=None):
        return self.lstm(embedded, mask=mask, training=training)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "lstm_units": self.lstm_units,
                "rnn": self.rnn,
                "bidirectional": self.bidirectional,
            }
        )
        return config


def get_text_encoder(
    name,
    /,
    vocabulary_size,
    embedding_dim=64,
    hidden_dim=64,
    dropout_rate=0.0,
    lstm_units=64,
    **kwargs,
):
    """Returns the text encoder called `name`, configured; an encoder instance is returned as is.

    `name` is positional-only, so `name="text_encoder"` among `kwargs` names
    the layer, like every other keyword argument reaching the constructor.

    Args:
        name: str or `BaseTextEncoder`. One of `TEXT_ENCODERS`.
        vocabulary_size: int. Size of the token id space (padding and OOV included).
        embedding_dim: int. Width of the token embeddings.
        hidden_dim: int. Width of the output tokens.
        dropout_rate: float. Dropout during training.
        lstm_units: int. Recurrent state width; used by `"lstm"`, `"bilstm"`, `"gru"`.
        **kwargs: Passed to the encoder's constructor (e.g. `num_heads`, `name`).

    Example:
    >>> encoder = get_text_encoder("cnn", 10, embedding_dim=4, hidden_dim=8, filters=4)
    >>> tuple(encoder(np.array([[2, 3, 0]])).shape)
    (1, 3, 8)
    """
    if isinstance(name, BaseTextEncoder):
        return name
    # Imported here: both modules import `BaseTextEncoder` from this one.
    from multimodal_tf.models.conv_text_encoder import ConvTextEncoder
    from multimodal_tf.models.transformer_text_encoder import TransformerTextEncoder

    common = dict(
        vocabulary_size=vocabulary_size,
        embedding_dim=embedding_dim,
        hidden_dim=hidden_dim,
        dropout_rate=dropout_rate,
        **kwargs,
    )
    if name in ("lstm", "bilstm", "gru"):
        rnn = "gru" if name == "gru" else "lstm"
        return TextEncoder(lstm_units=lstm_units, rnn=rnn, bidirectional=name == "bilstm", **common)
    if name == "cnn":
        return ConvTextEncoder(**common)
    if name == "transformer":
        return TransformerTextEncoder(**common)
    raise ValueError(f"Unknown text encoder {name!r}; expected one of {TEXT_ENCODERS}.")
