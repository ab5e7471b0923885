"""`training.drop_deep_if_worse`: after both stages, keep the deep path only if val says so.

The first stage trains the wide (linear) path alone and logs its epochs in
`wide_history.csv`; the second trains the rest of the model around it and
logs `history.csv`. When the second stage's best validation score is below
the first's, the heads' own weights are zeroed and the saved model is the
linear path alone (docs/design.md, "The training stages"). `train()` applies the
verdict to each run or ensemble member; `tune()` scores a trial by it.
"""

from pathlib import Path

import keras

from multimodal_tf.models.wide_model import silence_deep_path
from multimodal_tf.training.callbacks import (
    HISTORY_FILE,
    MONITOR,
    read_history,
    save_model_atomically,
)
from multimodal_tf.training.wide_first import WIDE_HISTORY_FILE


def keep_deep_path_if_better(model_file, folder, verbose=0, monitor=MONITOR):
    """After both stages: drops the rest of the model if it did worse on val than the wide path.

    Compares the best `monitor` value of the first stage (`wide_history.csv`)
    with the second's (`history.csv`), both on the validation split. If the
    second is lower, the heads' own kernels and biases in `model_file`
    are set to zero, so the deep path adds nothing to the logits and the
    saved model predicts exactly as the wide path alone did at its best
    epoch; the run says so. A linear model that val prefers is kept instead
    of a bigger one that val does not.

    Args:
        model_file: Path. The saved best model of the second stage; rewritten
            when the deep path is dropped.
        folder: Path. The run (or ensemble member) folder holding both logs.
        verbose: int. > 0 prints the comparison either way.
        monitor: str. The validation metric both stages selected on.

    Returns:
        dict with `wide` and `deep` (the two best values) and `kept` (bool),
        or None when a log or its `monitor` column is missing (e.g. a
        multi-head model, whose metrics are per head).

    Example:
    >>> keep_deep_path_if_better(run / "model.keras", run)  # doctest: +SKIP
    {'wide': 0.614, 'deep': 0.608, 'kept': False}
    """
    folder = Path(folder)
    wide = first_stage_best(folder, monitor)
    deep = _best(folder / HISTORY_FILE, monitor)
    if wide is None or deep is None:
        return None
    kept = deep_path_kept(wide, deep)
    if not kept:
        model = keras.saving.load_model(model_file)
        silence_deep_path(model)
        save_model_atomically(model, model_file)
    if verbose or not kept:
        print(
            f"Best val {monitor.removeprefix('val_')}: wide path alone {wide:.4f}, with the "
            f"rest of the model {deep:.4f}. "
            + (
                "Keeping the whole model."
                if kept
                else "The rest of the model did worse than the wide path, so its logits are "
                "set to zero: the saved model is the wide path alone "
                "(training.drop_deep_if_worse)."
            )
        )
    return {"wide": round(wide, 6), "deep": round(deep, 6), "kept": kept}


def judges_deep_path(model, training):
    """Whether `training.drop_deep_if_worse` judges this model's deep path after both stages.

    It does when asked to, with a wide path trained first (`training.wide_epochs`)
    that reads every modality the model reads; `train()` and `tune()` both ask
    here. When only the modality stops it, the run says so.

    Args:
        model: `MultimodalClassifier`.
        training: `TrainingConfig`.
    """
    if not (training.drop_deep_if_worse and model.wide and training.wide_epochs):
        return False
    if not wide_path_reads_every_modality(model):
        print(
            "The wide path reads only the text, so the rest of the model, which reads "
            "the image, is kept whatever val says (training.drop_deep_if_worse never "
            "drops a modality)."
        )
        return False
    return True


def wide_path_reads_every_modality(model):
    """Whether dropping the deep path keeps every modality the model reads.

    `drop_deep_if_worse` applies only when this holds: the wide path reads
    the text, and the image only with `wide_image` (a pretrained backbone's
    pooled features), so a model whose wide path has no image keeps its deep
    path whatever val says, rather than silently becoming a text model.

    Example:
    >>> wide_path_reads_every_modality(model)  # doctest: +SKIP
    True
    """
    return set(model.modalities) <= set(prediction_parts(model, deep_kept=False).get("wide", ()))


def prediction_parts(model, deep_kept=True):
    """The parts of `model` whose logits make its predictions, and the modalities each reads.

    Args:
        model: `MultimodalClassifier` (an ensemble: its first member).
        deep_kept: bool. False once `drop_deep_if_worse` zeroed the deep path.

    Returns:
        dict: `"wide"` (the linear path: text n-grams, and the backbone's
        pooled image features with `wide_image`) and `"deep"` (encoders, fusion
        and heads), each present only if it makes predictions, mapped to the
        modalities it reads.

    Example:
    >>> prediction_parts(model, deep_kept=False)  # doctest: +SKIP
    {'wide': ['text', 'image']}
    """
    model = getattr(model, "members", [model])[0]
    parts = {}
    if getattr(model, "wide", False):
        parts["wide"] = ["text"] + (["image"] if model.wide_image else [])
    if deep_kept:
        parts["deep"] = list(model.modalities)
    return parts


def describe_prediction_parts(parts):
    """One sentence for a run's output: which parts predict, and what each reads."""
    names = {"wide": "the wide (linear) path", "deep": "the deep path (encoders and fusion)"}
    described = [f"{names[part]}, reading {' and '.join(read)}" for part, read in parts.items()]
    return "Predictions come from " + "; ".join(described) + "."


def first_stage_best(folder, monitor=MONITOR):
    """The first stage's best `monitor` value in a run (or member) folder; None if not logged.

    Example:
    >>> first_stage_best(run)  # doctest: +SKIP
    0.614
    """
    return _best(Path(folder) / WIDE_HISTORY_FILE, monitor)


def deep_path_kept(wide, deep):
    """`drop_deep_if_worse`'s rule, for `train()` and `tune()` alike: keep unless deep < wide.

    Both are a stage's best validation score; a tie keeps the model the user asked for.
    """
    return deep >= wide


def _best(history_csv, monitor):
    return max(read_history(history_csv).get(monitor, []), default=None)
