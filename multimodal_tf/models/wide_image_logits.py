"""Pooled backbone features -> class logits: the image side of the wide (linear) path."""

import math

import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="multimodal_tf")
class WideImageLogits(keras.layers.Layer):
    """A linear classifier over a pretrained backbone's pooled features, as logits.

    Logistic regression over image features, as a Keras layer, for
    `MultimodalClassifier(wide=True, wide_image=True)`: the feature map of a
    pretrained backbone, average- and max-pooled over the image
    (`BaseImageEncoder(..., return_pooled=True)`), standardized with the
    training split's mean and variance (`adapt`), divided by the square root
    of its width and mapped to one logit per class. Its logits are added to
    `WideTextLogits`' and to the deep path's before the softmax, so a
    pretrained model holds a TF-IDF + image-feature LR and the deep path
    learns what that misses.

    The division by `sqrt(width)` keeps the first Adam steps small: each of
    the ~2,500 features is standardized, and Adam moves every weight by about
    the learning rate whatever its gradient, so without it the logits would
    swing by tens after one epoch. A row without an image (`present` 0) gets
    zero logits from this layer. The mean and variance are non-trainable
    weights: they are saved with the model and exported with it.

    Args:
        num_classes: int. One logit per class.
        l2: float. L2 penalty `l2 * sum(kernel ** 2)` added to the model's loss.
        epsilon: float. Added to the variance before its square root.

    Example:
    >>> wide = WideImageLogits(num_classes=3)
    >>> features = np.random.rand(8, 16).astype("float32")
    >>> wide.adapt([features[:4], features[4:]])
    >>> tuple(wide(features, np.ones(8, "float32")).shape)
    (8, 3)
    """

    def __init__(self, num_classes, l2=0.0, epsilon=1e-3, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if l2 < 0:
            raise ValueError(f"`l2` must be 0 or more; received {l2}.")
        # === Config ===
        self.num_classes = int(num_classes)
        self.l2 = float(l2)
        self.epsilon = float(epsilon)

    def build(self, features_shape, present_shape=None):
        width = int(features_shape[-1])
        self.mean = self.add_weight(
            shape=(width,), initializer="zeros", trainable=False, name="mean"
        )
        self.variance = self.add_weight(
            shape=(width,), initializer="ones", trainable=False, name="variance"
        )
        self.kernel = self.add_weight(
            shape=(width, self.num_classes),
            initializer="zeros",
            regularizer=keras.regularizers.L2(self.l2) if self.l2 else None,
            name="kernel",
        )
        self.bias = self.add_weight(shape=(self.num_classes,), initializer="zeros", name="bias")
        self.built = True

    def standardize(self, features):
        """The features the linear model reads: centred, divided by
        `sqrt(variance + epsilon) * sqrt(width)` (see the class docstring)."""
        features = ops.cast(features, self.compute_dtype)
        scale = ops.sqrt(self.variance + self.epsilon) * math.sqrt(features.shape[-1])
        return (features - self.mean) / scale

    def call(self, features, present=None):
        logits = ops.matmul(self.standardize(features), self.kernel) + self.bias
        if present is not None:
            logits = logits * ops.expand_dims(ops.cast(present, logits.dtype), -1)
        return logits

    def adapt(self, batches):
        """Sets the mean and variance from an iterable of `[batch, width]` feature arrays.

        One pass, accumulated in float64: the features are never held all at once.
        """
        count, total, squares = 0, 0.0, 0.0
        for batch in batches:
            batch = np.asarray(batch, dtype="float64")
            count += len(batch)
            total = total + batch.sum(axis=0)
            squares = squares + (batch**2).sum(axis=0)
        if not count:
            raise ValueError("`adapt` received no feature rows.")
        if not self.built:
            self.build((None, len(total)))
        mean = total / count
        self.mean.assign(mean.astype("float32"))
        self.variance.assign(np.maximum(squares / count - mean**2, 0.0).astype("float32"))

    def compute_output_shape(self, features_shape, present_shape=None):
        return (features_shape[0], self.num_classes)

    def get_config(self):
        config = super().get_config()
        config.update({"num_classes": self.num_classes, "l2": self.l2, "epsilon": self.epsilon})
        return config
