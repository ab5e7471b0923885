"""Class scores from fused features: softmax (one label) or sigmoid (several labels)."""

import keras
from keras import ops


class DecisionThresholds:
    """Per-class decision `thresholds` (a non-trainable weight) for a multi-label output layer.

    Layers that end a model's head mix this in, so `tune_thresholds` and the
    export find the thresholds on `model.get_layer(head_name)`.
    """

    def add_thresholds(self, num_classes):
        self.thresholds = self.add_weight(
            shape=(num_classes,),
            initializer=keras.initializers.Constant(0.5),
            trainable=False,
            name="thresholds",
        )

    def set_thresholds(self, thresholds):
        """Sets the per-class decision thresholds of a multi-label head."""
        thresholds = ops.convert_to_numpy(thresholds).astype("float32").reshape(-1)
        if thresholds.shape != (self.num_classes,):
            raise ValueError(
                f"Expected {self.num_classes} thresholds; received {thresholds.shape[0]}."
            )
        self.thresholds.assign(thresholds)


@keras.saving.register_keras_serializable(package="multimodal_tf")
class ClassificationHead(DecisionThresholds, keras.layers.Layer):
    """Dropout and a dense layer to class probabilities, for one task.

    On `[batch, features]` it is a dense layer. On `[batch, num_modalities,
    features]` (what `LateFusion` returns) it makes one decision per modality,
    each with its own weights, and averages the logits with learned
    softmax-normalised modality weights: late fusion's "combine decisions".
    `wide_logits` (e.g. from `WideTextLogits`) are added to the logits before
    the activation: the wide part of a Wide & Deep model.

    Single-label heads end in a softmax. Multi-label heads end in a sigmoid
    and hold per-class decision `thresholds` (0.5 until `set_thresholds` is
    called, normally with values chosen on the validation split); they are
    weights, so `.keras` files and SavedModels carry them.

    Args:
        num_classes: int. Output width.
        multi_label: bool. Sigmoid per class instead of softmax over classes.
        dropout_rate: float. Dropout on the input features during training.

    Example:
    >>> head = ClassificationHead(3)
    >>> head(np.zeros((2, 8), "float32")).shape
    (2, 3)
    >>> ClassificationHead(3, multi_label=True)(np.zeros((2, 2, 8), "float32")).shape
    (2, 3)
    """

    def __init__(self, num_classes, multi_label=False, dropout_rate=0.0, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if num_classes < 1:
            raise ValueError(f"num_classes must be positive; received {num_classes}.")
        # === Layers ===
        self.dropout = keras.layers.Dropout(dropout_rate)
        # === Config ===
        self.num_classes = int(num_classes)
        self.multi_label = bool(multi_label)
        self.dropout_rate = float(dropout_rate)

    def build(self, input_shape):
        if len(input_shape) not in (2, 3):
            raise ValueError(
                f"ClassificationHead takes [batch, features] or [batch, modalities, "
                f"features]; received shape {input_shape}."
            )
        per_modality = tuple(input_shape[1:-1])
        self.kernel = self.add_weight(
            shape=(*per_modality, input_shape[-1], self.num_classes),
            initializer="glorot_uniform",
            name="kernel",
        )
        self.bias = self.add_weight(
            shape=(*per_modality, self.num_classes), initializer="zeros", name="bias"
        )
        if per_modality:
            self.decision_weights = self.add_weight(
                shape=per_modality, initializer="zeros", name="decision_weights"
            )
        self.add_thresholds(self.num_classes)
        self.built = True

    def call(self, features, wide_logits=None, training=None):
        features = self.dropout(features, training=training)
        if len(features.shape) == 2:
            logits = ops.matmul(features, self.kernel) + self.bias
        else:
            decisions = ops.einsum("bmf,mfc->bmc", features, self.kernel) + self.bias
            # softmax by hand: Keras warns on a softmax over one modality.
            weights = ops.exp(self.decision_weights - ops.max(self.decision_weights))
            weights = weights / ops.sum(weights)
            logits = ops.einsum("bmc,m->bc", decisions, weights)
        if wide_logits is not None:
            logits = logits + wide_logits
        return ops.sigmoid(logits) if self.multi_label else ops.softmax(logits, axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_classes)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_classes": self.num_classes,
                "multi_label": self.multi_label,
                "dropout_rate": self.dropout_rate,
            }
        )
        return config
