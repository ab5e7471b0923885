import numpy as np
import pytest

from multimodal_tf.layers.modality_dropout import ModalityDropout
from tests.helpers import run_serialization_test

TOKENS = [np.ones((64, 3, 4), "float32"), 2 * np.ones((64, 5, 4), "float32")]
MASKS = [np.array([[True, True, False]] * 64), np.ones((64, 5), bool)]
ALL_PRESENT = [np.ones(64, bool), np.ones(64, bool)]


def test_absent_modality_becomes_one_placeholder_token():
    layer = ModalityDropout(hidden_dim=4)
    present = [np.ones(64, bool), np.arange(64) % 2 == 0]
    tokens, masks = layer([TOKENS, MASKS, present])
    masks = [np.asarray(m) for m in masks]
    image_tokens = np.asarray(tokens[1])
    np.testing.assert_array_equal(masks[0], MASKS[0])  # text untouched
    assert masks[1][0].sum() == 5 and masks[1][1].tolist() == [True] + [False] * 4
    np.testing.assert_allclose(image_tokens[1, 0], layer.placeholders.numpy()[1])
    np.testing.assert_allclose(image_tokens[0], TOKENS[1][0])
    run_serialization_test(layer)


def test_dropout_only_in_training_and_never_drops_everything():
    layer = ModalityDropout(hidden_dim=4, rate=0.5, seed=3)
    _, masks = layer([TOKENS, MASKS, ALL_PRESENT])
    for mask, expected in zip(masks, MASKS, strict=True):
        assert np.asarray(mask).sum() == expected.sum()
    _, masks = layer([TOKENS, MASKS, ALL_PRESENT], training=True)
    kept_text = np.asarray(masks[0]).sum(axis=1) == 2
    kept_image = np.asarray(masks[1]).sum(axis=1) == 5
    assert (kept_text | kept_image).all()
    # About a quarter of the samples lose each modality at rate 0.5 (both-dropped rows keep both).
    assert 5 < (~kept_text).sum() < 30 and 5 < (~kept_image).sum() < 30


def test_rate_is_checked():
    with pytest.raises(ValueError, match="rate"):
        ModalityDropout(rate=1.0)
