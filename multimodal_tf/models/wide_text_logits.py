"""Token ids -> class logits: a linear model over the TF-IDF bag, the "wide" part of Wide & Deep."""

import keras
from keras import ops

from multimodal_tf.models.bag_text_encoder import (
    add_ngram_weights,
    check_idf_weights,
    tf_idf_pool,
)


@keras.saving.register_keras_serializable(package="multimodal_tf")
class WideTextLogits(keras.layers.Layer):
    """A linear classifier over the TF-IDF-weighted bag of token ids, as logits.

    Logistic regression over TF-IDF features, as a Keras layer: each token id
    has one weight per class, a text's logits are the IDF-weighted sum of its
    tokens' weights divided by the L2 norm of those IDF weights (word and
    character groups apart, as `BagOfNgramsEncoder` pools them). A
    `ClassificationHead` adds them to the deep path's logits before the
    softmax (`MultimodalClassifier(wide=True)`), so the fused model holds a
    TF-IDF + LR inside it and the deep path learns what that misses.

    The weights start at zero, so the wide path adds nothing until training
    moves it. A linear model over thousands of sparse features wants a larger
    step than the deep path: `rate_multiplier` scales the logits, and since
    Adam's step does not depend on the gradient's scale, the wide path's
    logits move `rate_multiplier` times as fast as the optimizer's learning
    rate alone would move them.

    Without a penalty a linear model over ~100k n-grams overfits within a few
    epochs; `l2` adds logistic regression's own penalty to the loss, so the
    path settles where LR does instead of where training happened to stop.

    Args:
        vocabulary_size: int. Size of the token id space (padding and OOV included).
        num_classes: int. One logit per class.
        idf_weights: list of float or None. One weight per vocabulary token
            (ids 2...), e.g. `preprocessor.idf_weights`; `None` weighs all
            tokens alike. Stored as a non-trainable weight, not in the config.
        num_word_features: int or None. Ids `2 .. num_word_features + 1` are
            words and bigrams, the rest character n-grams; each group is
            normalised on its own. `None`: one group.
        rate_multiplier: float. How much faster than the deep path it learns.
        l2: float. L2 penalty `l2 * sum(w ** 2)` on the weights as they act on
            the logits (`w = rate_multiplier * kernel`), added to the model's
            loss (a mean over the batch). Logistic regression's `C` on `n`
            training rows is `l2 = 1 / (2 * C * n)`. 0 adds none.

    Example:
    >>> wide = WideTextLogits(vocabulary_size=10, num_classes=3)
    >>> tuple(wide(np.array([[2, 3, 0], [0, 0, 0]])).shape)
    (2, 3)
    """

    def __init__(
        self,
        vocabulary_size,
        num_classes,
        idf_weights=None,
        num_word_features=None,
        rate_multiplier=5.0,
        l2=0.0,
        **kwargs,
    ):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        check_idf_weights(idf_weights, vocabulary_size)
        if rate_multiplier <= 0:
            raise ValueError(f"`rate_multiplier` must be positive; received {rate_multiplier}.")
        if l2 < 0:
            raise ValueError(f"`l2` must be 0 or more; received {l2}.")
        self._idf_weights = idf_weights
        # === Config ===
        self.vocabulary_size = int(vocabulary_size)
        self.num_classes = int(num_classes)
        self.num_word_features = num_word_features
        self.rate_multiplier = float(rate_multiplier)
        self.l2 = float(l2)

    def build(self, input_shape):
        self.ngram_weights = add_ngram_weights(self, self.vocabulary_size, self._idf_weights)
        self.kernel = self.add_weight(
            shape=(self.vocabulary_size, self.num_classes),
            initializer="zeros",
            # On the logits' scale: the kernel is multiplied by rate_multiplier.
            regularizer=keras.regularizers.L2(self.l2 * self.rate_multiplier**2)
            if self.l2
            else None,
            name="kernel",
        )
        self.built = True

    def call(self, token_ids):
        token_ids = ops.cast(token_ids, "int32")
        weights = ops.take(self.ngram_weights, token_ids)
        weights = weights * ops.cast(ops.not_equal(token_ids, 0), self.compute_dtype)
        rows = ops.take(self.kernel, token_ids, axis=0)
        return self.rate_multiplier * tf_idf_pool(rows, token_ids, weights, self.num_word_features)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_classes)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "num_classes": self.num_classes,
                "num_word_features": self.num_word_features,
                "rate_multiplier": self.rate_multiplier,
                "l2": self.l2,
            }
        )
        return config


def wide_l2_for(c, num_train):
    """Logistic regression's `C` on `num_train` rows as `WideTextLogits(l2=...)`: `1 / (2 C n)`.

    LR minimises `C * sum(loss) + |w|^2 / 2`; Keras minimises the mean loss
    plus the penalty, which is the same optimum with `l2 = 1 / (2 C n)`.

    Example:
    >>> round(wide_l2_for(2.0, 3611), 7)
    6.92e-05
    """
    if c <= 0 or num_train <= 0:
        raise ValueError(f"Expected C > 0 and num_train > 0; received {c}, {num_train}.")
    return 1.0 / (2.0 * c * num_train)
