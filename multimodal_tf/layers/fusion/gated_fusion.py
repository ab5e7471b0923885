"""Gated multimodal unit: learned per-feature gates choose how much of each modality to use."""

import keras
from keras import ops

from multimodal_tf.layers.fusion.base_fusion import Fusion, mean_max_pool


@keras.saving.register_keras_serializable(package="multimodal_tf")
class GatedFusion(Fusion):
    """Gated multimodal unit (Arevalo et al., 2017), for two or more modalities.

    Each modality's pooled tokens become a candidate `h_m = tanh(W_m x_m)`; a
    gate computed from all modalities together, `z = softmax_m(W_z [x_1..x_M])`
    per feature, mixes them: `h = sum_m z_m * h_m`. With two modalities the
    softmax is the GMU's sigmoid `z` and `1 - z`. The gate can learn to lean
    on the text when the image is uninformative (or missing) and the other
    way round.

    Args:
        hidden_dim: int. Width of every input token and of the output.
        num_modalities: int. Number of sequences (at least 2).
        dropout_rate: float. Dropout on the pooled features.

    Example:
    >>> fusion = GatedFusion(hidden_dim=8)
    >>> fusion([np.zeros((1, 3, 8), "float32"), np.zeros((1, 4, 8), "float32")]).shape
    (1, 8)
    """

    min_modalities = 2

    def __init__(self, hidden_dim=64, num_modalities=2, dropout_rate=0.0, **kwargs):
        super().__init__(hidden_dim, num_modalities, dropout_rate, **kwargs)
        # === Layers ===
        self.dropout = keras.layers.Dropout(dropout_rate)
        self.candidates = [
            keras.layers.Dense(hidden_dim, activation="tanh", name=f"candidate_{index}")
            for index in range(num_modalities)
        ]
        self.gate = keras.layers.Dense(hidden_dim * num_modalities, name="gate")

    def build_fusion(self, token_shape):
        for candidate in self.candidates:
            candidate.build((None, 2 * self.hidden_dim))
        self.gate.build((None, 2 * self.hidden_dim * self.num_modalities))

    def fuse(self, sequences, masks, training):
        pooled = [
            self.dropout(mean_max_pool(sequence, mask), training=training)
            for sequence, mask in zip(sequences, masks, strict=True)
        ]
        candidates = [dense(x) for dense, x in zip(self.candidates, pooled, strict=True)]
        candidates = ops.stack(candidates, axis=1)
        gates = self.gate(ops.concatenate(pooled, axis=-1))
        gates = ops.softmax(ops.reshape(gates, (-1, self.num_modalities, self.hidden_dim)), axis=1)
        return ops.sum(gates * candidates, axis=1)
