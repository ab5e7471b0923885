import json

import numpy as np
import pytest
import tensorflow as tf

from multimodal_tf.models.classifier import MultimodalClassifier
from multimodal_tf.models.preprocessor import MultimodalPreprocessor
from tests.conftest import image_bytes
from tests.helpers import run_export_test, run_model_saving_test, run_serialization_test

TEXTS = ["warm red fire", "cold blue ice", "red hot", "blue snow"]
IMAGES = [
    image_bytes((220, 30, 30), format="JPEG"),
    image_bytes((30, 30, 220), format="PNG"),
    image_bytes((200, 60, 40), format="PNG"),
    image_bytes((40, 60, 200), format="JPEG"),
]
LABELS = np.eye(2)[[0, 1, 0, 1]]


def tiny_model(modalities=("text", "image")):
    preprocessor = MultimodalPreprocessor(sequence_length=4, image_size=(16, 16))
    preprocessor.adapt(TEXTS, min_frequency=1)
    model = MultimodalClassifier(
        ["warm", "cold"],
        preprocessor,
        modalities=modalities,
        embedding_dim=4,
        lstm_units=4,
        hidden_dim=8,
        image_filters=(4, 8),
        grid_size=2,
        num_heads=2,
    )
    model.compile()
    return model


def features(model):
    return model.preprocessor({"text": tf.constant(TEXTS), "image": tf.constant(IMAGES)})


def test_fit_reduces_the_loss():
    model = tiny_model()
    history = model.fit(features(model), LABELS, epochs=15, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert set(history.history) >= {"accuracy", "macro_f1", "loss"}


@pytest.mark.parametrize("modalities", [("text", "image"), ("text",), ("image",)])
def test_serialization_and_keras_saving(modalities, tmp_path):
    model = tiny_model(modalities)
    model.fit(features(model), LABELS, epochs=1, verbose=0)
    restored_from_config = run_serialization_test(model)
    assert restored_from_config.modalities == tuple(modalities)
    restored = run_model_saving_test(model, features(model), tmp_path)
    assert restored.preprocessor.vocabulary == model.preprocessor.vocabulary
    # The restored model is compiled and trains on.
    restored.fit(features(model), LABELS, epochs=1, verbose=0)


def test_unimodal_model_ignores_the_other_feature():
    model = tiny_model(("text",))
    batch = features(model)
    altered = dict(batch, image=tf.zeros_like(batch["image"]))
    np.testing.assert_allclose(model.predict(batch, verbose=0), model.predict(altered, verbose=0))


def test_export_matches_keras_model_in_a_process_without_multimodal_tf(tmp_path):
    model = tiny_model()
    model.fit(features(model), LABELS, epochs=3, verbose=0)
    version_dir = run_export_test(model, TEXTS, IMAGES, tmp_path)
    assert (version_dir / "assets.extra" / "labels.txt").read_text().split() == ["warm", "cold"]


@pytest.mark.parametrize(
    "kwargs, message",
    [({"modalities": ("text", "audio")}, "modalities"), ({"modalities": ()}, "modalities")],
)
def test_bad_arguments_are_clear_errors(kwargs, message):
    preprocessor = MultimodalPreprocessor(vocabulary=["a"])
    with pytest.raises(ValueError, match=message):
        MultimodalClassifier(["a", "b"], preprocessor, **kwargs)


def test_needs_two_classes():
    with pytest.raises(ValueError, match="two classes"):
        MultimodalClassifier(["only"], MultimodalPreprocessor(vocabulary=["a"]))


def test_config_is_json():
    json.dumps(tiny_model().get_config())


def test_text_with_no_known_token_still_gives_probabilities():
    model = tiny_model()
    batch = model.preprocessor(
        {"text": tf.constant(["!!! ???", "zzz"]), "image": tf.constant(IMAGES[:2])}
    )
    probabilities = model.predict(batch, verbose=0)
    assert np.isfinite(probabilities).all()
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, rtol=1e-5)
