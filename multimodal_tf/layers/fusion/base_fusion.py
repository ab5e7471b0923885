"""What every fusion layer shares: the call signature, masks and pooling."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="multimodal_tf")
class Fusion(keras.layers.Layer):
    """Base class: fuses one token sequence per modality into features for a head.

    Every fusion layer is called the same way, `fusion([text_tokens,
    image_tokens])`: a list of `[batch, length, hidden_dim]` sequences in the
    order of the model's modalities, each with a boolean mask (a Keras mask or
    `mask=[text_mask, image_mask]`; `None` means every position is real).
    Subclasses implement `fuse(sequences, masks, training)` and
    `output_dim`, so a classifier can swap one for another by name.

    Args:
        hidden_dim: int. Width of every input token.
        num_modalities: int. Number of sequences the layer is called with.
        dropout_rate: float. Dropout inside the layer during training.
    """

    #: Smallest number of modalities the layer makes sense for.
    min_modalities = 1

    def __init__(self, hidden_dim=64, num_modalities=2, dropout_rate=0.0, **kwargs):
        super().__init__(**kwargs)
        if num_modalities < self.min_modalities:
            raise ValueError(
                f"{type(self).__name__} fuses at least {self.min_modalities} modalities; "
                f"received num_modalities={num_modalities}. For a one-modality model use "
                "'attention' or 'concat' fusion."
            )
        self.hidden_dim = int(hidden_dim)
        self.num_modalities = int(num_modalities)
        self.dropout_rate = float(dropout_rate)
        self.supports_masking = True

    def build(self, input_shape):
        if len(input_shape) != self.num_modalities:
            raise ValueError(
                f"{type(self).__name__}(num_modalities={self.num_modalities}) was called "
                f"with {len(input_shape)} sequences."
            )
        for shape in input_shape:
            if shape[-1] != self.hidden_dim:
                raise ValueError(
                    f"{type(self).__name__}(hidden_dim={self.hidden_dim}) received tokens "
                    f"of width {shape[-1]}; every encoder must output hidden_dim-wide tokens."
                )
        self.build_fusion((None, None, self.hidden_dim))
        self.built = True

    def build_fusion(self, token_shape):
        """Builds sublayers; `token_shape` is `(None, None, hidden_dim)`."""

    def call(self, inputs, mask=None, training=None):
        return self.fuse(list(inputs), _bool_masks(inputs, mask), training)

    def fuse(self, sequences, masks, training):
        raise NotImplementedError

    def build_modality_embedding(self):
        """Adds a learned vector per modality, so attention can tell the tokens apart."""
        self.modality_embedding = self.add_weight(
            shape=(self.num_modalities, self.hidden_dim),
            initializer=keras.initializers.RandomNormal(stddev=0.02),
            name="modality_embedding",
        )

    def add_modality_embedding(self, sequences):
        """Each sequence plus its modality's vector (see `build_modality_embedding`)."""
        return [sequence + self.modality_embedding[i] for i, sequence in enumerate(sequences)]

    def attention_scores(self, sequences, mask=None):
        """The attention weights behind the output, for inspection; empty without attention.

        Called like the layer (`sequences`, `mask`), at inference. Attention
        fusions return one `(scores, query_mask)` pair per attention block:
        `scores` is `[batch, num_heads, queries, keys]`, the keys being every
        modality's tokens concatenated in input order; `query_mask` is
        `[batch, queries]`. Fusions without attention return `[]`.

        Args:
            sequences: list of tensors `[batch, length, hidden_dim]`.
            mask: list of bool tensors `[batch, length]` (or `None` entries) or `None`.

        Example:
        >>> ConcatFusion(hidden_dim=8).attention_scores([np.zeros((1, 3, 8), "float32")])
        []
        """
        return []

    def token_attention(self, sequences, mask=None):
        """How much attention each input token receives: `[batch, tokens]`, or `None`.

        The mean of `attention_scores` over heads, real queries and blocks;
        tokens are every modality's tokens concatenated in input order, and
        each row sums to 1. `None` for a fusion without attention.

        Args:
            sequences: list of tensors `[batch, length, hidden_dim]`.
            mask: list of bool tensors `[batch, length]` (or `None` entries) or `None`.

        Example:
        >>> fusion = AttentionFusion(hidden_dim=8, num_heads=2)
        >>> tokens = [np.zeros((1, 3, 8), "float32"), np.zeros((1, 4, 8), "float32")]
        >>> _ = fusion(tokens)
        >>> fusion.token_attention(tokens).shape
        (1, 7)
        """
        blocks = self.attention_scores(sequences, mask)
        if not blocks:
            return None
        received = []
        for scores, query_mask in blocks:
            weights = ops.cast(query_mask, scores.dtype)[:, :, None]
            per_query = ops.mean(scores, axis=1)
            total = ops.sum(per_query * weights, axis=1)
            received.append(total / ops.maximum(ops.sum(weights, axis=1), 1.0))
        return ops.mean(ops.stack(received, axis=0), axis=0)

    def prepare_inputs(self, sequences, mask=None):
        """`(sequences, bool masks)` as `call` sees them; builds the layer if needed."""
        sequences = [ops.convert_to_tensor(sequence, self.compute_dtype) for sequence in sequences]
        if not self.built:
            self.build([tuple(sequence.shape) for sequence in sequences])
        return sequences, _bool_masks(sequences, mask)

    def compute_mask(self, inputs, mask=None):
        return None

    @property
    def output_dim(self):
        """Width of the fused feature vector."""
        return self.hidden_dim

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], self.output_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "hidden_dim": self.hidden_dim,
                "num_modalities": self.num_modalities,
                "dropout_rate": self.dropout_rate,
            }
        )
        return config


def masked_mean(tokens, mask):
    """Mean over the real positions; zeros for a sequence with none."""
    weights = ops.cast(mask, tokens.dtype)[:, :, None]
    return ops.sum(tokens * weights, axis=1) / ops.maximum(ops.sum(weights, axis=1), 1.0)


def masked_max(tokens, mask):
    """Max over the real positions; zeros for a sequence with none."""
    masked = ops.where(mask[:, :, None], tokens, ops.full_like(tokens, -1e9))
    return ops.where(ops.any(mask, axis=1)[:, None], ops.max(masked, axis=1), 0.0)


def mean_max_pool(tokens, mask):
    """Masked mean and masked max side by side: `[batch, 2 * width]`."""
    return ops.concatenate([masked_mean(tokens, mask), masked_max(tokens, mask)], axis=-1)


def _bool_masks(sequences, mask):
    """One bool mask `[batch, length]` per sequence; `None` means every token is real."""
    mask = [None] * len(sequences) if mask is None else mask
    return [
        ops.ones(ops.shape(sequence)[:2], dtype="bool")
        if sequence_mask is None
        else ops.cast(sequence_mask, "bool")
        for sequence, sequence_mask in zip(sequences, mask, strict=True)
    ]
