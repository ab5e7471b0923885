import numpy as np
import pytest

from multimodal_tf.models.wide_image_logits import WideImageLogits
from tests.helpers import run_layer_test

FEATURES = np.random.default_rng(0).normal(3.0, 2.0, size=(10, 6)).astype("float32")


def test_starts_at_zero_and_round_trips():
    layer, output = run_layer_test(
        WideImageLogits, {"num_classes": 3, "l2": 0.01}, FEATURES, (10, 3)
    )
    np.testing.assert_array_equal(output, 0.0)  # adds nothing until trained


def test_is_logistic_regression_over_standardized_features_scaled_by_their_width():
    layer = WideImageLogits(2, epsilon=0.0)
    layer.adapt([FEATURES[:3], FEATURES[3:7], FEATURES[7:]])  # streamed in batches
    np.testing.assert_allclose(layer.mean.numpy(), FEATURES.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(layer.variance.numpy(), FEATURES.var(axis=0), rtol=1e-4)
    rng = np.random.default_rng(1)
    kernel, bias = rng.normal(size=(6, 2)).astype("float32"), np.array([0.5, -1.0], "float32")
    layer.kernel.assign(kernel)
    layer.bias.assign(bias)
    standardized = (FEATURES - FEATURES.mean(axis=0)) / FEATURES.std(axis=0)
    expected = standardized / np.sqrt(6) @ kernel + bias
    np.testing.assert_allclose(np.asarray(layer(FEATURES)), expected, rtol=1e-4, atol=1e-5)


def test_a_row_without_an_image_gets_no_opinion():
    layer = WideImageLogits(3)
    layer.adapt([FEATURES])
    layer.bias.assign(np.ones(3, "float32"))
    present = np.array([1, 0] * 5, "float32")
    logits = np.asarray(layer(FEATURES, present))
    np.testing.assert_array_equal(logits[1::2], 0.0)
    np.testing.assert_array_equal(logits[0::2], 1.0)


def test_l2_is_added_to_the_loss_and_bad_arguments_are_clear_errors():
    layer = WideImageLogits(3, l2=0.01)
    layer(FEATURES)
    kernel = np.random.default_rng(2).normal(size=(6, 3)).astype("float32")
    layer.kernel.assign(kernel)
    np.testing.assert_allclose(float(sum(layer.losses)), 0.01 * np.sum(kernel**2), rtol=1e-5)
    with pytest.raises(ValueError, match="0 or more"):
        WideImageLogits(3, l2=-1.0)
    with pytest.raises(ValueError, match="no feature rows"):
        WideImageLogits(3).adapt([])
