"""What a classifier of this toolkit answers: its heads, their classes, and how it compiles."""

import keras
from keras import ops

from multimodal_tf.models.lazy_adamw import LazyAdamW

#: The output name of a single-task model (a multi-task model names its heads).
DEFAULT_HEAD = "label"


class ClassificationTask:
    """The task API shared by `MultimodalClassifier` and `MultimodalEnsemble`.

    Head names and classes, which heads are multi-label, and a `compile` with
    defaults that suit the task. Mixed into a `keras.Model` that sets
    `class_names` and `multi_label`.
    """

    def _used_inputs(self, inputs):
        """The feature dict cut to the inputs this model has, `image_present` filled in.

        A unimodal model accepts the full feature dict and ignores the rest, so
        one dataset and one serving signature fit every model; features built
        by hand without `image_present` mean every image is there.
        """
        inputs = dict(inputs)
        if "image" in inputs and "image_present" not in inputs:
            inputs["image_present"] = ops.ones(ops.shape(inputs["image"])[:1])
        return {name: inputs[name] for name in self.input_names_used}

    @property
    def head_names(self):
        """Output names: `["label"]` for a single-task model, else the heads' names."""
        if isinstance(self.class_names, dict):
            return list(self.class_names)
        return [DEFAULT_HEAD]

    def head_classes(self):
        """`{head name: class names}` for every head."""
        return _heads(self.class_names)

    def is_multi_label(self, head=DEFAULT_HEAD):
        """Whether `head` is a multi-label (sigmoid) head."""
        return head in _multi_label_heads(self.multi_label, self.head_classes())

    def compile(
        self,
        optimizer="auto",
        loss="auto",
        metrics="auto",
        learning_rate=1e-3,
        weight_decay=1e-4,
        label_smoothing=0.0,
        **kwargs,
    ):
        """Compiles with defaults that suit this task; any argument overrides them.

        Labels are one-hot (single-label) or multi-hot (multi-label) vectors,
        as `make_dataset` yields them; a multi-task model takes a dict of them
        keyed by head name. The default metrics are accuracy and macro-F1;
        `val_macro_f1` (`val_<head>_macro_f1` with several heads) is what model
        selection watches. Per-head `loss_weights` go through `**kwargs`, as
        in any Keras model.

        Args:
            optimizer: "auto" (`LazyAdamW`: AdamW whose sparse gradients, an
                embedding table's, update only the rows they name) or any
                Keras optimizer.
            loss: "auto" (categorical or binary cross-entropy per head) or any Keras loss.
            metrics: "auto" (accuracy, macro-F1) or Keras metrics.
            learning_rate: float. Used by the "auto" optimizer.
            weight_decay: float. Used by the "auto" optimizer.
            label_smoothing: float. Used by the "auto" losses.
            **kwargs: passed to `keras.Model.compile`.
        """
        if optimizer == "auto":
            optimizer = LazyAdamW(learning_rate, weight_decay=weight_decay)
        if loss == "auto":
            loss = self.default_loss(label_smoothing)
        if metrics == "auto":
            metrics = self.default_metrics()
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    def default_loss(self, label_smoothing=0.0):
        """The "auto" loss: categorical or binary cross-entropy per head.

        A dict keyed by head name for a multi-task model, else one loss; also
        what another model over the same heads compiles with (e.g. the
        `wide_model()` of a Wide & Deep classifier).

        Args:
            label_smoothing: float.
        """
        return self._per_head(
            lambda name: (
                keras.losses.BinaryCrossentropy(label_smoothing=label_smoothing)
                if self.is_multi_label(name)
                else keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing)
            )
        )

    def default_metrics(self):
        """The "auto" metrics per head: accuracy and macro-F1 (`macro_f1`)."""
        return self._per_head(lambda name: _default_metrics(self.is_multi_label(name)))

    def _per_head(self, make):
        if isinstance(self.class_names, dict):
            return {name: make(name) for name in self.head_names}
        return make(DEFAULT_HEAD)

    def compile_from_config(self, config):
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if self.built:
            self.optimizer.build(self.trainable_variables)


def _heads(class_names):
    if isinstance(class_names, dict):
        heads = {str(head): [str(name) for name in names] for head, names in class_names.items()}
    else:
        heads = {DEFAULT_HEAD: [str(name) for name in class_names]}
    if not heads:
        raise ValueError("`class_names` must name at least one head.")
    for head, names in heads.items():
        if len(names) < 2:
            raise ValueError(f"Head {head!r} needs at least two classes; received {names}.")
        if len(set(names)) != len(names):
            raise ValueError(f"Head {head!r} has duplicate class names: {names}.")
    return heads


def _multi_label_heads(multi_label, heads):
    if isinstance(multi_label, bool):
        return set(heads) if multi_label else set()
    unknown = [name for name in multi_label if name not in heads]
    if unknown:
        raise ValueError(
            f"`multi_label` names unknown heads {unknown}; the heads are {list(heads)}."
        )
    return set(multi_label)


def _default_metrics(multi_label):
    if multi_label:
        return [
            keras.metrics.BinaryAccuracy(name="accuracy"),
            keras.metrics.F1Score(average="macro", threshold=0.5, name="macro_f1"),
        ]
    return [
        keras.metrics.CategoricalAccuracy(name="accuracy"),
        keras.metrics.F1Score(average="macro", name="macro_f1"),
    ]


__all__ = ["DEFAULT_HEAD", "ClassificationTask"]
