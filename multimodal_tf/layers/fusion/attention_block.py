"""A Transformer block whose queries may come from other tokens than its keys."""

import contextlib
import warnings

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="multimodal_tf")
class AttentionBlock(keras.layers.Layer):
    """Post-norm Transformer block: queries attend over keys/values, then a feed-forward.

    Shared by the attention fusions (joint self-attention passes the same
    tokens as queries and keys; cross-attention passes one modality's tokens as
    queries).

    Args:
        hidden_dim: int. Token width.
        num_heads: int. Attention heads (must divide `hidden_dim`).
        dropout_rate: float. Dropout on attention weights and residual branches.

    Example:
    >>> block = AttentionBlock(hidden_dim=8, num_heads=2)
    >>> q, kv = np.ones((1, 3, 8), "float32"), np.ones((1, 5, 8), "float32")
    >>> block(q, kv, np.ones((1, 3), bool), np.ones((1, 5), bool)).shape
    (1, 3, 8)
    """

    def __init__(self, hidden_dim=64, num_heads=4, dropout_rate=0.0, **kwargs):
        super().__init__(**kwargs)
        self.attention = keras.layers.MultiHeadAttention(
            num_heads, hidden_dim // num_heads, dropout=dropout_rate, name="attention"
        )
        self.attention_norm = keras.layers.LayerNormalization(epsilon=1e-6, name="attention_norm")
        self.feedforward = keras.layers.Dense(hidden_dim * 2, activation="gelu", name="ffn_in")
        self.feedforward_output = keras.layers.Dense(hidden_dim, name="ffn_out")
        self.feedforward_norm = keras.layers.LayerNormalization(epsilon=1e-6, name="ffn_norm")
        self.dropout = keras.layers.Dropout(dropout_rate)
        self.hidden_dim = hidden_dim
        self.num_heads = num_heads
        self.dropout_rate = dropout_rate

    def build(self, query_shape, value_shape=None, *args):
        value_shape = value_shape or query_shape
        self.attention.build(query_shape, value_shape)
        self.attention_norm.build(query_shape)
        self.feedforward.build(query_shape)
        self.feedforward_output.build((*query_shape[:-1], self.hidden_dim * 2))
        self.feedforward_norm.build(query_shape)
        self.built = True

    def call(self, query, value, query_mask, value_mask, training=None):
        attention_mask = ops.logical_and(query_mask[:, :, None], value_mask[:, None, :])
        with _one_key_is_fine(value):
            attended = self.attention(
                query, value, attention_mask=attention_mask, training=training
            )
        tokens = self.attention_norm(query + self.dropout(attended, training=training))
        hidden = self.feedforward_output(self.feedforward(tokens))
        return self.feedforward_norm(tokens + self.dropout(hidden, training=training))

    def attention_scores(self, query, value, query_mask, value_mask):
        """Attention weights of `call` at inference: `[batch, num_heads, queries, keys]`.

        Each row is a softmax over the keys; masked keys get (close to) zero.

        Args:
            query: tensor `[batch, queries, hidden_dim]`.
            value: tensor `[batch, keys, hidden_dim]`.
            query_mask: bool tensor `[batch, queries]`.
            value_mask: bool tensor `[batch, keys]`.

        Example:
        >>> block = AttentionBlock(hidden_dim=8, num_heads=2)
        >>> q, kv = np.ones((1, 3, 8), "float32"), np.ones((1, 5, 8), "float32")
        >>> _ = block(q, kv, np.ones((1, 3), bool), np.ones((1, 5), bool))
        >>> block.attention_scores(q, kv, np.ones((1, 3), bool), np.ones((1, 5), bool)).shape
        (1, 2, 3, 5)
        """
        attention_mask = ops.logical_and(query_mask[:, :, None], value_mask[:, None, :])
        with _one_key_is_fine(value):
            _, scores = self.attention(
                query,
                value,
                attention_mask=attention_mask,
                return_attention_scores=True,
                training=False,
            )
        return scores

    def compute_output_shape(self, query_shape, *args):
        return query_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "hidden_dim": self.hidden_dim,
                "num_heads": self.num_heads,
                "dropout_rate": self.dropout_rate,
            }
        )
        return config


@contextlib.contextmanager
def _one_key_is_fine(value):
    """Silences Keras' "softmax over an axis of size 1" warning when there is one key.

    A text-only model with the `bag` encoder attends over its single text token:
    the weight is 1 by design, not a mistake, and users should not see a warning.
    """
    with warnings.catch_warnings():
        if value.shape[1] == 1:
            warnings.filterwarnings("ignore", message="You are using a softmax over axis")
        yield
