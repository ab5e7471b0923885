"""Several trained classifiers of one task, averaged into one Keras model."""

import json

import keras
from keras import ops

from multimodal_tf.layers.heads.classification_head import DecisionThresholds
from multimodal_tf.models.classifier import MODALITIES, MultimodalClassifier
from multimodal_tf.models.task import DEFAULT_HEAD, ClassificationTask


@keras.saving.register_keras_serializable(package="multimodal_tf")
class AverageProbabilities(DecisionThresholds, keras.layers.Layer):
    """The mean of several `[batch, num_classes]` probability tensors: an ensemble's head.

    Like `ClassificationHead`, a multi-label one holds per-class decision
    `thresholds`, chosen for the averaged probabilities (`tune_thresholds`).

    Args:
        num_classes: int. Output width.
        multi_label: bool. Whether the averaged heads are sigmoid heads.

    Example:
    >>> AverageProbabilities(2)([np.array([[1.0, 0.0]]), np.array([[0.5, 0.5]])]).numpy()
    array([[0.75, 0.25]], dtype=float32)
    """

    def __init__(self, num_classes, multi_label=False, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)
        self.multi_label = bool(multi_label)

    def build(self, input_shape):
        self.add_thresholds(self.num_classes)
        self.built = True

    def call(self, probabilities):
        return ops.mean(ops.stack(probabilities, axis=0), axis=0)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def get_config(self):
        config = super().get_config()
        config.update({"num_classes": self.num_classes, "multi_label": self.multi_label})
        return config


@keras.saving.register_keras_serializable(package="multimodal_tf")
class MultimodalEnsemble(ClassificationTask, keras.Model):
    """Averages the class probabilities of several `MultimodalClassifier`s.

    The members answer the same task (same class names, heads and label type)
    and read the same features, so they must share one preprocessor: the same
    vocabulary, sequence length and image size, as members trained by one
    `train` run with `training.ensemble` do. The ensemble is a functional
    `keras.Model` over those features, like each member, so `predict`,
    `evaluate`, `.keras` saving, `export_saved_model` (one SavedModel; each
    request runs every member) and the reports work on it unchanged.

    Averaging helps when the members make different mistakes. On MVSA-Single,
    3 seeds of the default fused model did not: their errors were correlated,
    and the ensemble's validation scores were no better than one member's
    (`docs/defaults.md`, `training.ensemble`). Check the members' own figures, which
    `train` records in `metrics.json`, before paying for N models per request.

    Args:
        members: list of `MultimodalClassifier`. Trained models of one task.
            They are renamed `member_0`, `member_1`, ... (a functional model
            needs distinct layer names, and models loaded from files share one).

    Example:
    >>> ensemble = MultimodalEnsemble([model_a, model_b])  # doctest: +SKIP
    >>> ensemble.compile()  # doctest: +SKIP
    >>> ensemble.predict(model_a.preprocessor({"text": texts, "image": images}))  # doctest: +SKIP
    """

    def __init__(self, members, **kwargs):
        members = [
            keras.saving.deserialize_keras_object(member) if isinstance(member, dict) else member
            for member in members
        ]
        _check_members(members)
        first = members[0]
        for index, member in enumerate(members):
            # Functional graphs need unique layer names; loaded models all share one.
            member.name = f"member_{index}"
        preprocessor = first.preprocessor
        used = {name for member in members for name in member.input_names_used}
        specs = {
            "text": ((), "string"),
            "token_ids": ((preprocessor.sequence_length,), "int32"),
            "image": ((*preprocessor.image_size, 3), "float32"),
            "image_present": ((), "float32"),
        }
        inputs = {
            name: keras.Input(shape, dtype=dtype, name=name)
            for name, (shape, dtype) in specs.items()
            if name in used
        }
        heads = first.head_classes()
        outputs = {name: [] for name in heads}
        for member in members:
            predicted = member({name: inputs[name] for name in member.input_names_used})
            if not isinstance(predicted, dict):
                predicted = {DEFAULT_HEAD: predicted}
            for name in heads:
                outputs[name].append(predicted[name])
        outputs = {
            name: AverageProbabilities(
                len(classes), multi_label=first.is_multi_label(name), name=name
            )(outputs[name])
            for name, classes in heads.items()
        }
        if not isinstance(first.class_names, dict):
            outputs = outputs[DEFAULT_HEAD]
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)

        self.members = members
        self.preprocessor = preprocessor
        self.class_names = first.class_names
        self.multi_label = first.multi_label
        self.modalities = tuple(
            name for name in MODALITIES if any(name in member.modalities for member in members)
        )
        # The export accepts rows missing a modality when any member was trained for them.
        self.modality_dropout = max(member.modality_dropout for member in members)

    @property
    def input_names_used(self):
        """Feature names any member reads."""
        return list(self.input)

    @property
    def text_encoder(self):
        """The first member's text encoder (for summaries and attention maps)."""
        return self.members[0].text_encoder

    @property
    def image_encoder(self):
        """The first member's image encoder."""
        return self.members[0].image_encoder

    @property
    def fusion(self):
        """The first member's fusion layer."""
        return self.members[0].fusion

    def call(self, inputs, training=None, mask=None):
        if isinstance(inputs, dict):
            inputs = self._used_inputs(inputs)
            mask = None
        return super().call(inputs, training=training, mask=mask)

    def compile_from_config(self, config):
        # An ensemble is assembled from trained members, not trained itself, so
        # its optimizer was never built; building it here would not match the file.
        self.compile(**keras.saving.deserialize_keras_object(config))

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "members": [keras.saving.serialize_keras_object(member) for member in self.members],
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _check_members(members):
    if not members:
        raise ValueError("An ensemble needs at least one member.")
    first = members[0]
    for index, member in enumerate(members):
        if not isinstance(member, MultimodalClassifier):
            raise ValueError(
                f"Ensemble member {index} is a {type(member).__name__}; expected a "
                "MultimodalClassifier."
            )
        if member.class_names != first.class_names or member.head_classes() != (
            first.head_classes()
        ):
            raise ValueError(
                f"Ensemble member {index} predicts {member.class_names}, member 0 "
                f"{first.class_names}: members must answer the same task."
            )
        if any(
            member.is_multi_label(name) != first.is_multi_label(name) for name in member.head_names
        ):
            raise ValueError(
                f"Ensemble member {index} and member 0 differ in which heads are multi-label."
            )
        if _features(member.preprocessor) != _features(first.preprocessor):
            raise ValueError(
                f"Ensemble member {index} was adapted differently from member 0 (vocabulary, "
                "sequence length or image size): members must share one preprocessor, as "
                "the members of one `train` run with `training.ensemble` do."
            )


def _features(preprocessor):
    """What decides the features a preprocessor makes (not its name or dtype policy)."""
    config = preprocessor.get_config()
    keys = ("vocabulary", "sequence_length", "image_size", "text_features", "norm_table")
    # Through JSON, so a tuple and the list it becomes in a saved config compare equal.
    return json.loads(json.dumps({key: config[key] for key in (*keys, "idf_weights")}))


__all__ = ["AverageProbabilities", "MultimodalEnsemble"]
