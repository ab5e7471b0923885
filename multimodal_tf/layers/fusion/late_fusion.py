"""Late (decision-level) fusion: one decision per modality, combined by learned weights."""

import keras
from keras import ops

from multimodal_tf.layers.fusion.base_fusion import Fusion, mean_max_pool


@keras.saving.register_keras_serializable(package="multimodal_tf")
class LateFusion(Fusion):
    """Keeps modalities apart: returns one feature vector per modality.

    Each modality is pooled and passed through its own dense layer; nothing
    mixes them. The output is `[batch, num_modalities, hidden_dim]`, and a
    `ClassificationHead` given such an input makes one decision per modality
    (its own weights for each) and combines the decisions with learned
    weights. It is the usual baseline for "are the modalities complementary
    at all?".

    Args:
        hidden_dim: int. Width of every input token and of each modality's features.
        num_modalities: int. Number of sequences the layer is called with.
        dropout_rate: float. Dropout on the pooled features.

    Example:
    >>> fusion = LateFusion(hidden_dim=8)
    >>> fusion([np.zeros((1, 3, 8), "float32"), np.zeros((1, 4, 8), "float32")]).shape
    (1, 2, 8)
    """

    def __init__(self, hidden_dim=64, num_modalities=2, dropout_rate=0.0, **kwargs):
        super().__init__(hidden_dim, num_modalities, dropout_rate, **kwargs)
        # === Layers ===
        self.dropout = keras.layers.Dropout(dropout_rate)
        self.branches = [
            keras.layers.Dense(hidden_dim, activation="gelu", name=f"branch_{index}")
            for index in range(num_modalities)
        ]

    def build_fusion(self, token_shape):
        for branch in self.branches:
            branch.build((None, 2 * self.hidden_dim))

    def fuse(self, sequences, masks, training):
        features = []
        for branch, sequence, mask in zip(self.branches, sequences, masks, strict=True):
            pooled = self.dropout(mean_max_pool(sequence, mask), training=training)
            features.append(branch(pooled))
        return ops.stack(features, axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], self.num_modalities, self.hidden_dim)
