import numpy as np
import pytest
import tensorflow as tf

from multimodal_tf.layers.preprocessing.image_decoder import ImageDecoder
from tests.conftest import image_bytes
from tests.helpers import run_layer_test


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "BMP"])
def test_decodes_every_supported_format(fmt):
    out = ImageDecoder(image_size=(8, 8))(tf.constant([image_bytes(format=fmt)]))
    assert out.shape == (1, 8, 8, 3)
    assert out.dtype == tf.float32
    # Bottom-right quarter of the test image is red, top-left is black.
    assert out[0, 7, 7, 0] > 150 and out[0, 0, 0, 0] < 40


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "LA"])
def test_grayscale_palette_and_alpha_become_rgb(mode):
    out = ImageDecoder(image_size=(8, 8))(tf.constant([image_bytes(format="PNG", mode=mode)]))
    assert out.shape == (1, 8, 8, 3)


def test_scalar_and_batch_give_the_same_pixels():
    decoder = ImageDecoder(image_size=(5, 7))
    data = image_bytes(size=(20, 10), format="JPEG")
    single = decoder(tf.constant(data))
    batch = decoder(tf.constant([data, data]))
    assert single.shape == (5, 7, 3)
    np.testing.assert_array_equal(batch[1].numpy(), single.numpy())


def test_undecodable_bytes_raise():
    with pytest.raises(tf.errors.InvalidArgumentError):
        ImageDecoder(image_size=(4, 4))(tf.constant([b"not an image"]))


def test_layer_and_config():
    run_layer_test(
        ImageDecoder, {"image_size": (4, 6)}, tf.constant([image_bytes()] * 2), (2, 4, 6, 3)
    )


def test_large_jpeg_is_decoded_at_a_reduced_scale_with_the_same_result():
    import io

    from PIL import Image

    # A smooth 512x384 gradient: reduced-scale decoding must not change what the model sees.
    y, x = np.mgrid[0:384, 0:512]
    pixels = np.stack([x / 2, y / 1.5, (x + y) / 3.5], axis=-1).astype("uint8")
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=95)
    decoded = ImageDecoder(image_size=(48, 64))(tf.constant(buffer.getvalue())).numpy()
    full = tf.image.resize(tf.io.decode_jpeg(buffer.getvalue()), (48, 64), method="area").numpy()
    assert np.abs(decoded - full).mean() < 2.0
    assert np.abs(decoded - full).max() < 12.0
