"""The served backbone: each BatchNormalization folded into the convolution before it."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from multimodal_tf.models.folded_backbone import fold_batch_norms
from tests.helpers import IMAGES, TEXTS, tiny_model


def with_trained_statistics(backbone, seed=0):
    """Moving statistics, scales and offsets away from their initial 0 / 1, as after training."""
    rng = np.random.default_rng(seed)
    for layer in backbone.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            shape = layer.moving_mean.shape
            layer.moving_mean.assign(rng.normal(0, 0.05, shape))
            layer.moving_variance.assign(rng.uniform(0.8, 1.25, shape))
            layer.gamma.assign(rng.uniform(0.8, 1.25, shape))
            layer.beta.assign(rng.normal(0, 0.05, shape))
    return backbone


@pytest.mark.parametrize(
    "constructor, options, norms",
    [
        (keras.applications.MobileNetV2, {"alpha": 0.35}, 52),
        (keras.applications.MobileNetV3Small, {"alpha": 0.75}, 34),
    ],
    ids=["mobilenet_v2", "mobilenet_v3_small"],
)
def test_folding_computes_what_the_backbone_computes(constructor, options, norms):
    backbone = with_trained_statistics(
        constructor(include_top=False, weights=None, input_shape=(None, None, 3), **options)
    )
    copy, folded = fold_batch_norms(backbone)
    assert (
        folded
        == norms
        == sum(isinstance(layer, keras.layers.BatchNormalization) for layer in backbone.layers)
    )
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in copy.layers)
    assert not set(map(id, copy.weights)) & set(map(id, backbone.weights))  # a copy
    images = np.random.default_rng(1).uniform(-1, 1, (2, 64, 64, 3)).astype("float32")
    expected = backbone(images, training=False).numpy()
    np.testing.assert_allclose(copy(images).numpy(), expected, atol=1e-4 * np.abs(expected).max())


def _op_types(function):
    graph = function.graph.as_graph_def()
    types = [node.op for node in graph.node]
    for library_function in graph.library.function:
        types += [node.op for node in library_function.node_def]
    return types


def test_the_export_serves_a_folded_backbone_and_leaves_the_model_alone(tmp_path):
    from multimodal_tf.serving.export import export_saved_model

    model = tiny_model(
        image_size=64, image_encoder="mobilenet_v2", backbone_alpha=0.35, grid_size=2
    )
    with_trained_statistics(model.image_encoder.backbone)
    weights = [weight.numpy() for weight in model.weights]
    features = model.preprocessor({"text": tf.constant(TEXTS), "image": tf.constant(IMAGES)})
    expected = model.predict(features, verbose=0)
    served = tf.saved_model.load(str(export_saved_model(model, tmp_path / "m")))
    signature = served.signatures["serving_default"]
    out = signature(text=tf.constant(TEXTS), image=tf.constant(IMAGES))["probabilities"]
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-5)
    # Keras' BatchNormalization is an Rsqrt of the variance each; the served graph has
    # none of the backbone's 52 left (the fusion's LayerNormalizations keep theirs).
    plain = tf.function(lambda x: model(x, training=False)).get_concrete_function(features)
    assert _op_types(plain).count("Rsqrt") - _op_types(signature).count("Rsqrt") >= 52
    # The Keras model is as it was: its own backbone, weights and predictions.
    assert "_serving_backbone" not in model.image_encoder.__dict__
    for before, after in zip(weights, model.weights, strict=True):
        np.testing.assert_array_equal(before, after.numpy())
    np.testing.assert_allclose(model.predict(features, verbose=0), expected, atol=1e-7)
