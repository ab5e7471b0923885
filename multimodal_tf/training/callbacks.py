"""The callbacks `train()` runs by default, made safe to kill and resume.

Keras' `BackupAndRestore`, `ModelCheckpoint`, `EarlyStopping` and `CSVLogger`
each assume the process lives to the end of `fit`. A run that is killed (a
SIGKILL, a preempted VM) and started again with the same command must instead
go on from the last finished epoch, with its best score, early-stopping
patience and epoch log intact, and must never leave a half-written file where
a good one was. The subclasses here add exactly that and nothing else.
"""

import csv
import json
import os
from pathlib import Path

import keras

from multimodal_tf.files import write_text_atomically

BACKUP_DIR = "backup"
MONITOR = "val_macro_f1"
#: The `CSVLogger` epoch log of a run (or ensemble member) folder.
HISTORY_FILE = "history.csv"


class SavesModelToSave:
    """Saves (and restores) `model_to_save` when set, not the model being fit.

    `fit_second_stage` fits a model over cached feature maps that shares every
    trained weight with the classifier; the checkpoint and the backup must
    still write the classifier, the model a user loads and serves. A mixin:
    it goes before the callback class it changes.
    """

    model_to_save = None

    def set_model(self, model):
        super().set_model(model if self.model_to_save is None else self.model_to_save)


class AtomicBackupAndRestore(SavesModelToSave, keras.callbacks.BackupAndRestore):
    """`BackupAndRestore` whose backups are never half-written.

    Each epoch's weights (optimizer state included) go to a new file named after
    the epoch; only then does `training_metadata.json` switch to it, by an
    atomic rename, and the previous file is removed. A kill at any instant
    leaves a metadata file that names complete weights.

    With `model_to_save` set, it backs up (and restores) that model instead
    of the one being fit.

    Args:
        backup_dir: str or Path. Used by this callback only.

    Example:
    >>> backup = AtomicBackupAndRestore("runs/demo/backup")
    >>> model.fit(dataset, epochs=10, callbacks=[backup])  # doctest: +SKIP
    """

    def __init__(self, backup_dir):
        super().__init__(str(backup_dir), save_freq="epoch", delete_checkpoint=True)

    @staticmethod
    def saved_epoch(backup_dir):
        """Epochs finished by the run backed up in `backup_dir` (0 without a backup)."""
        metadata = Path(backup_dir) / "training_metadata.json"
        if not metadata.is_file():
            return 0
        return int(json.loads(metadata.read_text())["epoch"])

    def _load_model(self):
        metadata_path = Path(self.backup_dir) / "training_metadata.json"
        if not metadata_path.is_file():
            return
        metadata = json.loads(metadata_path.read_text())
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        self.model.load_weights(Path(self.backup_dir) / metadata["weights"])
        self.model._initial_epoch = metadata["epoch"]  # what Keras' own callback sets

    def _save_model(self):
        backup_dir = Path(self.backup_dir)
        backup_dir.mkdir(parents=True, exist_ok=True)
        weights = f"epoch-{self._current_epoch:05d}.weights.h5"
        self.model.save_weights(backup_dir / weights, overwrite=True)
        write_text_atomically(
            backup_dir / "training_metadata.json",
            json.dumps({"epoch": self._current_epoch, "weights": weights}),
        )
        for old in backup_dir.glob("epoch-*.weights.h5"):
            if old.name != weights:
                old.unlink()


class AtomicModelCheckpoint(SavesModelToSave, keras.callbacks.ModelCheckpoint):
    """`ModelCheckpoint(save_best_only=True)` that replaces the best model atomically.

    The model is written to a temporary file beside `filepath` and renamed over
    it, so a kill while saving keeps the previous best model whole. With
    `model_to_save` set, that model is saved instead of the one being fit.

    Args:
        filepath: str or Path. A `.keras` file.
        monitor: str. A validation metric to maximise.
        initial_value_threshold: float or None. The best score so far (when resuming).
    """

    def __init__(self, filepath, monitor=MONITOR, initial_value_threshold=None):
        self.final_path = Path(filepath)
        temporary = self.final_path.with_name(f".saving-{self.final_path.name}")
        super().__init__(
            str(temporary),
            monitor=monitor,
            mode="max",
            save_best_only=True,
            initial_value_threshold=initial_value_threshold,
        )

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if os.path.exists(self.filepath):
            os.replace(self.filepath, self.final_path)


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """`EarlyStopping` on a validation metric that can start from a resumed state.

    With a `baseline`, Keras' own rule applies: patience counts the epochs
    since the last one that beat both the baseline and every earlier epoch,
    and the first epoch after that which is no new best stops the run. So a
    run that never beats the baseline stops after about `patience` epochs,
    however long ago its own best was. `train()` and `tune()` pass the first
    stage's best score when `training.drop_deep_if_worse` would drop a second
    stage that ends below it.

    Args:
        patience: int. Epochs without improvement before stopping.
        monitor: str. A validation metric to maximise.
        best: float or None. Best score of the epochs already run.
        wait: int. Epochs already run since that best score.
        baseline: float, None, or a callable taking no argument and
            returning either, called when training begins (for a score
            known only once the model is built).
        epochs_done: int. Epochs already run; a resumed run whose `best`
            is not above the baseline has waited that many.

    Example:
    >>> stop = ResumableEarlyStopping(8, baseline=lambda: 0.61)
    >>> model.fit(train, validation_data=val, callbacks=[stop])  # doctest: +SKIP
    """

    def __init__(self, patience, monitor=MONITOR, best=None, wait=0, baseline=None, epochs_done=0):
        super().__init__(monitor=monitor, mode="max", patience=patience)
        self.resumed_best = best
        self.resumed_wait = wait
        self.baseline_source = baseline
        self.epochs_done = epochs_done

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        source = self.baseline_source
        self.baseline = source() if callable(source) else source
        if self.resumed_best is not None:
            self.best, self.wait = self.resumed_best, self.resumed_wait
            if self.baseline is not None and not self.resumed_best > self.baseline:
                self.wait = self.epochs_done


def read_history(path):
    """The numeric columns of a Keras `CSVLogger` file, `{name: [values]}`; `{}` if absent.

    Example:
    >>> read_history("runs/demo/history.csv")["val_loss"][:2]  # doctest: +SKIP
    [0.69, 0.52]
    """
    path = Path(path)
    if not path.is_file():
        return {}
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    columns = {}
    for name in rows[0] if rows else []:
        try:
            columns[name] = [float(row[name]) for row in rows]
        except (TypeError, ValueError):
            continue  # a column that is not numeric
    return columns


def resume_state(history_csv, initial_epoch, monitor=MONITOR):
    """Reads the epoch log of an interrupted run and trims it to the finished epochs.

    Rows of epochs at or after `initial_epoch` (run again after resuming) are
    dropped from the file, so it holds each epoch once.

    Args:
        history_csv: Path. Written by `CSVLogger`.
        initial_epoch: int. Epochs the backup has finished.
        monitor: str. The metric model selection maximises.

    Returns:
        `(best, wait)`: the best score over every logged epoch (the best model on
        disk was saved after its row was logged) and the epochs since the best
        finished one; `(None, 0)` with nothing to resume.
    """
    history_csv = Path(history_csv)
    if initial_epoch == 0 or not history_csv.is_file():
        return None, 0
    with history_csv.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    scores = [float(row[monitor]) for row in rows if row.get(monitor)]
    kept = [row for row in rows if int(row["epoch"]) < initial_epoch]
    if rows:
        text = _csv_text(list(rows[0]), kept)
        write_text_atomically(history_csv, text)
    kept_scores = [float(row[monitor]) for row in kept if row.get(monitor)]
    if not kept_scores:
        return (max(scores) if scores else None), 0
    best_epoch = max(range(len(kept_scores)), key=kept_scores.__getitem__)
    return max(scores), len(kept_scores) - 1 - best_epoch


def training_callbacks(run_dir, patience, model_file, tensorboard=True, baseline=None):
    """Best-model checkpoint, early stopping, epoch log, TensorBoard and backup for a run.

    When `run_dir/backup` holds an interrupted run, the checkpoint and early
    stopping start from its state and the epoch log is trimmed to its
    finished epochs; `fit` then resumes after the last backed-up epoch.

    Args:
        run_dir: Path. The run directory.
        patience: int. Early-stopping patience in epochs.
        model_file: str. The best model's file name inside `run_dir`.
        tensorboard: bool. Write TensorBoard logs to `run_dir/logs`.
        baseline: float, callable or None. Early stopping's baseline
            (`ResumableEarlyStopping`).

    Returns:
        `(callbacks, initial_epoch)`.
    """
    run_dir = Path(run_dir)
    initial_epoch = AtomicBackupAndRestore.saved_epoch(run_dir / BACKUP_DIR)
    best, wait = resume_state(run_dir / HISTORY_FILE, initial_epoch)
    # Order matters when a kill lands between them: the epoch's row is logged
    # before its model is saved, and both before the backup says it is done.
    callbacks = [
        keras.callbacks.CSVLogger(run_dir / HISTORY_FILE, append=initial_epoch > 0),
        AtomicModelCheckpoint(run_dir / model_file, initial_value_threshold=best),
        ResumableEarlyStopping(
            patience, best=best, wait=wait, baseline=baseline, epochs_done=initial_epoch
        ),
    ]
    if tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(run_dir / "logs", profile_batch=0))
    callbacks.append(AtomicBackupAndRestore(run_dir / BACKUP_DIR))
    return callbacks, initial_epoch


def _csv_text(fieldnames, rows):
    lines = [",".join(fieldnames)]
    lines += [",".join(row[name] for name in fieldnames) for row in rows]
    return "\n".join(lines) + "\n"


def save_model_atomically(model, path):
    """`model.save(path)` through a temporary `.keras` file beside it and a rename.

    A kill (or an error) while saving leaves the previous file whole, never half
    of the new one; `export` and a resumed run read only complete files.

    Example:
    >>> save_model_atomically(model, run / "model.keras")  # doctest: +SKIP
    """
    path = Path(path)
    temporary = path.with_name(f".saving-{path.name}")
    try:
        model.save(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
