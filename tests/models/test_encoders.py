import numpy as np
import pytest

from multimodal_tf.models.image_encoder import ImageEncoder
from multimodal_tf.models.text_encoder import TextEncoder
from tests.helpers import run_layer_test


def test_text_encoder_shape_mask_and_config():
    layer, output = run_layer_test(
        TextEncoder,
        {"vocabulary_size": 10, "embedding_dim": 4, "lstm_units": 4, "hidden_dim": 6},
        np.array([[2, 3, 0], [4, 0, 0]]),
        (2, 3, 6),
    )
    mask = layer.compute_mask(np.array([[2, 3, 0]]))
    assert np.asarray(mask).tolist() == [[True, True, False]]


def test_image_encoder_gives_a_token_grid():
    run_layer_test(
        ImageEncoder,
        {"filters": (4, 8), "hidden_dim": 6, "grid_size": 2},
        np.zeros((2, 16, 16, 3), "float32"),
        (2, 4, 6),
    )


def test_image_encoder_rejects_too_small_images():
    with pytest.raises(ValueError, match="grid_size=4"):
        ImageEncoder(filters=(4, 4, 4), grid_size=4)(np.zeros((1, 16, 16, 3), "float32"))
