import numpy as np
import pytest

from multimodal_tf.models.wide_text_logits import WideTextLogits
from tests.helpers import run_layer_test

VOCABULARY_SIZE = 12
TOKEN_IDS = np.array([[2, 3, 4, 0], [5, 0, 0, 0], [0, 0, 0, 0]], "int32")


def test_starts_at_zero_and_is_a_bag():
    layer, output = run_layer_test(
        WideTextLogits, {"vocabulary_size": VOCABULARY_SIZE, "num_classes": 3}, TOKEN_IDS, (3, 3)
    )
    np.testing.assert_array_equal(output, 0.0)  # adds nothing until trained
    layer.kernel.assign(np.random.default_rng(0).normal(size=(VOCABULARY_SIZE, 3)))
    np.testing.assert_allclose(
        layer(np.array([[2, 3, 4, 0]])), layer(np.array([[4, 0, 3, 2]])), atol=1e-6
    )
    np.testing.assert_array_equal(layer(TOKEN_IDS)[2], 0.0)  # no known token: no opinion


def test_is_logistic_regression_over_tf_idf_with_words_and_chars_apart():
    idf = [1.0, 2.0] + [1.0] * (VOCABULARY_SIZE - 4)  # ids 2, 3 are words
    layer = WideTextLogits(
        VOCABULARY_SIZE, 2, idf_weights=idf, num_word_features=2, rate_multiplier=3.0
    )
    ids = np.array([[2, 3, 4, 5, 6, 0]], "int32")
    layer(ids)
    kernel = np.random.default_rng(1).normal(size=(VOCABULARY_SIZE, 2)).astype("float32")
    layer.kernel.assign(kernel)
    words = (1.0 * kernel[2] + 2.0 * kernel[3]) / np.sqrt(1.0 + 4.0)
    chars = kernel[4:7].sum(axis=0) / np.sqrt(3.0)
    np.testing.assert_allclose(np.asarray(layer(ids))[0], 3.0 * (words + chars), atol=1e-5)


def test_l2_is_logistic_regressions_penalty_on_the_logit_weights():
    layer = WideTextLogits(VOCABULARY_SIZE, 3, rate_multiplier=4.0, l2=0.01)
    assert WideTextLogits.from_config(layer.get_config()).l2 == 0.01
    layer(TOKEN_IDS)
    kernel = np.random.default_rng(2).normal(size=(VOCABULARY_SIZE, 3)).astype("float32")
    layer.kernel.assign(kernel)
    # The penalty is on w = rate_multiplier * kernel, the weights the logits see.
    expected = 0.01 * np.sum((4.0 * kernel) ** 2)
    np.testing.assert_allclose(float(sum(layer.losses)), expected, rtol=1e-5)
    unpenalised = WideTextLogits(VOCABULARY_SIZE, 3)
    unpenalised(TOKEN_IDS)
    assert not unpenalised.losses


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"idf_weights": [1.0]}, "one weight per vocabulary token"),
        ({"rate_multiplier": 0}, "positive"),
        ({"l2": -1e-4}, "0 or more"),
    ],
)
def test_bad_arguments_are_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        WideTextLogits(VOCABULARY_SIZE, 2, **kwargs)
