import json

import keras
import numpy as np
import pytest

from multimodal_tf.errors import ConfigError
from multimodal_tf.models.ensemble import MultimodalEnsemble
from multimodal_tf.serving.export import export_saved_model
from multimodal_tf.training.evaluate import evaluate
from multimodal_tf.training.fit import train


@pytest.mark.slow  # two tiny trainings and a report, ~50 s on 2 cores
def test_train_with_ensemble_saves_members_and_their_average(tiny_manifest, tiny_config, tmp_path):
    tiny_config.training.ensemble = 2
    tiny_config.model.wide = False  # one training stage per member: averaging is the claim
    tiny_config.training.report = True  # the report must take an ensemble too
    run = tmp_path / "run"
    result = train(tiny_manifest, tiny_config, run, verbose=0)

    assert isinstance(result.model, MultimodalEnsemble)
    assert len(result.model.members) == 2
    for index in range(2):
        assert (run / "members" / str(index) / "model.keras").is_file()
        assert (run / "members" / str(index) / "history.csv").is_file()
    # The report shows the first member's training curves.
    assert "no training history" not in (run / "report.html").read_text()
    saved = json.loads((run / "metrics.json").read_text())
    assert set(saved) >= {"val", "test", "members"}
    assert [set(member) for member in saved["members"]] == [{"val", "test"}] * 2

    # RUN/model.keras is the ensemble, and it is the mean of the saved members.
    loaded = keras.saving.load_model(run / "model.keras")
    members = [keras.saving.load_model(run / "members" / str(i) / "model.keras") for i in (0, 1)]
    features = loaded.preprocessor(
        {
            "text": np.array(["sunny warm fire", "icy cold snow"], dtype=object),
            "image": np.array(
                [(tiny_manifest.parent / "images/0.jpg").read_bytes()] * 2, dtype=object
            ),
        }
    )
    expected = np.mean([member.predict(features, verbose=0) for member in members], axis=0)
    np.testing.assert_allclose(loaded.predict(features, verbose=0), expected, atol=1e-6)
    # Different seeds gave different members.
    assert not np.allclose(members[0].predict(features, verbose=0), expected, atol=1e-5)

    assert evaluate(run, tiny_manifest, split="test") == saved["test"]
    version = export_saved_model(loaded, tmp_path / "served")
    assert (version / "saved_model.pb").is_file()


def test_ensemble_must_be_positive(tiny_manifest, tiny_config, tmp_path):
    tiny_config.training.ensemble = 0
    with pytest.raises(ConfigError, match="training.ensemble must be 1"):
        train(tiny_manifest, tiny_config, tmp_path / "run", verbose=0)


def test_resumed_ensemble_keeps_finished_members_and_resumes_the_rest(tmp_path):
    from multimodal_tf.config import TrainingConfig
    from multimodal_tf.training.ensemble import fit_ensemble, member_dir
    from tests.models.test_ensemble import members

    models = members(3)
    trained = []

    def fit_member(folder, seed):
        trained.append(seed)
        models[seed - 1337].save(folder / "model.keras")
        return 4 if seed == 1338 else 0

    # Member 0 finished before the interruption; member 1 was cut short (its backup
    # is there); member 2 had not started.
    for index in (0, 1):
        member_dir(tmp_path, index).mkdir(parents=True)
    models[0].save(member_dir(tmp_path, 0) / "model.keras")
    (member_dir(tmp_path, 1) / "backup").mkdir()
    training = TrainingConfig(ensemble=3, seed=1337)
    initial_epoch, ensemble = fit_ensemble(fit_member, tmp_path, training, resuming=True)
    assert trained == [1338, 1339]
    assert initial_epoch == 4
    assert len(ensemble.members) == 3 and (tmp_path / "model.keras").is_file()

    # Not resuming: every member trains again.
    trained.clear()
    fit_ensemble(fit_member, tmp_path, training, resuming=False, verbose=0)
    assert trained == [1337, 1338, 1339]


@pytest.mark.slow  # two tiny trainings, ~30 s
def test_multi_label_ensemble_tunes_thresholds_on_the_average(tmp_path):
    from multimodal_tf.data.manifest import read_manifest
    from multimodal_tf.training.thresholds import best_thresholds
    from tests.conftest import make_tiny_config
    from tests.training.test_multilabel import multi_hot, write_multilabel_manifest

    manifest = write_multilabel_manifest(tmp_path / "data")
    config = make_tiny_config()
    config.data.multi_label = True
    config.training.ensemble = 2
    config.model.wide = False  # one training stage per member: the thresholds are the claim
    result = train(manifest, config, tmp_path / "run", verbose=0)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert len(metrics["members"]) == 2
    assert set(metrics["members"][0]) == {"val", "test"}

    model = keras.saving.load_model(tmp_path / "run" / "model.keras")
    val = [r for r in read_manifest(manifest) if r.split == "val"]
    features = model.preprocessor(
        {
            "text": np.array([r.text for r in val], dtype=object),
            "image": np.array([open(r.image, "rb").read() for r in val], dtype=object),
        }
    )
    chosen = best_thresholds(model.predict(features, verbose=0), [multi_hot(r.label) for r in val])
    np.testing.assert_allclose(model.get_layer("label").thresholds.numpy(), chosen, atol=1e-6)
    evaluated = evaluate(tmp_path / "run", manifest)
    for key in ("macro_f1", "micro_f1", "hamming_loss"):
        assert evaluated[key] == pytest.approx(metrics["test"][key]), key
    assert result.model.is_multi_label()
