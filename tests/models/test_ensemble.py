import numpy as np
import pytest

from multimodal_tf.models.classifier import MultimodalClassifier
from multimodal_tf.models.ensemble import AverageProbabilities, MultimodalEnsemble
from multimodal_tf.models.preprocessor import MultimodalPreprocessor
from tests.helpers import (
    IMAGES,
    LABELS,
    TEXTS,
    TINY_SETTINGS,
    compiled_for_saving,
    features,
    run_export_test,
    run_layer_test,
    run_model_saving_test,
    run_serialization_test,
    tiny_model,
)


def members(count=2, **kwargs):
    """Untrained members sharing one preprocessor (their random weights differ)."""
    first = tiny_model(**kwargs)
    models = [first]
    for _ in range(count - 1):
        settings = {
            key: value
            for key, value in first.get_config().items()
            if key not in ("name", "trainable", "class_names", "preprocessor")
        }
        model = MultimodalClassifier(first.class_names, first.preprocessor, **settings)
        models.append(compiled_for_saving(model))
    return models


def test_average_probabilities_layer():
    layer, output = run_layer_test(
        AverageProbabilities,
        {"num_classes": 3, "multi_label": True},
        [np.full((2, 3), 0.2, "float32"), np.full((2, 3), 0.6, "float32")],
        (2, 3),
    )
    np.testing.assert_allclose(output, np.full((2, 3), 0.4), atol=1e-6)
    np.testing.assert_allclose(layer.thresholds.numpy(), [0.5, 0.5, 0.5])


def test_ensemble_is_the_mean_of_its_members():
    models = members(3)
    inputs = features(models[0])
    expected = np.mean([model.predict(inputs, verbose=0) for model in models], axis=0)
    ensemble = MultimodalEnsemble(models)
    np.testing.assert_allclose(ensemble.predict(inputs, verbose=0), expected, atol=1e-6)
    # The members do disagree, so the test above could fail.
    assert np.abs(models[0].predict(inputs, verbose=0) - expected).max() > 1e-4
    assert ensemble.class_names == ["warm", "cold"]
    assert ensemble.input_names_used == ["token_ids", "image", "image_present"]


def test_ensemble_config_keras_file_and_export_round_trip(tmp_path):
    ensemble = MultimodalEnsemble(members(2))
    ensemble.compile()
    run_serialization_test(ensemble)
    restored = run_model_saving_test(ensemble, features(ensemble), tmp_path)
    assert [member.name for member in restored.members] == ["member_0", "member_1"]
    run_export_test(ensemble, TEXTS, IMAGES, tmp_path / "export")


def test_ensemble_evaluates_like_any_keras_model():
    ensemble = MultimodalEnsemble(members(2))
    ensemble.compile()
    results = ensemble.evaluate(features(ensemble), LABELS, verbose=0, return_dict=True)
    assert set(results) >= {"loss", "accuracy", "macro_f1"}


def test_multi_head_and_multi_label_ensembles():
    heads = {"tone": ["warm", "cold"], "colour": ["red", "blue", "green"]}
    models = [tiny_model(class_names=heads, multi_label=["colour"]) for _ in range(2)]
    for model in models[1:]:
        model.preprocessor = models[0].preprocessor
    ensemble = MultimodalEnsemble(models)
    outputs = ensemble.predict(features(models[0]), verbose=0)
    assert outputs["tone"].shape == (4, 2) and outputs["colour"].shape == (4, 3)
    assert ensemble.is_multi_label("colour") and not ensemble.is_multi_label("tone")
    ensemble.get_layer("colour").set_thresholds([0.2, 0.3, 0.4])
    np.testing.assert_allclose(ensemble.get_layer("colour").thresholds.numpy(), [0.2, 0.3, 0.4])


def test_members_must_answer_one_task_over_one_preprocessor():
    first = tiny_model()
    with pytest.raises(ValueError, match="member 1 predicts"):
        MultimodalEnsemble([first, tiny_model(class_names=("hot", "cold"))])
    other = MultimodalPreprocessor(sequence_length=4, image_size=(16, 16))
    other.adapt(["entirely different words here"], min_frequency=1)
    stranger = MultimodalClassifier(["warm", "cold"], other, **TINY_SETTINGS)
    with pytest.raises(ValueError, match="member 1 was adapted differently"):
        MultimodalEnsemble([first, stranger])
    with pytest.raises(ValueError, match="at least one member"):
        MultimodalEnsemble([])


def test_text_only_and_fused_members_mix():
    fused = tiny_model()
    text = MultimodalClassifier(
        ["warm", "cold"],
        fused.preprocessor,
        modalities=("text",),
        embedding_dim=4,
        lstm_units=4,
        hidden_dim=8,
        num_heads=2,
    )
    ensemble = MultimodalEnsemble([text, fused])
    assert ensemble.modalities == ("text", "image")
    assert ensemble.predict(features(fused), verbose=0).shape == (4, 2)
