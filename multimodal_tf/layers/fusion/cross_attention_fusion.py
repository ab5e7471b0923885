"""Cross-modal attention: one modality's tokens query the tokens of both."""

import keras
from keras import ops

from multimodal_tf.layers.fusion.attention_block import AttentionBlock
from multimodal_tf.layers.fusion.base_fusion import Fusion, masked_mean

DIRECTIONS = ("text_to_image", "image_to_text", "both")


@keras.saving.register_keras_serializable(package="multimodal_tf")
class CrossAttentionFusion(Fusion):
    """Text queries attend over text and image keys/values (or the reverse, or both).

    For `direction="text_to_image"` the block computes
    `Attention(Q_t, [K_t, K_i], [V_t, V_i])`: every word looks at the other
    words and at every image region, and the result is pooled over the
    words. `"image_to_text"` swaps the roles; `"both"` runs the two blocks and
    concatenates their pooled outputs. Called on `[text_tokens,
    image_tokens]` in that order.

    Args:
        hidden_dim: int. Width of every input token.
        direction: str. `"text_to_image"`, `"image_to_text"` or `"both"`.
        num_heads: int. Attention heads.
        num_modalities: int. Must be 2 (text, image).
        dropout_rate: float. Dropout inside the attention blocks.

    Example:
    >>> fusion = CrossAttentionFusion(hidden_dim=8, num_heads=2, direction="both")
    >>> fusion([np.zeros((1, 3, 8), "float32"), np.zeros((1, 4, 8), "float32")]).shape
    (1, 16)
    """

    min_modalities = 2

    def __init__(
        self,
        hidden_dim=64,
        direction="both",
        num_heads=4,
        num_modalities=2,
        dropout_rate=0.0,
        **kwargs,
    ):
        super().__init__(hidden_dim, num_modalities, dropout_rate, **kwargs)
        if direction not in DIRECTIONS:
            raise ValueError(f"`direction` must be one of {DIRECTIONS}; received {direction!r}.")
        if num_modalities != 2:
            raise ValueError(
                f"CrossAttentionFusion fuses text and image (num_modalities=2); "
                f"received num_modalities={num_modalities}."
            )
        if hidden_dim % num_heads:
            raise ValueError(
                f"hidden_dim must be divisible by num_heads; received "
                f"hidden_dim={hidden_dim}, num_heads={num_heads}."
            )
        # === Layers ===
        self.query_modalities = {"text_to_image": (0,), "image_to_text": (1,), "both": (0, 1)}[
            direction
        ]
        self.blocks = [
            AttentionBlock(hidden_dim, num_heads, dropout_rate, name=f"block_{index}")
            for index in self.query_modalities
        ]
        # === Config ===
        self.direction = direction
        self.num_heads = num_heads

    def build_fusion(self, token_shape):
        self.build_modality_embedding()
        for block in self.blocks:
            block.build(token_shape, token_shape)

    def fuse(self, sequences, masks, training):
        tokens = self.add_modality_embedding(sequences)
        keys = ops.concatenate(tokens, axis=1)
        key_mask = ops.concatenate(masks, axis=1)
        pooled = []
        for block, index in zip(self.blocks, self.query_modalities, strict=True):
            attended = block(tokens[index], keys, masks[index], key_mask, training=training)
            pooled.append(masked_mean(attended, masks[index]))
        return pooled[0] if len(pooled) == 1 else ops.concatenate(pooled, axis=-1)

    def attention_scores(self, sequences, mask=None):
        """One `(scores, query_mask)` per direction: one modality's tokens query all tokens.

        See `Fusion.attention_scores`; the keys are the text tokens followed
        by the image tokens.

        Args:
            sequences: list of two tensors `[batch, length, hidden_dim]` (text, image).
            mask: list of bool tensors `[batch, length]` (or `None` entries) or `None`.

        Example:
        >>> fusion = CrossAttentionFusion(hidden_dim=8, num_heads=2, direction="both")
        >>> tokens = [np.zeros((1, 3, 8), "float32"), np.zeros((1, 4, 8), "float32")]
        >>> [tuple(scores.shape) for scores, _ in fusion.attention_scores(tokens)]
        [(1, 2, 3, 7), (1, 2, 4, 7)]
        """
        sequences, masks = self.prepare_inputs(sequences, mask)
        tokens = self.add_modality_embedding(sequences)
        keys = ops.concatenate(tokens, axis=1)
        key_mask = ops.concatenate(masks, axis=1)
        return [
            (block.attention_scores(tokens[index], keys, masks[index], key_mask), masks[index])
            for block, index in zip(self.blocks, self.query_modalities, strict=True)
        ]

    @property
    def output_dim(self):
        """`hidden_dim` per attention direction."""
        return self.hidden_dim * len(self.query_modalities)

    def get_config(self):
        config = super().get_config()
        config.update({"direction": self.direction, "num_heads": self.num_heads})
        return config
