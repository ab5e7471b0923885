"""`MultimodalClassifier`'s layer arguments -> layers: a name, a saved config or a layer.

The classifier takes each encoder (and its fusion) as a registered name, the
serialized config a saved model holds, or a Keras layer; these functions turn
any of them into the layer, with the classifier's widths for a name.
"""

import keras

from multimodal_tf.models.image_encoder import get_image_encoder
from multimodal_tf.models.text_encoder import get_text_encoder


def resolve_layer(value):
    """A Keras layer from its config dict; a name or a layer as it is.

    Example:
    >>> resolve_layer("bag")
    'bag'
    """
    if isinstance(value, dict):
        return keras.layers.deserialize(value)
    if isinstance(value, str) or isinstance(value, keras.layers.Layer):
        return value
    raise ValueError(f"Expected a name or a Keras layer; received {value!r}.")


def text_encoder_layer(
    text_encoder,
    preprocessor,
    embedding_dim,
    hidden_dim,
    dropout_rate,
    lstm_units,
    num_heads,
    token_dropout,
    text_preset="",
    fine_tune_text=False,
):
    """The text encoder, named `text_encoder`; a name is built with these widths.

    Args:
        text_encoder: str, dict or Keras layer. See `resolve_layer`.
        preprocessor: `MultimodalPreprocessor`. Its vocabulary size (and, for
            `bag`, its IDF weights and word-feature count).
        embedding_dim, hidden_dim, dropout_rate, lstm_units: the classifier's.
        num_heads: int. For `transformer` only.
        token_dropout: float. For `bag` only.
        text_preset: str. For `hub` only: the KerasHub preset (name or folder);
            its tokens per text are `preprocessor.text_tokens`.
        fine_tune_text: bool. For `hub` only: train the preset's backbone.

    Example:
    >>> layer = text_encoder_layer("lstm", preprocessor, 64, 64, 0.1, 64, 4, 0.0)  # doctest: +SKIP
    """
    layer = resolve_layer(text_encoder)
    if not isinstance(layer, str):
        return layer
    if layer == "hub":
        from multimodal_tf.models.hub_text_encoder import HubTextEncoder

        return HubTextEncoder(
            text_preset,
            sequence_length=preprocessor.text_tokens or 128,
            hidden_dim=hidden_dim,
            fine_tune=fine_tune_text,
            name="text_encoder",
        )
    extra = {}
    if layer == "transformer":
        extra["num_heads"] = num_heads
    if layer == "bag":
        extra.update(
            token_dropout=token_dropout,
            idf_weights=preprocessor.idf_weights,
            num_word_features=preprocessor.num_word_features,
        )
    return get_text_encoder(
        layer,
        preprocessor.vocabulary_size,
        embedding_dim=embedding_dim,
        hidden_dim=hidden_dim,
        dropout_rate=dropout_rate,
        lstm_units=lstm_units,
        name="text_encoder",
        **extra,
    )


def image_encoder_layer(
    image_encoder,
    hidden_dim,
    grid_size,
    dropout_rate,
    image_filters,
    weights,
    trainable_backbone,
    backbone_alpha,
):
    """The image encoder, named `image_encoder`; a name is built with these settings.

    Args:
        image_encoder: str, dict or Keras layer. See `resolve_layer`.
        hidden_dim, grid_size, dropout_rate: the classifier's.
        image_filters: tuple of int. For `conv`.
        weights: str or None. Pretrained backbone weights (`imagenet` or a file).
        trainable_backbone: bool.
        backbone_alpha: float. For MobileNet backbones only.

    Example:
    >>> layer = image_encoder_layer("conv", 64, 4, 0.1, (32,), None, False, 1.0)  # doctest: +SKIP
    """
    layer = resolve_layer(image_encoder)
    if not isinstance(layer, str):
        return layer
    return get_image_encoder(
        layer,
        hidden_dim=hidden_dim,
        grid_size=grid_size,
        dropout_rate=dropout_rate,
        filters=image_filters,
        weights=weights,
        trainable_backbone=trainable_backbone,
        name="image_encoder",
        **({"alpha": backbone_alpha} if "mobilenet" in layer else {}),
    )
