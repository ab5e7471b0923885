"""`evaluate()`: a saved model's metrics on one split of a labelled dataset."""

from pathlib import Path

import keras
import numpy as np

from multimodal_tf.config import load_config
from multimodal_tf.data.dataset import make_dataset
from multimodal_tf.data.validate import validate_manifest
from multimodal_tf.errors import DataError
from multimodal_tf.models.task import DEFAULT_HEAD
from multimodal_tf.training.metrics import (
    bootstrap_intervals,
    classification_metrics,
    multilabel_metrics,
)

MODEL_FILE = "model.keras"
METRICS_FILE = "metrics.json"


def evaluate_dataset(model, dataset):
    """Metrics of `model` on a labelled dataset of `(features, one-hot or multi-hot)` batches.

    True labels are read from the same batches the model sees, so the metrics
    cannot be misaligned with the predictions. A multi-label model's batches
    carry multi-hot labels; a class is predicted when its probability is at
    or above the head's threshold, and the result is `multilabel_metrics`.
    `intervals` holds 95% bootstrap intervals of accuracy, macro-F1 and
    weighted-F1 over the rows (`bootstrap_intervals`): how far the figures
    could move on another sample of the same size.

    Args:
        model: `MultimodalClassifier`.
        dataset: `tf.data.Dataset`. As `make_dataset` builds it (no shuffling needed).
    """
    return evaluate_predictions(model, *predict_dataset(model, dataset))


def evaluate_predictions(model, probabilities, targets):
    """`evaluate_dataset`'s metrics from predictions already made.

    Args:
        model: `MultimodalClassifier` or `MultimodalEnsemble`. Its class names
            and (multi-label) its head's thresholds.
        probabilities: float array `[rows, classes]`.
        targets: float array `[rows, classes]`. One-hot (multi-hot) true labels.

    Example:
    >>> probabilities, targets = predict_dataset(model, test_batches)  # doctest: +SKIP
    >>> evaluate_predictions(model, probabilities, targets)["macro_f1"]  # doctest: +SKIP
    0.71
    """
    multi_label = model.is_multi_label()
    if multi_label:
        thresholds = keras.ops.convert_to_numpy(model.get_layer(DEFAULT_HEAD).thresholds)
        y_true, y_pred = targets, probabilities >= thresholds
    else:
        y_true, y_pred = targets.argmax(axis=-1), probabilities.argmax(axis=-1)
    score = multilabel_metrics if multi_label else classification_metrics
    metrics = score(y_true, y_pred, model.class_names)
    metrics["intervals"] = bootstrap_intervals(
        y_true, y_pred, model.class_names, multi_label=multi_label
    )
    return metrics


def evaluate_records(model, records, batch_size=32):
    """Metrics of `model` on labelled records (see `evaluate_dataset`)."""
    return evaluate_dataset(model, _labelled_batches(model, records, batch_size))


def predict_dataset(model, dataset):
    """Probabilities and the batches' own one-hot (multi-hot) targets, in dataset order.

    Args:
        model: `MultimodalClassifier` or `MultimodalEnsemble`.
        dataset: `tf.data.Dataset` of `(features, targets)` batches.

    Returns:
        `(probabilities, targets)`: float arrays `[rows, classes]`.
    """
    probabilities, targets = [], []
    for features, labels in dataset:
        probabilities.append(np.asarray(model.predict_on_batch(features)))
        targets.append(labels.numpy())
    return np.concatenate(probabilities), np.concatenate(targets)


def predict_records(model, records, batch_size=32):
    """Probabilities and one-hot (multi-hot) targets of labelled records, in record order.

    Args:
        model: `MultimodalClassifier` or `MultimodalEnsemble`.
        records: list of `Record`.
        batch_size: int. Samples per batch.

    Returns:
        `(probabilities, targets)`: float arrays `[records, classes]`.

    Example:
    >>> probabilities, targets = predict_records(model, test_records)  # doctest: +SKIP
    """
    return predict_dataset(model, _labelled_batches(model, records, batch_size))


def _labelled_batches(model, records, batch_size):
    return make_dataset(
        records,
        model.preprocessor,
        model.class_names,
        batch_size,
        multi_label=model.is_multi_label(),
    )


def resolve_model_file(path):
    """`RUN/model.keras` for a run folder, the path itself for a file; `DataError` if absent."""
    path = Path(path)
    model_file = path / MODEL_FILE if path.is_dir() else path
    if not model_file.is_file():
        raise DataError(f"No trained model at {model_file}.")
    return model_file


def load_model_file(path):
    """Loads `RUN/model.keras` (or a `.keras` file) with Keras, or fails with a `DataError`.

    Keras raises what the file's reader raises (`BadZipFile` for a truncated
    file, `ValueError` for one that safe mode refuses, ...); this names the
    file and says what to do, so the command line prints one `error:` line.

    Args:
        path: str or Path. A run folder or a `.keras` file.

    Returns:
        The loaded model (safe mode on).

    Example:
    >>> model = load_model_file("runs/demo")  # doctest: +SKIP
    """
    model_file = resolve_model_file(path)
    try:
        return keras.saving.load_model(model_file)
    except Exception as error:  # noqa: BLE001  (whatever the reader raised is reported)
        reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
        reason = f"{type(error).__name__}: {reason}"[:300]
        if "safe_mode" in str(error):
            hint = (
                "Keras safe mode refused it: it holds code (a Lambda layer or a function) "
                "that loading would run. Load it with keras.saving.load_model(path, "
                "safe_mode=False) only if you trust where it came from."
            )
        else:
            hint = (
                "It is not a complete .keras file that this version of the package and "
                "Keras can read (truncated, another format, or written by other code)."
            )
        raise DataError(f"{model_file} cannot be loaded: {hint} ({reason})") from error


def evaluate(model_path, manifest, split="test", batch_size=32, allow_missing=None):
    """Evaluates a saved `.keras` model on one split of a labelled dataset.

    The dataset goes through `validate_manifest` first, with the model's class
    names, so any row it cannot score is reported by row and field. For a
    multi-label model, label cells are read as `|`-separated sets and the
    head's saved thresholds decide the predictions.

    Args:
        model_path: str or Path. A `model.keras` file or a run directory.
        manifest: str or Path. Anything `train` accepts (not a prepared folder).
        split: str. `train`, `val`, `test` or `all`.
        batch_size: int. Samples per batch.
        allow_missing: bool or None. Accept rows with an empty text or image;
            `None` follows `data.allow_missing_modalities` in the run's
            `config.yaml` (false without one).

    Returns:
        The metrics dict (see `classification_metrics`, `multilabel_metrics`).
    """
    model_file = resolve_model_file(model_path)
    model = load_model_file(model_file)
    if allow_missing is None:
        run_config = model_file.parent / "config.yaml"
        allow_missing = run_config.is_file() and (
            load_config(run_config).data.allow_missing_modalities
        )
    report = validate_manifest(
        manifest,
        class_names=model.class_names,
        multi_label=model.is_multi_label(),
        allow_missing=allow_missing,
    )
    report.raise_for_errors()
    records = report.records
    if split != "all":
        if any(record.split is None for record in records):
            raise DataError(
                f"{manifest} has no 'split' column; pass split='all' to evaluate every row."
            )
        records = [record for record in records if record.split == split]
        if not records:
            raise DataError(f"{manifest} has no rows in split {split!r}.")
    return evaluate_records(model, records, batch_size)
