"""What a run folder already holds, and what `train()` may do with it.

A backup (`RUN/backup/`) is resumed only by the run that wrote it: the same config
and the same data. A finished run (`metrics.json`) is never replaced unless asked
(`overwrite`), and a run killed between the end of its training and the end of its
evaluation resumes at the evaluation (run.json's `trained` record).
"""

import shutil

from multimodal_tf.config import load_config
from multimodal_tf.errors import ConfigError
from multimodal_tf.training.callbacks import BACKUP_DIR
from multimodal_tf.training.evaluate import METRICS_FILE, MODEL_FILE
from multimodal_tf.training.provenance import read_run_record, write_run_record


def check_same_config(run_dir, config):
    """A backup is resumed only by the run that wrote it: same config, same data."""
    if not _same_config(run_dir, config):
        raise ConfigError(
            f"{run_dir} holds an interrupted run ({run_dir / BACKUP_DIR}) with a different "
            f"config ({run_dir / 'config.yaml'}). Run the same config to resume it, or delete "
            f"{run_dir / BACKUP_DIR} (or pick another output folder) to start over."
        )


def check_same_data(run_dir, fingerprint, finished_training=False):
    """The run that `run_dir` holds read this data (run.json's fingerprint), or a `ConfigError`."""
    saved = read_run_record(run_dir).get("data")
    if saved is None or _without_source(saved) == _without_source(fingerprint):
        return
    if finished_training:
        held, ways_out = "a run that finished its training", "pass --overwrite to train again"
    else:
        held = f"an interrupted run ({run_dir / BACKUP_DIR})"
        ways_out = f"delete {run_dir / BACKUP_DIR} to start over"
    raise ConfigError(
        f"{run_dir} holds {held} on other data: run.json has {saved}, this run reads "
        f"{fingerprint}. Resume it with the same data, {ways_out}, or pick another output "
        "folder."
    )


def clear_run(run_dir):
    """Removes what a run left in `run_dir` that a new run would resume or be refused for."""
    for backup in [run_dir / BACKUP_DIR, *run_dir.glob(f"members/*/{BACKUP_DIR}")]:
        shutil.rmtree(backup, ignore_errors=True)
    for path in (run_dir / METRICS_FILE, run_dir / MODEL_FILE):
        path.unlink(missing_ok=True)
    if read_run_record(run_dir).get("trained") is not None:
        write_run_record(run_dir, trained=None)


def trained_record(run_dir, config):
    """What run.json says of a run that finished training in `run_dir`, or None to train.

    For a folder without a backup: a finished run (`metrics.json`) is refused, and
    so is a model that no run of this config finished training; a run killed
    between the end of its training and the end of its evaluation is resumed
    at the evaluation when its config is this one.
    """
    model_file, metrics_file = run_dir / MODEL_FILE, run_dir / METRICS_FILE
    ways_out = "Pass --overwrite (train(..., overwrite=True)) to replace it, or pick another "
    if metrics_file.is_file():
        raise ConfigError(
            f"{run_dir} holds a finished run ({metrics_file.name}, {model_file.name}): "
            f"training into it would replace them. {ways_out}output folder."
        )
    if not model_file.is_file():
        return None
    trained = read_run_record(run_dir).get("trained")
    saved_config = (run_dir / "config.yaml").is_file()
    if trained is not None and saved_config and _same_config(run_dir, config):
        return trained
    state = (
        "a run with another config that finished training"
        if trained is not None
        else "a run that did not finish training"
    )
    raise ConfigError(f"{run_dir} holds {model_file.name} from {state}. {ways_out}output folder.")


def _same_config(run_dir, config):
    """Whether `run_dir/config.yaml` is `config` (true when there is none)."""
    saved = run_dir / "config.yaml"
    return not saved.is_file() or load_config(saved).to_dict() == config.to_dict()


def _without_source(fingerprint):  # the same file named by another path is the same data
    return {key: value for key, value in fingerprint.items() if key != "source"}
