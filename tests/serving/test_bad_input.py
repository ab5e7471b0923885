"""The serving signature refuses bad images per instance and keeps serving."""

import numpy as np
import pytest
import tensorflow as tf

from multimodal_tf.serving.export import export_saved_model
from tests.conftest import image_bytes
from tests.helpers import TEXTS, tiny_model

JPEG = image_bytes((220, 30, 30), format="JPEG")
IMAGES = [JPEG, image_bytes((30, 30, 220)), image_bytes(format="GIF"), image_bytes(format="BMP")]


def keras_probabilities(model, texts, images):
    features = model.preprocessor(
        {"text": np.array(texts, dtype=object), "image": np.array(images, dtype=object)}
    )
    return model.predict(features, verbose=0)


@pytest.fixture(scope="module")
def strict(tmp_path_factory):
    """An untrained model exported without `allow_missing`, and its loaded signature."""
    model = tiny_model()
    version_dir = export_saved_model(model, tmp_path_factory.mktemp("strict"))
    return model, tf.saved_model.load(str(version_dir)).signatures["serving_default"]


def serve(signature, texts, images):
    return signature(text=tf.constant(texts, tf.string), image=tf.constant(images, tf.string))


def test_undecodable_and_empty_images_are_named_then_the_next_request_is_served(strict):
    model, signature = strict
    images = [b"", IMAGES[1], b"not an image at all", IMAGES[3]]
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        serve(signature, TEXTS, images)
    assert (
        "image 0 of 4: empty; image 2 of 4: not JPEG, PNG, GIF or BMP bytes "
        "(starts with 0x6e6f7420616e2069...)" in error.value.message
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"image 1 of 2: not JPEG.*0x3c68"):
        serve(signature, TEXTS[:2], [JPEG, b"<html>oops</html>"])
    # The same signature serves a good request (all four formats) right after.
    out = serve(signature, TEXTS, IMAGES)
    expected = keras_probabilities(model, TEXTS, IMAGES)
    np.testing.assert_allclose(out["probabilities"], expected, atol=1e-5)


def test_an_empty_batch_and_batches_of_different_lengths_say_so(strict):
    _, signature = strict
    with pytest.raises(tf.errors.InvalidArgumentError, match="an empty batch: send at least"):
        signature(text=tf.constant([], tf.string), image=tf.constant([], tf.string))
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        serve(signature, TEXTS[:3], IMAGES[:2])
    assert "text and image must have one entry per instance" in error.value.message
    assert "ConcatOp" not in error.value.message and "filter depth" not in error.value.message
    assert serve(signature, TEXTS[:1], [JPEG])["probabilities"].shape == (1, 2)


def test_a_truncated_jpeg_still_fails_but_without_an_index(strict):
    _, signature = strict
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        serve(signature, TEXTS[:2], [JPEG, JPEG[: len(JPEG) // 2]])
    assert "image 1 of 2" not in error.value.message  # documented limit
    assert serve(signature, TEXTS[:1], [JPEG])["probabilities"].shape == (1, 2)


@pytest.mark.parametrize("allow_missing, modality_dropout", [(True, 0.0), (None, 0.2)])
def test_empty_image_is_accepted_when_missing_modalities_are(
    allow_missing, modality_dropout, tmp_path
):
    model = tiny_model(modality_dropout=modality_dropout)
    version_dir = export_saved_model(model, tmp_path, allow_missing=allow_missing)
    signature = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    images = [IMAGES[0], b"", IMAGES[2], IMAGES[3]]
    out = serve(signature, TEXTS, images)
    expected = keras_probabilities(model, TEXTS, images)
    np.testing.assert_allclose(out["probabilities"], expected, atol=1e-5)
    with pytest.raises(tf.errors.InvalidArgumentError, match="image 1 of 2: not JPEG"):
        serve(signature, TEXTS[:2], [b"", b"GIF"])


def png_header(width, height):
    """The first bytes of a PNG that declares `width` x `height` (its pixels never come)."""
    import struct
    import zlib

    fields = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + fields
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(fields))
        + chunk
        + struct.pack(">I", zlib.crc32(chunk))
    )


@pytest.mark.parametrize("format", ["JPEG", "PNG", "GIF", "BMP"])
def test_image_sizes_are_read_from_headers(format):
    from multimodal_tf.serving.request_checks import header_sizes

    images = [image_bytes(size=(37, 11), format=format), b"", image_bytes(size=(5, 300))]
    height, width = header_sizes(tf.constant(images))
    assert height.numpy().tolist() == [11, 0, 300]
    assert width.numpy().tolist() == [37, 0, 5]


def test_an_image_over_the_pixel_limit_is_refused_from_its_header_before_decoding(tmp_path):
    """A 20000x20000 PNG header (no pixel data) is refused, naming the row and the size.

    Decoding it would fail (or, with the data, take 1.2 GB): the message proves the
    header check ran first.
    """
    version_dir = export_saved_model(tiny_model(), tmp_path, max_pixels=1_000_000)
    signature = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    bomb = png_header(20000, 20000) + b"\x00" * 64
    big = image_bytes(size=(1200, 1000), format="JPEG")
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        serve(signature, TEXTS[:3], [JPEG, bomb, big])
    assert (
        "image 1 of 3: 20000x20000 pixels, over the limit of 1000000; "
        "image 2 of 3: 1200x1000 pixels, over the limit of 1000000" in error.value.message
    )
    served = serve(signature, TEXTS[:1], [image_bytes(size=(1000, 1000), format="JPEG")])
    assert served["probabilities"].shape == (1, 2)


def test_texts_are_cut_to_the_byte_limit_before_standardizing(tmp_path):
    model = tiny_model()
    version_dir = export_saved_model(model, tmp_path, max_text_bytes=13)
    signature = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    long_text = "warm red fire" + " cold blue ice" * 50_000
    served = serve(signature, [long_text, "warm red fire"], [JPEG, JPEG])["probabilities"]
    np.testing.assert_allclose(served[0], served[1], atol=1e-6)
    expected = keras_probabilities(model, ["warm red fire"], [JPEG])[0]
    np.testing.assert_allclose(served[0], expected, atol=1e-5)
    # A character cut in half is served like any invalid UTF-8.
    served = serve(signature, ["warm red fir\u00e9 and more"], [JPEG])["probabilities"]
    assert np.isfinite(served.numpy()).all()


def test_export_refuses_limits_that_are_not_positive(tmp_path):
    from multimodal_tf.errors import DataError

    with pytest.raises(DataError, match="max_pixels and max_text_bytes are positive"):
        export_saved_model(tiny_model(), tmp_path, max_text_bytes=0)
