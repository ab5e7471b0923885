"""A `MultimodalClassifier` over its image encoder's feature map: for cached feature maps."""

import keras

from multimodal_tf.models.classifier_graph import GraphLayers, head_outputs

#: The input name of the image encoder's feature map in `feature_map_model()`.
FEATURE_MAP = "image_feature_map"


@keras.saving.register_keras_serializable(package="multimodal_tf")
class FeatureMapTokens(keras.layers.Layer):
    """An image encoder's layers after its feature map, as a layer of their own.

    Calls `encoder.tokens_from_feature_map`, so it shares the encoder's
    weights (projection, position embedding): training it trains them.

    Args:
        encoder: `BaseImageEncoder`. Built.
        return_pooled: bool. Also return the pooled features (`wide_image`).

    Example:
    >>> tokens = FeatureMapTokens(model.image_encoder)(feature_maps)  # doctest: +SKIP
    """

    def __init__(self, encoder, return_pooled=False, **kwargs):
        super().__init__(**kwargs)
        if isinstance(encoder, dict):
            encoder = keras.layers.deserialize(encoder)
        self.encoder = encoder
        self.return_pooled = return_pooled

    def call(self, features, training=None):
        return self.encoder.tokens_from_feature_map(features, training, self.return_pooled)

    def compute_output_spec(self, features, training=None):
        # The encoder's own spec reads only the batch size of its input.
        return self.encoder.compute_output_spec(features, return_pooled=self.return_pooled)

    def get_config(self):
        config = super().get_config()
        config.update(
            {"encoder": keras.layers.serialize(self.encoder), "return_pooled": self.return_pooled}
        )
        return config


def build_feature_map_model(classifier):
    """`classifier.feature_map_model()`: a `keras.Model` sharing the classifier's layers.

    Args:
        classifier: `MultimodalClassifier` with the image modality.

    Example:
    >>> over_maps = build_feature_map_model(model)  # doctest: +SKIP
    """
    if classifier.image_encoder is None:
        raise ValueError("`feature_map_model()` needs a model with the image modality.")
    encoder = classifier.image_encoder
    inputs, token_ids, text = {}, None, None
    used = classifier.input_names_used
    if "text" in used:
        text = keras.Input((), dtype="string", name="text")
        inputs["text"] = text
    if "token_ids" in used:
        token_ids = keras.Input(
            (classifier.preprocessor.sequence_length,), dtype="int32", name="token_ids"
        )
        inputs["token_ids"] = token_ids
    feature_map = keras.Input(encoder.feature_map_shape, dtype="float32", name=FEATURE_MAP)
    image_present = keras.Input((), dtype="float32", name="image_present")
    inputs.update({FEATURE_MAP: feature_map, "image_present": image_present})
    tokens = FeatureMapTokens(encoder, return_pooled=classifier.wide_image)

    def encode_image():
        if classifier.wide_image:
            return tokens(feature_map)
        return tokens(feature_map), None

    outputs = head_outputs(
        GraphLayers.of(classifier), token_ids, encode_image, image_present, text=text
    )
    if not isinstance(classifier.class_names, dict):
        outputs = next(iter(outputs.values()))
    return keras.Model(inputs, outputs, name=f"{classifier.name}_over_feature_maps")
