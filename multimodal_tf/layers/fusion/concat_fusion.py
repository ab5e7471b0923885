"""Early (feature-level) fusion: pool each modality, concatenate, mix with an MLP."""

import keras
from keras import ops

from multimodal_tf.layers.fusion.base_fusion import Fusion, mean_max_pool


@keras.saving.register_keras_serializable(package="multimodal_tf")
class ConcatFusion(Fusion):
    """Concatenates mean- and max-pooled tokens of every modality, then one dense layer.

    The classic early-fusion baseline: no attention, so it is the cheapest
    fusion and a fair reference for what attention adds. The hidden layer lets
    the head combine features across modalities (a linear head on the
    concatenation alone could not learn "the text matches the image").

    Args:
        hidden_dim: int. Width of every input token and of the output.
        num_modalities: int. Number of sequences the layer is called with.
        dropout_rate: float. Dropout on the concatenated features.

    Example:
    >>> fusion = ConcatFusion(hidden_dim=8)
    >>> fusion([np.zeros((1, 3, 8), "float32"), np.zeros((1, 4, 8), "float32")]).shape
    (1, 8)
    """

    def __init__(self, hidden_dim=64, num_modalities=2, dropout_rate=0.0, **kwargs):
        super().__init__(hidden_dim, num_modalities, dropout_rate, **kwargs)
        # === Layers ===
        self.dropout = keras.layers.Dropout(dropout_rate)
        self.mix = keras.layers.Dense(hidden_dim, activation="gelu", name="mix")

    def build_fusion(self, token_shape):
        self.mix.build((None, 2 * self.hidden_dim * self.num_modalities))

    def fuse(self, sequences, masks, training):
        pooled = [
            mean_max_pool(tokens, mask) for tokens, mask in zip(sequences, masks, strict=True)
        ]
        features = self.dropout(ops.concatenate(pooled, axis=-1), training=training)
        return self.mix(features)
