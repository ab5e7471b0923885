"""The wide (linear) path of a `MultimodalClassifier` as a Keras model of its own."""

import keras

from multimodal_tf.models.strategy_fit import StrategyAwareFit
from multimodal_tf.models.task import DEFAULT_HEAD
from multimodal_tf.models.wide_image_logits import WideImageLogits
from multimodal_tf.models.wide_text_logits import WideTextLogits


@keras.saving.register_keras_serializable(package="multimodal_tf")
class WideModel(StrategyAwareFit, keras.Model):
    """A functional model that fits under every `tf.distribute` strategy: `wide_model()`'s type.

    It takes the same arguments as a functional `keras.Model`; `StrategyAwareFit`
    lets it train under `MultiWorkerMirroredStrategy` as the classifier does.
    Only its `WideTextLogits` and `WideImageLogits` train: an image encoder it
    reads pooled features from keeps its weights.
    """

    @property
    def trainable_weights(self):
        if not self.trainable:
            return []
        return [
            weight
            for layer in self.layers
            if isinstance(layer, (WideTextLogits, WideImageLogits))
            for weight in layer.trainable_weights
        ]

    @property
    def trainable_variables(self):
        return self.trainable_weights


#: The input name of the backbone's pooled image features in `wide_model(pooled_features=True)`.
POOLED_FEATURES = "image_pooled"


def build_wide_model(classifier, pooled_features=False):
    """`classifier.wide_model()`: a `WideModel` sharing the classifier's wide layers.

    Args:
        classifier: `MultimodalClassifier` built with `wide=True`.
        pooled_features: bool. With `wide_image`, take the image encoder's
            pooled features (`POOLED_FEATURES`, `[batch, pooled_dim]`) as an
            input instead of the image, so they can be computed once and cached.

    Example:
    >>> linear = build_wide_model(model)  # doctest: +SKIP
    """
    token_ids = keras.Input(
        (classifier.preprocessor.sequence_length,), dtype="int32", name="token_ids"
    )
    inputs = {"token_ids": token_ids}
    if classifier.wide_image:
        present = keras.Input((), dtype="float32", name="image_present")
        encoder = classifier.image_encoder
        if pooled_features:
            pooled = keras.Input((encoder.pooled_dim,), dtype="float32", name=POOLED_FEATURES)
            inputs.update({POOLED_FEATURES: pooled, "image_present": present})
        else:
            size = classifier.preprocessor.image_size
            image = keras.Input((*size, 3), dtype="float32", name="image")
            inputs.update(image=image, image_present=present)
            _, pooled = encoder(image, return_pooled=True)
    outputs = {}
    for name in classifier.head_names:
        logits = classifier.get_layer(f"{name}_wide")(token_ids)
        if classifier.wide_image:
            logits = logits + classifier.get_layer(f"{name}_wide_image")(pooled, present)
        activation = "sigmoid" if classifier.is_multi_label(name) else "softmax"
        outputs[name] = keras.layers.Activation(activation, name=name)(logits)
    if not isinstance(classifier.class_names, dict):
        outputs = outputs[DEFAULT_HEAD]
    return WideModel(inputs, outputs, name=f"{classifier.name}_wide")


def deep_path_is_silent(classifier):
    """Whether every head's own kernel and bias are zero: the model is its wide path alone.

    `training.drop_deep_if_worse` zeroes them when val prefers the wide path;
    the classifier's logits are then exactly the wide path's.

    Example:
    >>> deep_path_is_silent(model)  # doctest: +SKIP
    True
    """
    for name in classifier.head_names:
        head = classifier.get_layer(name)
        for weight in (head.kernel, head.bias):
            if keras.ops.any(keras.ops.not_equal(weight, 0)):
                return False
    return True


def silence_deep_path(model):
    """Zeroes every head's own kernel and bias: its logits are then the wide path's alone."""
    for name in model.head_names:
        head = model.get_layer(name)
        for weight in (head.kernel, head.bias):
            weight.assign(keras.ops.zeros_like(weight))


def wide_path_layers(heads_classes, preprocessor, wide, wide_image, l2):
    """The wide path's layers of each head: `({head: WideTextLogits}, {head: WideImageLogits})`.

    Args:
        heads_classes: dict. Head name -> its class names.
        preprocessor: `MultimodalPreprocessor`. Vocabulary, IDF weights, word features.
        wide: bool. Build the text layers (`<head>_wide`).
        wide_image: bool. Build the image layers (`<head>_wide_image`).
        l2: float. Both layers' L2 penalty.

    Example:
    >>> heads = {"label": ["a", "b"]}
    >>> text, image = wide_path_layers(heads, preprocessor, True, False, 0.0)  # doctest: +SKIP
    """
    text = {
        name: WideTextLogits(
            preprocessor.vocabulary_size,
            len(names),
            idf_weights=preprocessor.idf_weights,
            num_word_features=preprocessor.num_word_features,
            l2=l2,
            name=f"{name}_wide",
        )
        for name, names in heads_classes.items()
        if wide
    }
    image = {
        name: WideImageLogits(len(names), l2=l2, name=f"{name}_wide_image")
        for name, names in heads_classes.items()
        if wide_image
    }
    return text, image
