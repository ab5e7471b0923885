"""Token ids -> a masked sequence of text tokens: the recurrent encoder and the registry."""

import keras

from multimodal_tf.models.bag_text_encoder import BagOfNgramsEncoder
from multimodal_tf.models.base_text_encoder import BaseTextEncoder
from multimodal_tf.models.conv_text_encoder import ConvTextEncoder
from multimodal_tf.models.transformer_text_encoder import TransformerTextEncoder

# "hub": a KerasHub preset's tokenizer and backbone on raw text (`HubTextEncoder`, the
# [hub] extra), built by `encoder_layers.text_encoder_layer` from `text_preset`.
TEXT_ENCODERS = ("bag", "lstm", "bilstm", "gru", "cnn", "transformer", "hub")


def text_features_for(name):
    """The `MultimodalPreprocessor(text_features=...)` the encoder called `name` reads.

    Example:
    >>> text_features_for("bag"), text_features_for("lstm")
    ('ngrams', 'words')
    """
    # `hub` reads raw text (its own tokenizer); the preprocessor's n-grams feed the wide path.
    return "ngrams" if name in ("bag", "hub") else "words"


RNN_TYPES = ("lstm", "gru")


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
    if name == "bag":
        return BagOfNgramsEncoder(**common)
    if name == "cnn":
        return ConvTextEncoder(**common)
    if name == "transformer":
        return TransformerTextEncoder(**common)
    if name == "hub":
        raise ValueError(
            "The `hub` encoder is built from a KerasHub preset, not a vocabulary: "
            "`HubTextEncoder(preset)`, or `MultimodalClassifier(text_encoder='hub', "
            "text_preset=...)`."
        )
    raise ValueError(f"Unknown text encoder {name!r}; expected one of {TEXT_ENCODERS}.")
