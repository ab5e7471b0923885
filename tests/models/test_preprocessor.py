import numpy as np
import pytest
import tensorflow as tf

from multimodal_tf.models.preprocessor import MultimodalPreprocessor
from tests.conftest import image_bytes
from tests.helpers import run_serialization_test


@pytest.fixture
def preprocessor():
    layer = MultimodalPreprocessor(sequence_length=5, image_size=(8, 8))
    layer.adapt(["a red circle", "a red square", "a blue square", "@x a"], min_frequency=1)
    return layer


def test_vocabulary_is_frequency_ordered_and_deterministic(preprocessor):
    assert preprocessor.vocabulary == ["a", "red", "square", "blue", "circle", "xuser"]
    assert preprocessor.vocabulary_size == 8


def test_min_frequency_drops_rare_tokens():
    layer = MultimodalPreprocessor()
    layer.adapt(["a red circle", "a red square"], min_frequency=2)
    assert layer.vocabulary == ["a", "red"]


def test_outputs_token_ids_and_image(preprocessor):
    out = preprocessor(
        {"text": tf.constant(["A RED triangle!"]), "image": tf.constant([image_bytes()])}
    )
    assert out["token_ids"].numpy().tolist() == [[2, 3, 1, 0, 0]]  # triangle is OOV (1)
    assert out["image"].shape == (1, 8, 8, 3)


def test_tf_data_per_sample_equals_batched_call(preprocessor):
    raw = {"text": ["a red square", "blue"], "image": [image_bytes(), image_bytes(format="JPEG")]}
    mapped = tf.data.Dataset.from_tensor_slices(raw).map(preprocessor).batch(2)
    per_sample = next(iter(mapped))
    batched = preprocessor({key: tf.constant(value) for key, value in raw.items()})
    for key in ("token_ids", "image"):
        np.testing.assert_array_equal(per_sample[key].numpy(), batched[key].numpy())


def test_config_round_trip_keeps_the_vocabulary(preprocessor):
    restored = run_serialization_test(preprocessor)
    assert restored.vocabulary == preprocessor.vocabulary
    text = tf.constant(["red circle"])
    np.testing.assert_array_equal(
        restored({"text": text})["token_ids"], preprocessor({"text": text})["token_ids"]
    )


def test_reserved_tokens_are_rejected():
    with pytest.raises(ValueError, match="OOV"):
        MultimodalPreprocessor(vocabulary=["a", "[UNK]"])


def test_unadapted_vocabulary_size_is_a_clear_error():
    with pytest.raises(ValueError, match="adapt"):
        MultimodalPreprocessor().vocabulary_size  # noqa: B018


def test_text_that_standardizes_to_nothing_keeps_the_sequence_length(preprocessor):
    # Real tweets can be all punctuation and '?' (emoji lost upstream).
    raw = {"text": ["??? !!!", "a red"], "image": [image_bytes(), image_bytes()]}
    batched = next(iter(tf.data.Dataset.from_tensor_slices(raw).map(preprocessor).batch(2)))
    assert batched["token_ids"].numpy().tolist() == [[0, 0, 0, 0, 0], [2, 3, 0, 0, 0]]
