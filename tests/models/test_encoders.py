import numpy as np
import pytest

from multimodal_tf.models.base_image_encoder import _pooling_matrix
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


def test_image_encoder_grid_covers_the_whole_feature_map():
    # A 6x6 map on a 4x4 grid: pooling by 6 // 4 and cropping would drop the
    # last two rows and columns, and with them this corner.
    encoder = ImageEncoder(filters=(), hidden_dim=3, grid_size=4)
    image = np.zeros((1, 6, 6, 3), "float32")
    corner = image.copy()
    corner[0, 5, 5] = 255.0
    assert not np.allclose(encoder(image)[0, -1], encoder(corner)[0, -1])
    np.testing.assert_allclose(encoder(image)[0, :-1], encoder(corner)[0, :-1])


def test_grid_pooling_is_average_pooling_when_the_grid_divides_the_map():
    np.testing.assert_allclose(_pooling_matrix(4, 2), [[0.5, 0.5, 0, 0], [0, 0, 0.5, 0.5]])
    np.testing.assert_allclose(_pooling_matrix(7, 4).sum(axis=1), np.ones(4), rtol=1e-6)
    np.testing.assert_allclose(_pooling_matrix(7, 4).sum(axis=0), np.full(7, 4 / 7), rtol=1e-6)
