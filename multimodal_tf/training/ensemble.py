"""`training.ensemble`: several seeds of one run config, averaged into one model."""

from pathlib import Path

import keras

from multimodal_tf.models.ensemble import MultimodalEnsemble
from multimodal_tf.training.callbacks import BACKUP_DIR, save_model_atomically

MEMBERS_DIR = "members"


def member_dir(run_dir, index):
    """`RUN/members/<index>`: the run folder of one ensemble member."""
    return Path(run_dir) / MEMBERS_DIR / str(index)


def fit_ensemble(fit_member, run_dir, training, resuming, model_file="model.keras", verbose=1):
    """Trains `training.ensemble` members with seeds `seed`, `seed + 1`, ... and averages them.

    Each member is a whole run of the same config with its own seed (initial
    weights, dropout masks, shuffle order), model selection and early
    stopping, written to `RUN/members/<index>/` (its `model.keras`,
    `history.csv` and logs). The ensemble is saved as `RUN/model.keras`: a
    `MultimodalEnsemble` that exports as one SavedModel. A resumed run keeps
    the members that had finished and resumes the interrupted one.

    Args:
        fit_member: callable `(member_dir, seed) -> initial_epoch`. Trains one
            member into `member_dir`, resuming from its backup if there is one.
        run_dir: Path. The run folder.
        training: `TrainingConfig`. Its `ensemble` and `seed`.
        resuming: bool. Whether the run is resuming an interrupted one.
        model_file: str. The model's file name in each run folder.
        verbose: int. Prints one line per member when positive.

    Returns:
        `(initial_epoch, MultimodalEnsemble)`; `initial_epoch` is the epoch the
        resumed member restarted from (0 for a fresh run).

    Example:
    >>> config.training.ensemble = 3  # doctest: +SKIP
    >>> train("manifest.csv", config, "runs/ensemble").model.members  # doctest: +SKIP
    """
    members, resumed = [], 0
    for index in range(training.ensemble):
        folder = member_dir(run_dir, index)
        folder.mkdir(parents=True, exist_ok=True)
        seed = training.seed + index
        if resuming and (folder / model_file).is_file() and not (folder / BACKUP_DIR).is_dir():
            print(f"Ensemble member {index} had finished: keeping {folder / model_file}.")
        else:
            if verbose:
                print(f"Ensemble member {index + 1} of {training.ensemble} (seed {seed}): {folder}")
            resumed = max(resumed, fit_member(folder, seed))
        members.append(keras.saving.load_model(folder / model_file))
    ensemble = MultimodalEnsemble(members, name="ensemble")
    # Compiled so `evaluate` works on it; the members' weights stay as they were selected.
    ensemble.compile(label_smoothing=training.label_smoothing)
    save_model_atomically(ensemble, Path(run_dir) / model_file)
    return resumed, ensemble


__all__ = ["MEMBERS_DIR", "fit_ensemble", "member_dir"]
