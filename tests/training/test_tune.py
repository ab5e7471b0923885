"""`tune`: a tiny search end to end, its outputs, and search-space checks."""

import csv

import pytest

from multimodal_tf.config import load_config
from multimodal_tf.errors import ConfigError
from multimodal_tf.training.fit import train
from multimodal_tf.training.tune import default_search_space, tune

SEARCHED = {
    ("model", "fusion"),
    ("model", "hidden_dim"),
    ("model", "embedding_dim"),
    ("model", "lstm_units"),
    ("model", "dropout_rate"),
    ("training", "learning_rate"),
}


@pytest.mark.slow
def test_tune_writes_trials_and_a_trainable_best_config(tiny_manifest, tiny_config, tmp_path):
    output = tmp_path / "tune"
    # Two trials (each a real training): enough for the best to be chosen between them.
    result = tune(tiny_manifest, tiny_config, trials=2, output_dir=output)

    with result.trials_csv.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2
    assert list(rows[0]) == [
        "trial_id",
        "status",
        *default_search_space(tiny_config),
        "val_macro_f1",
        "epochs",
        "seconds",
    ]
    assert all(row["status"] == "COMPLETED" for row in rows)
    assert all(1 <= int(row["epochs"]) <= tiny_config.training.epochs for row in rows)
    assert result.best_score == max(float(row["val_macro_f1"]) for row in rows)
    assert (output / "tuner").is_dir()

    best = load_config(result.best_config_path)
    assert best == result.best_config
    before, after = tiny_config.to_dict(), best.to_dict()
    changed = {
        (section, key)
        for section in before
        for key in before[section]
        if before[section][key] != after[section][key]
    }
    assert changed <= SEARCHED
    best_row = max(rows, key=lambda row: float(row["val_macro_f1"]))
    assert best.model.fusion == best_row["fusion"]
    assert best.training.learning_rate == float(best_row["learning_rate"])

    # Same seed, weights and batch order: training the best config repeats the best
    # trial, and the trial scored the model train() keeps (drop_deep_if_worse).
    trained = train(tiny_manifest, best, tmp_path / "run", verbose=0)
    assert trained.model.fusion.name == "fusion"
    # Its wide path reads no image, so the deep path is kept and the trial was scored on it.
    assert "deep_path" not in trained.metrics
    history = list(csv.DictReader((tmp_path / "run" / "history.csv").open()))
    deep_best = max(float(row["val_macro_f1"]) for row in history)
    assert deep_best == pytest.approx(result.best_score, abs=1e-5)


def test_unknown_search_space_key_names_the_allowed_ones(tiny_manifest, tiny_config, tmp_path):
    with pytest.raises(ConfigError, match="unknown key 'units'.*allowed keys: fusion"):
        tune(tiny_manifest, tiny_config, output_dir=tmp_path, search_space={"units": [8]})


@pytest.mark.parametrize(
    "search_space, message",
    [
        ({"fusion": ["attention", "sum"]}, "search_space\\['fusion'\\] must be"),
        ({"hidden_dim": [8, 5]}, "divisible by model.num_heads \\(2\\)"),
        ({"learning_rate": [0.0, 1e-2]}, "0 < low <= high"),
        ({"dropout_rate": [0.1, 1.0]}, "0 <= low <= high < 1"),
    ],
)
def test_bad_search_space_values_are_config_errors(tiny_config, search_space, message):
    with pytest.raises(ConfigError, match=message):
        tune("unused.csv", tiny_config, search_space=search_space)


def test_default_space_fits_the_model(tiny_config):
    tiny_config.model.modalities = ("image",)
    space = default_search_space(tiny_config)
    assert space["fusion"] == ["concat", "attention", "late"]  # no two-modality fusions
    assert "embedding_dim" not in space and "lstm_units" not in space
    with pytest.raises(ConfigError, match="'lstm_units' has no effect"):
        tune("unused.csv", tiny_config, search_space={"lstm_units": [8]})


@pytest.mark.parametrize("wide, score", [(0.7, 0.7), (0.5, None), (None, None)])
def test_a_trial_scores_the_model_train_would_keep(monkeypatch, tmp_path, wide, score):
    # With drop_deep_if_worse, train() keeps the linear path alone when the whole
    # model's best val macro-F1 is lower; a trial is scored on that same model.
    from types import SimpleNamespace

    import keras_tuner

    from multimodal_tf.training.tune import OBJECTIVE, _Tuner

    history = SimpleNamespace(history={OBJECTIVE: [0.5, 0.6, 0.55]})
    monkeypatch.setattr(keras_tuner.RandomSearch, "run_trial", lambda *args, **kwargs: [history])
    tuner = _Tuner(
        lambda hp: None,
        lambda: None,
        {} if wide is None else {OBJECTIVE: wide},
        objective=keras_tuner.Objective(OBJECTIVE, direction="max"),
        max_trials=1,
        directory=tmp_path,
        project_name="tuner",
    )
    result = tuner.run_trial(SimpleNamespace(trial_id="0"))
    assert result == ([history] if score is None else score)
    assert tuner.stats["0"][0] == 3


@pytest.mark.slow
def test_tune_over_a_frozen_backbone_trains_on_cached_maps_and_scores_what_train_keeps(
    tiny_manifest, tiny_config, tmp_path, capsys
):
    from tests.training.test_feature_maps import _config

    config = _config(tiny_config, tmp_path)
    result = tune(tiny_manifest, config, trials=1, output_dir=tmp_path / "tune", verbose=1)
    # The trial's first stage computed the maps; its second stage read them.
    assert "reads the feature maps cached in the first stage" in capsys.readouterr().out
    trained = train(tiny_manifest, result.best_config, tmp_path / "run", verbose=0)
    assert trained.metrics["val"]["macro_f1"] == pytest.approx(result.best_score, abs=1e-5)


def test_a_trials_checkpoint_holds_the_classifier_when_its_map_model_trains(
    tiny_manifest, tiny_config, tmp_path
):
    import keras_tuner
    import numpy as np
    from keras_tuner.src.engine.tuner_utils import SaveBestEpoch

    from multimodal_tf.training.tune import OBJECTIVE, _classifier_checkpoint
    from tests.training.test_feature_maps import _config, _fit_once
    from tests.training.test_wide_training import _first_stage_setup

    batches, build = _first_stage_setup(tiny_manifest, _config(tiny_config, tmp_path), tmp_path)
    objective = keras_tuner.Objective(OBJECTIVE, direction="max")
    checkpoint = _classifier_checkpoint(SaveBestEpoch(objective, str(tmp_path / "w.weights.h5")))
    model = build()
    history = _fit_once(model, batches, [checkpoint])
    assert history.model is not model  # the feature-map model trained
    reloaded = build()
    reloaded.load_weights(tmp_path / "w.weights.h5")  # a classifier's weights, images in
    for saved, trained in zip(reloaded.weights, model.weights, strict=True):
        np.testing.assert_array_equal(saved.numpy(), trained.numpy())
