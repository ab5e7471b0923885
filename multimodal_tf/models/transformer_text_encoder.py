"""Token ids -> text tokens through a small Transformer encoder."""

import keras
from keras import ops

from multimodal_tf.models.base_text_encoder import BaseTextEncoder


@keras.saving.register_keras_serializable(package="multimodal_tf")
class TransformerTextEncoder(BaseTextEncoder):
    """`Embedding` + learned positions -> self-attention blocks -> projection, per token.

    Each block is pre-norm: `x + attention(norm(x))`, then
    `x + feedforward(norm(x))`, with a final `LayerNormalization`. Padding
    tokens are never attended to, so a text gives the same outputs however
    much padding follows it.

    Args:
        vocabulary_size: int. Size of the token id space (padding and OOV included).
        embedding_dim: int. Width of the token embeddings and of the blocks.
        hidden_dim: int. Width of the output tokens (shared with the image encoder).
        dropout_rate: float. Dropout on the embeddings, attention weights and residuals.
        num_layers: int. Number of Transformer blocks.
        num_heads: int. Attention heads (must divide `embedding_dim`).
        intermediate_dim: int or None. Width of the feed-forward layers;
            `None` means `2 * embedding_dim`.
        max_sequence_length: int. Longest token sequence (positions are learned).

    Example:
    >>> encoder = TransformerTextEncoder(vocabulary_size=10, embedding_dim=4, hidden_dim=8,
    ...                                  num_heads=2)
    >>> tuple(encoder(np.array([[2, 3, 0]])).shape)
    (1, 3, 8)
    """

    def __init__(
        self,
        vocabulary_size,
        embedding_dim=64,
        hidden_dim=64,
        dropout_rate=0.0,
        num_layers=1,
        num_heads=4,
        intermediate_dim=None,
        max_sequence_length=512,
        **kwargs,
    ):
        if embedding_dim % num_heads:
            raise ValueError(
                "embedding_dim must be divisible by num_heads; received "
                f"embedding_dim={embedding_dim}, num_heads={num_heads}."
            )
        super().__init__(vocabulary_size, embedding_dim, hidden_dim, dropout_rate, **kwargs)
        feedforward_dim = intermediate_dim or 2 * embedding_dim
        # === Layers ===
        # Pre-norm rather than post-norm (the original Transformer): the residual
        # path is left unnormalized, so training is stable without the warmup
        # schedule that `MultimodalClassifier.compile()` does not use.
        self.attention_norms, self.attentions = [], []
        self.feedforward_norms, self.feedforwards, self.feedforward_outputs = [], [], []
        for index in range(num_layers):
            self.attention_norms.append(
                keras.layers.LayerNormalization(epsilon=1e-6, name=f"attention_norm_{index}")
            )
            self.attentions.append(
                keras.layers.MultiHeadAttention(
                    num_heads,
                    embedding_dim // num_heads,
                    dropout=dropout_rate,
                    name=f"attention_{index}",
                )
            )
            self.feedforward_norms.append(
                keras.layers.LayerNormalization(epsilon=1e-6, name=f"ffn_norm_{index}")
            )
            self.feedforwards.append(
                keras.layers.Dense(feedforward_dim, activation="gelu", name=f"ffn_in_{index}")
            )
            self.feedforward_outputs.append(
                keras.layers.Dense(embedding_dim, name=f"ffn_out_{index}")
            )
        self.output_norm = keras.layers.LayerNormalization(epsilon=1e-6, name="output_norm")
        self.residual_dropout = keras.layers.Dropout(dropout_rate)
        # === Config ===
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.max_sequence_length = max_sequence_length

    def build_encoder(self, embedded_shape):
        self._check_length(embedded_shape[1])
        self.position_embedding = self.add_weight(
            shape=(self.max_sequence_length, self.embedding_dim),
            initializer=keras.initializers.RandomNormal(stddev=0.02),
            name="position_embedding",
        )
        for index in range(self.num_layers):
            self.attention_norms[index].build(embedded_shape)
            self.attentions[index].build(embedded_shape, embedded_shape)
            self.feedforward_norms[index].build(embedded_shape)
            self.feedforwards[index].build(embedded_shape)
            self.feedforward_outputs[index].build(
                self.feedforwards[index].compute_output_shape(embedded_shape)
            )
        self.output_norm.build(embedded_shape)
        return embedded_shape

    def encode(self, embedded, mask, training=None):
        self._check_length(embedded.shape[1])
        length = ops.shape(embedded)[1]
        tokens = embedded + ops.slice(self.position_embedding, (0, 0), (length, self.embedding_dim))
        # Every query (padding included) attends to the real tokens only: real
        # outputs ignore padding, and a padded query never sees an all-masked row
        # unless the whole text is empty (then softmax is uniform, still finite).
        attention_mask = ops.logical_and(ops.ones_like(mask)[:, :, None], mask[:, None, :])
        for index in range(self.num_layers):
            normed = self.attention_norms[index](tokens)
            attended = self.attentions[index](
                normed, normed, attention_mask=attention_mask, training=training
            )
            tokens = tokens + self.residual_dropout(attended, training=training)
            normed = self.feedforward_norms[index](tokens)
            hidden = self.feedforward_outputs[index](self.feedforwards[index](normed))
            tokens = tokens + self.residual_dropout(hidden, training=training)
        return self.output_norm(tokens)

    def _check_length(self, length):
        if length is not None and length > self.max_sequence_length:
            raise ValueError(
                f"Received sequences of {length} tokens, more than "
                f"max_sequence_length={self.max_sequence_length}."
            )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_layers": self.num_layers,
                "num_heads": self.num_heads,
                "intermediate_dim": self.intermediate_dim,
                "max_sequence_length": self.max_sequence_length,
            }
        )
        return config
