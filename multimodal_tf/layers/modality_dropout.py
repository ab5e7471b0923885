"""Missing modalities: a learned placeholder for an absent text or image, and modality dropout."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="multimodal_tf")
class ModalityDropout(keras.layers.Layer):
    """Stands in a learned placeholder token for every absent modality of a sample.

    Called as `sequences, masks = layer([sequences, masks, present])` with one
    token sequence `[batch, length, hidden_dim]`, one boolean mask
    `[batch, length]` and one presence flag `[batch]` per modality. Where a
    modality is absent (empty text, empty image bytes) its sequence becomes a
    single learned placeholder token (the rest masked out), so every fusion
    layer sees a well-defined input and the model learns what "no image"
    means instead of reading a black image or zero words.

    During training each present modality of a sample is also dropped with
    probability `rate` (never all of a sample's modalities), so the model
    learns to predict from either modality alone and serves rows that lack
    one. At inference nothing is dropped.

    Args:
        hidden_dim: int. Token width.
        num_modalities: int. Number of sequences.
        rate: float. Probability of dropping each present modality in training.
        seed: int or None. Seed of the dropout draws.

    Example:
    >>> layer = ModalityDropout(hidden_dim=4)
    >>> tokens = [np.ones((2, 3, 4), "float32"), np.ones((2, 5, 4), "float32")]
    >>> masks = [np.ones((2, 3), bool), np.ones((2, 5), bool)]
    >>> present = [np.array([True, True]), np.array([True, False])]
    >>> out_tokens, out_masks = layer([tokens, masks, present])
    >>> np.asarray(out_masks[1]).sum(axis=1).tolist()
    [5, 1]
    """

    def __init__(self, hidden_dim=64, num_modalities=2, rate=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"`rate` must be in [0, 1); received {rate}.")
        self.hidden_dim = int(hidden_dim)
        self.num_modalities = int(num_modalities)
        self.rate = float(rate)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape):
        self.placeholders = self.add_weight(
            shape=(self.num_modalities, self.hidden_dim),
            initializer=keras.initializers.RandomNormal(stddev=0.02),
            name="placeholders",
        )
        self.built = True

    def call(self, inputs, training=None):
        sequences, masks, present = inputs
        present = [ops.cast(flag, "bool") for flag in present]
        if training and self.rate > 0 and self.num_modalities > 1:
            present = self._drop(present)
        out_sequences, out_masks = [], []
        for index, (tokens, mask, flag) in enumerate(zip(sequences, masks, present, strict=True)):
            length = ops.shape(tokens)[1]
            # The placeholder sits at position 0 and is the only unmasked position.
            first = ops.arange(length) == 0
            placeholder = ops.where(first[None, :, None], self.placeholders[index], 0.0)
            placeholder = ops.cast(placeholder, tokens.dtype)
            out_sequences.append(ops.where(flag[:, None, None], tokens, placeholder))
            out_masks.append(ops.where(flag[:, None], ops.cast(mask, "bool"), first[None, :]))
        return out_sequences, out_masks

    def _drop(self, present):
        stacked = ops.stack(present, axis=1)
        draws = keras.random.uniform(ops.shape(stacked), seed=self.seed_generator)
        kept = ops.logical_and(stacked, draws >= self.rate)
        # A sample must keep at least one modality: if every one was dropped,
        # keep what it had.
        none_left = ops.logical_not(ops.any(kept, axis=1, keepdims=True))
        kept = ops.where(none_left, stacked, kept)
        return [kept[:, index] for index in range(self.num_modalities)]

    def compute_output_shape(self, input_shape):
        sequences, masks, _ = input_shape
        return list(sequences), list(masks)

    def compute_mask(self, inputs, mask=None):
        return None

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "hidden_dim": self.hidden_dim,
                "num_modalities": self.num_modalities,
                "rate": self.rate,
                "seed": self.seed,
            }
        )
        return config
