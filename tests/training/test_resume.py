"""Runs that survive a kill, and reruns that give the same numbers."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from multimodal_tf.data.manifest import read_manifest
from multimodal_tf.training.callbacks import (
    AtomicBackupAndRestore,
    AtomicModelCheckpoint,
    ResumableEarlyStopping,
    resume_state,
)
from multimodal_tf.training.evaluate import load_model_file, predict_records
from tests.conftest import image_bytes, write_manifest
from tests.helpers import write_config


def _model():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.Dense(1)])
    model.compile(keras.optimizers.Adam(0.01), loss="mse")
    model.optimizer.build(model.trainable_variables)  # saved as a trained model's is
    return model


class _Interrupt(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 2:
            raise RuntimeError("interrupted")


class _FirstEpoch(keras.callbacks.Callback):
    """Records the weights and optimizer step the model starts its first epoch with."""

    def on_epoch_begin(self, epoch, logs=None):
        if not hasattr(self, "epoch"):
            self.epoch = epoch
            self.weights = [w.copy() for w in self.model.get_weights()]
            self.iterations = int(self.model.optimizer.iterations.numpy())


def test_backup_restores_epoch_weights_and_optimizer(tmp_path):
    x = np.random.default_rng(0).normal(size=(16, 3)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    first = _model()
    with pytest.raises(RuntimeError, match="interrupted"):
        first.fit(
            x,
            y,
            batch_size=4,
            epochs=5,
            verbose=0,
            callbacks=[AtomicBackupAndRestore(tmp_path / "backup"), _Interrupt()],
        )
    assert AtomicBackupAndRestore.saved_epoch(tmp_path / "backup") == 2
    assert [p.name for p in (tmp_path / "backup").glob("*.h5")] == ["epoch-00002.weights.h5"]

    probe = _FirstEpoch()
    second = _model()  # fresh weights, as in a new process
    history = second.fit(
        x,
        y,
        batch_size=4,
        epochs=5,
        verbose=0,
        callbacks=[AtomicBackupAndRestore(tmp_path / "backup"), probe],
    )
    assert probe.epoch == 2 and len(history.history["loss"]) == 3
    assert probe.iterations == 8  # 2 epochs x 4 steps: Adam's state came back too
    for restored, saved in zip(probe.weights, first.get_weights(), strict=True):
        np.testing.assert_array_equal(restored, saved)
    assert not (tmp_path / "backup").exists()  # a finished run leaves no backup


def test_checkpoint_replaces_best_model_atomically(tmp_path):
    x = np.zeros((4, 3), "float32")
    model = _model()
    checkpoint = AtomicModelCheckpoint(tmp_path / "model.keras", monitor="score")
    checkpoint.set_model(model)
    checkpoint.on_train_begin()
    checkpoint.on_epoch_end(0, {"score": 0.5})
    first = (tmp_path / "model.keras").read_bytes()
    checkpoint.on_epoch_end(1, {"score": 0.4})  # worse: the file stays
    assert (tmp_path / "model.keras").read_bytes() == first
    assert [p.name for p in tmp_path.iterdir()] == ["model.keras"]  # no temporary left
    assert keras.saving.load_model(tmp_path / "model.keras").predict(x, verbose=0).shape == (4, 1)


def test_resume_state_trims_rerun_epochs_and_keeps_best(tmp_path):
    history = tmp_path / "history.csv"
    history.write_text("epoch,loss,val_macro_f1\n0,1.0,0.2\n1,0.8,0.6\n2,0.7,0.5\n3,0.6,0.7\n")
    best, wait = resume_state(history, initial_epoch=3)
    assert best == pytest.approx(0.7)  # epoch 3 was logged (its model may be on disk)
    assert wait == 1  # of the finished epochs, the best (0.6) was one epoch ago
    assert [row["epoch"] for row in csv.DictReader(history.open())] == ["0", "1", "2"]
    assert resume_state(history, initial_epoch=0) == (None, 0)


def _epochs_until_stopped(stop, scores, initial_epoch=0):
    stop.set_model(_model())
    stop.on_train_begin()
    for epoch, score in enumerate(scores):
        stop.on_epoch_end(initial_epoch + epoch, {"score": score})
        if stop.model.stop_training:
            return epoch + 1
    return None  # ran every epoch


# Keras' rule: patience counts from the last epoch above both the baseline and
# every earlier epoch, and only an epoch that is no new best can stop the run.
@pytest.mark.parametrize(
    "scores, baseline, epochs",
    [
        ([0.50, 0.52, 0.51, 0.51, 0.51], None, 5),  # 3 epochs after its best: runs on
        ([0.50, 0.52, 0.51, 0.51, 0.51], 0.6, 3),  # never above 0.6: stops after patience
        ([0.50, 0.65, 0.60, 0.60, 0.60, 0.60], lambda: 0.6, 5),  # counts from its best above
        ([0.50, 0.60, 0.60, 0.60, 0.60], 0.6, 3),  # a tie is not above it
        ([0.50, 0.55, 0.58, 0.59, 0.595], 0.6, None),  # a new best every epoch runs on
    ],
)
def test_early_stopping_with_a_baseline_counts_patience_from_beating_it(scores, baseline, epochs):
    stop = ResumableEarlyStopping(3, monitor="score", baseline=baseline)
    assert _epochs_until_stopped(stop, scores) == epochs


def test_a_resumed_run_that_never_beat_the_baseline_has_waited_all_its_epochs():
    resumed = {"best": 0.58, "wait": 0, "epochs_done": 2}  # its best was its last epoch
    later = [0.57, 0.57, 0.57]
    stop = ResumableEarlyStopping(3, monitor="score", baseline=0.6, **resumed)
    assert _epochs_until_stopped(stop, later, initial_epoch=2) == 1
    stop = ResumableEarlyStopping(3, monitor="score", **resumed)
    assert _epochs_until_stopped(stop, later, initial_epoch=2) == 3
    stop = ResumableEarlyStopping(3, monitor="score", baseline=0.5, **resumed)
    assert _epochs_until_stopped(stop, later, initial_epoch=2) == 3  # 0.58 beat 0.5


def _train_command(manifest, config, output):
    return [
        sys.executable,
        "-m",
        "multimodal_tf",
        "train",
        "--manifest",
        str(manifest),
        "--config",
        str(config),
        "--output",
        str(output),
        "--quiet",
    ]


@pytest.fixture
def keyed_manifest(tmp_path):
    """480 rows whose label the colour and the words give away: learnt in an epoch or two."""
    (tmp_path / "images").mkdir()
    warm, cold = image_bytes((220, 40, 40)), image_bytes((40, 40, 220))
    (tmp_path / "images" / "warm.png").write_bytes(warm)
    (tmp_path / "images" / "cold.png").write_bytes(cold)
    rows = []
    for index in range(480):
        label = "warm" if index % 2 else "cold"
        words = "sunny hot fire" if label == "warm" else "icy snow frost"
        split = "test" if index % 10 == 9 else "val" if index % 10 == 8 else "train"
        rows.append(
            {
                "id": str(index),
                "text": f"{words} {index}",
                "image": f"images/{label}.png",
                "label": label,
                "split": split,
            }
        )
    return write_manifest(tmp_path, rows)


@pytest.mark.slow
def test_sigkill_mid_epoch_then_same_command_resumes(keyed_manifest, tiny_config, tmp_path):
    # Without the wide path trained first, the first epoch starts from fresh weights
    # (its loss is the yardstick below); test_wide_training.py resumes a wide run.
    tiny_config.model.wide = False
    config = write_config(
        tmp_path, tiny_config, {"training": {"epochs": 12, "early_stopping_patience": 20}}
    )
    run = tmp_path / "run"
    command = _train_command(keyed_manifest, config, run)
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    process = subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, text=True)
    deadline, marks = time.monotonic() + 240, []
    while time.monotonic() < deadline and process.poll() is None:
        done = AtomicBackupAndRestore.saved_epoch(run / "backup")
        if done and (not marks or marks[-1][0] != done):
            marks.append((done, time.monotonic()))
        if len(marks) >= 2:  # epoch length known: kill halfway through the next epoch
            time.sleep((marks[-1][1] - marks[-2][1]) / 2)
            break
        time.sleep(0.05)
    assert process.poll() is None, "training ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = AtomicBackupAndRestore.saved_epoch(run / "backup")
    assert 2 <= killed_at < 12
    assert not (run / "metrics.json").exists()

    rerun = subprocess.run(
        command, env=environment, capture_output=True, text=True, check=True, timeout=300
    )
    assert f"Resuming from {run / 'backup'}: {killed_at} of 12 epochs" in rerun.stdout
    record = json.loads((run / "run.json").read_text())
    assert record["resumed_from_epoch"] == killed_at
    rows = list(csv.DictReader((run / "history.csv").open()))
    epochs = [int(row["epoch"]) for row in rows]
    assert epochs == list(range(len(epochs))) and len(epochs) > killed_at  # none twice
    losses = [float(row["loss"]) for row in rows]
    # Restored weights: the first resumed epoch goes on from where training was,
    # far below the loss of an epoch that starts from fresh weights.
    assert losses[killed_at] < 0.5 * losses[0]
    assert not (run / "backup").exists()
    metrics = json.loads((run / "metrics.json").read_text())
    best = max(float(row["val_macro_f1"]) for row in rows)
    model = keras.saving.load_model(run / "model.keras")
    assert model.class_names and metrics["val"]["macro_f1"] == pytest.approx(best, abs=1e-3)


def test_changed_config_does_not_resume_someone_elses_backup(tiny_manifest, tiny_config, tmp_path):
    from multimodal_tf.config import save_config
    from multimodal_tf.errors import ConfigError
    from multimodal_tf.training.fit import train

    run = tmp_path / "run"
    (run / "backup").mkdir(parents=True)  # as a killed run leaves it
    save_config(tiny_config, run / "config.yaml")
    tiny_config.training.learning_rate = 0.5
    with pytest.raises(ConfigError, match="different config"):
        train(tiny_manifest, tiny_config, run, verbose=0)


@pytest.mark.slow
def test_deterministic_reruns_train_identical_models(tiny_manifest, tiny_config, tmp_path):
    """The same command in two processes trains the same model, step for step.

    Compared: both stages' epoch logs, every weight and optimizer slot of the
    saved models, and their probabilities on every row, not only the metrics
    (argmax figures over a few rows, which many different models share).
    """
    config = write_config(
        tmp_path, tiny_config, {"training": {"deterministic": True, "epochs": 2, "wide_epochs": 2}}
    )
    runs = [tmp_path / "a", tmp_path / "b"]
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    # Side by side, each process seeding itself: deterministic ops give the same
    # numbers however the two processes share the cores.
    processes = [
        subprocess.Popen(
            _train_command(tiny_manifest, config, run),
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for run in runs
    ]
    for process in processes:
        _, errors = process.communicate(timeout=300)
        assert process.returncode == 0, errors[-3000:]

    first, second = runs
    for name in ("wide_history.csv", "history.csv", "metrics.json"):
        assert (first / name).read_text() == (second / name).read_text(), f"{name} differs"
    metrics = json.loads((first / "metrics.json").read_text())
    assert "train_seconds" not in metrics  # timing is in run.json
    # What is compared was trained: the wide path in its own stage, then the deep
    # path around it, which the saved model keeps (no drop_deep_if_worse verdict).
    assert metrics["predicted_by"] == {"wide": ["text"], "deep": ["text", "image"]}
    assert "deep_path" not in metrics
    assert len((first / "wide_history.csv").read_text().splitlines()) == 1 + 2
    assert len((first / "history.csv").read_text().splitlines()) == 1 + 2

    models = [load_model_file(run) for run in runs]
    variables = [[*model.weights, *model.optimizer.variables] for model in models]
    assert int(models[0].optimizer.iterations.numpy()) > 0
    for a, b in zip(*variables, strict=True):
        assert a.path == b.path
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=f"{a.path} differs")
    rows = read_manifest(tiny_manifest)
    probabilities = [predict_records(model, rows)[0] for model in models]
    np.testing.assert_array_equal(*probabilities, err_msg="predicted probabilities differ")


def test_a_finished_run_is_not_replaced_unless_asked(tiny_manifest, tiny_config, tmp_path):
    from multimodal_tf.config import save_config
    from multimodal_tf.errors import ConfigError
    from multimodal_tf.training.fit import train

    run = tmp_path / "run"  # a finished run of this config, as train leaves it
    run.mkdir()
    save_config(tiny_config, run / "config.yaml")
    before = {"metrics.json": b'{"test": {}}\n', "model.keras": b"a finished run's model"}
    for name, data in before.items():
        (run / name).write_bytes(data)
    tiny_config.training.learning_rate = 0.5
    tiny_config.training.epochs = 1
    with pytest.raises(ConfigError, match="holds a finished run .*Pass --overwrite"):
        train(tiny_manifest, tiny_config, run, verbose=0)
    assert {name: (run / name).read_bytes() for name in before} == before
    assert "learning_rate: 0.5" not in (run / "config.yaml").read_text()

    train(tiny_manifest, tiny_config, run, verbose=0, overwrite=True)
    assert (run / "model.keras").read_bytes() != before["model.keras"]
    assert "learning_rate: 0.5" in (run / "config.yaml").read_text()


def test_a_run_killed_after_training_resumes_at_evaluation(
    tiny_manifest, tiny_config, tmp_path, monkeypatch, capsys
):
    from multimodal_tf.training import fit

    run = tmp_path / "run"

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # as a kill between training and metrics.json

    with monkeypatch.context() as patch:
        patch.setattr(fit, "evaluate_predictions", killed)
        with pytest.raises(KeyboardInterrupt):
            fit.train(tiny_manifest, tiny_config, run, verbose=0)
    model_bytes = (run / "model.keras").read_bytes()
    assert not (run / "metrics.json").exists()
    capsys.readouterr()

    def no_training(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(fit, "fit_second_stage", no_training)
    result = fit.train(tiny_manifest, tiny_config, run, verbose=0)
    assert "Resuming at evaluation" in capsys.readouterr().out
    assert (run / "model.keras").read_bytes() == model_bytes
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] == pytest.approx(result.metrics["test"]["accuracy"])
    assert metrics["predicted_by"] and result.metrics["train_seconds"] > 0


def test_a_model_without_a_finished_training_is_not_replaced(tiny_manifest, tiny_config, tmp_path):
    from multimodal_tf.errors import ConfigError
    from multimodal_tf.training.fit import train

    run = tmp_path / "run"
    run.mkdir()
    (run / "model.keras").write_bytes(b"someone's model")
    with pytest.raises(ConfigError, match="a run that did not finish training"):
        train(tiny_manifest, tiny_config, run, verbose=0)
    assert (run / "model.keras").read_bytes() == b"someone's model"
