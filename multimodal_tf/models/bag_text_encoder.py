"""N-gram ids -> one text token: a fastText-style bag of n-grams (the fast CPU default)."""

import keras
from keras import ops

from multimodal_tf.models.base_text_encoder import BaseTextEncoder


@keras.saving.register_keras_serializable(package="multimodal_tf")
class BagOfNgramsEncoder(BaseTextEncoder):
    """`Embedding` of word, bigram and character n-gram ids -> a pooled sum -> one token.

    The neural form of TF-IDF + logistic regression: each n-gram id (from a
    `MultimodalPreprocessor(text_features="ngrams")`) has an embedding, a text
    is the sum of its n-grams' embeddings, each weighted by its inverse
    document frequency and the sum divided by the L2 norm of those weights
    (TF-IDF's normalisation, so long and short texts weigh alike), and a
    dense projection gives one `[batch, 1, hidden_dim]` token. On a few
    thousand short posts it beats the recurrent encoders and costs a gather
    and a sum. `token_dropout` hides each n-gram of a training text at random.

    Args:
        vocabulary_size: int. Size of the n-gram id space (padding and OOV included).
        embedding_dim: int. Width of the n-gram embeddings.
        hidden_dim: int. Width of the output token.
        dropout_rate: float. Dropout on the pooled vector during training.
        token_dropout: float. Fraction of n-grams hidden from each training text.
        seed: int or None. Seed of the token dropout.
        idf_weights: list of float or None. One weight per vocabulary token
            (ids 2...), e.g. `preprocessor.idf_weights`; `None` weighs all
            n-grams alike. Stored as a non-trainable weight, not in the config.
        num_word_features: int or None. Ids `2 .. num_word_features + 1`
            are words and bigrams, the rest character n-grams
            (`preprocessor.num_word_features`); each group is normalised on
            its own and the two are added, so the hundreds of character
            n-grams of a post do not drown its few words. `None`: one group.

    Example:
    >>> encoder = BagOfNgramsEncoder(vocabulary_size=10, embedding_dim=4, hidden_dim=8)
    >>> tuple(encoder(np.array([[2, 3, 0], [0, 0, 0]])).shape)
    (2, 1, 8)
    """

    def __init__(
        self,
        vocabulary_size,
        embedding_dim=64,
        hidden_dim=64,
        dropout_rate=0.0,
        token_dropout=0.0,
        seed=None,
        idf_weights=None,
        num_word_features=None,
        **kwargs,
    ):
        super().__init__(vocabulary_size, embedding_dim, hidden_dim, dropout_rate, **kwargs)
        check_idf_weights(idf_weights, vocabulary_size)
        self._idf_weights = idf_weights
        # === Config ===
        self.token_dropout = token_dropout
        self.seed = seed
        self.num_word_features = num_word_features
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build_encoder(self, embedded_shape):
        self.ngram_weights = add_ngram_weights(self, self.vocabulary_size, self._idf_weights)
        return (embedded_shape[0], self.embedding_dim)

    def call(self, token_ids, training=None):
        mask = ops.not_equal(token_ids, 0)
        if training and self.token_dropout > 0:
            keep = keras.random.uniform(ops.shape(token_ids), seed=self.seed_generator)
            mask = ops.logical_and(mask, keep >= self.token_dropout)
        weights = ops.take(self.ngram_weights, token_ids) * ops.cast(mask, self.compute_dtype)
        embedded = self.embedding(token_ids)
        pooled = tf_idf_pool(embedded, token_ids, weights, self.num_word_features)
        pooled = self.dropout(pooled, training=training)
        return self.projection(pooled)[:, None, :]

    def compute_mask(self, token_ids, mask=None):
        # The one token is present when the text has any known n-gram.
        return ops.any(ops.not_equal(token_ids, 0), axis=1, keepdims=True)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1, self.hidden_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "token_dropout": self.token_dropout,
                "seed": self.seed,
                "num_word_features": self.num_word_features,
            }
        )
        return config


def check_idf_weights(idf_weights, vocabulary_size):
    """`ValueError` unless `idf_weights` is `None` or one weight per token (ids 2...)."""
    if idf_weights is not None and len(idf_weights) != vocabulary_size - 2:
        raise ValueError(
            f"`idf_weights` must hold one weight per vocabulary token, "
            f"{vocabulary_size - 2}; received {len(idf_weights)}."
        )


def add_ngram_weights(layer, vocabulary_size, idf_weights):
    """`layer`'s non-trainable per-id weights: 0 for padding, 1 for OOV, then the IDFs."""
    initial = "ones"
    if idf_weights is not None:
        initial = keras.initializers.Constant([0.0, 1.0, *idf_weights])
    return layer.add_weight(
        shape=(vocabulary_size,), initializer=initial, trainable=False, name="ngram_weights"
    )


def tf_idf_pool(values, token_ids, weights, num_word_features):
    """Sum of `values` (`[batch, seq, width]`) weighted by `weights`, as TF-IDF pools a bag.

    Each group, words and bigrams (ids `2 .. num_word_features + 1`) and
    character n-grams (the rest), is divided by the L2 norm of its weights,
    and the two are added, as a scikit-learn feature union of two TF-IDF
    vectorizers would be. `num_word_features=None`: one group.
    """
    if num_word_features is None:
        return _normalised_sum(values, weights)
    is_word = ops.cast(token_ids < num_word_features + 2, weights.dtype)
    return _normalised_sum(values, weights * is_word) + _normalised_sum(
        values, weights * (1.0 - is_word)
    )


def _normalised_sum(embedded, weights):
    """`sum_i w_i e_i / ||w||_2` over the sequence: TF-IDF's L2 normalisation."""
    weights = weights[..., None]
    total = ops.sum(embedded * weights, axis=1)
    return total / ops.sqrt(ops.maximum(ops.sum(weights**2, axis=1), 1e-6))
