"""`train()` and `evaluate()`: manifest in, run directory with model and metrics out."""

import dataclasses
import json
import time
from pathlib import Path

import keras
import numpy as np

from multimodal_tf.config import RunConfig, save_config
from multimodal_tf.data.balance import class_weights
from multimodal_tf.data.dataset import make_dataset
from multimodal_tf.data.source import TrainingData
from multimodal_tf.data.validate import validate_manifest
from multimodal_tf.errors import DataError
from multimodal_tf.models.classifier import MultimodalClassifier
from multimodal_tf.models.preprocessor import MultimodalPreprocessor
from multimodal_tf.training.metrics import classification_metrics, plot_confusion_matrix

MODEL_FILE = "model.keras"
METRICS_FILE = "metrics.json"


@dataclasses.dataclass
class TrainResult:
    """What `train()` produced.

    Args:
        run_dir: Path. Holds `config.yaml`, `model.keras`, `metrics.json`,
            `history.csv` and `confusion_matrix.png`.
        model: `MultimodalClassifier`. The best model (by validation macro-F1).
        metrics: dict. `{"val": {...}, "test": {...}}` as in `metrics.json`.
    """

    run_dir: Path
    model: MultimodalClassifier
    metrics: dict


def train(manifest, config=None, output_dir="runs/latest", verbose=1):
    """Trains on the `train` split, selects on `val`, reports `val` and `test`.

    The vocabulary comes from training texts only and the test split is read
    once, after model selection, so the test figures are held-out figures.

    Args:
        manifest: str or Path. A CSV or JSONL manifest (see `read_manifest`).
        config: `RunConfig` or None. `None` means the defaults.
        output_dir: str or Path. The run directory (created).
        verbose: int. Keras `fit` verbosity.

    Returns:
        A `TrainResult`.

    Example:
    >>> result = train("data/demo/manifest.csv", output_dir="runs/demo")  # doctest: +SKIP
    >>> result.metrics["test"]["accuracy"]  # doctest: +SKIP
    0.99
    """
    config = config or RunConfig()
    data, training = config.data, config.training
    run_dir = Path(output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, run_dir / "config.yaml")

    source = TrainingData.load(manifest, data, run_dir, verbose=verbose)
    class_names = source.class_names
    keras.utils.set_random_seed(training.seed)
    preprocessor = MultimodalPreprocessor(
        sequence_length=data.sequence_length,
        image_size=data.image_size,
        max_vocabulary_size=data.max_vocabulary_size,
        min_frequency=data.min_frequency,
    )
    preprocessor.adapt(source.train_texts())
    model = build_model(config.model, class_names, preprocessor)
    model.compile(learning_rate=training.learning_rate, weight_decay=training.weight_decay)

    weights = None
    if training.class_weight == "balanced" and not training.oversample:
        weights = class_weights(source.train_labels(), class_names)

    def dataset(split, shuffle=False):
        return source.dataset(
            split,
            preprocessor,
            class_names,
            data.batch_size,
            shuffle,
            training.seed,
            oversampled=shuffle and training.oversample,
        )

    callbacks = [
        keras.callbacks.ModelCheckpoint(
            run_dir / MODEL_FILE, monitor="val_macro_f1", mode="max", save_best_only=True
        ),
        keras.callbacks.EarlyStopping(
            monitor="val_macro_f1", mode="max", patience=training.early_stopping_patience
        ),
        keras.callbacks.CSVLogger(run_dir / "history.csv"),
    ]
    started = time.perf_counter()
    model.fit(
        dataset("train", shuffle=True),
        validation_data=dataset("val"),
        class_weight=weights,
        epochs=training.epochs,
        callbacks=callbacks,
        verbose=verbose,
        shuffle=False,  # the dataset reshuffles itself every epoch
    )
    train_seconds = time.perf_counter() - started
    model = keras.saving.load_model(run_dir / MODEL_FILE)

    metrics = {
        "train_seconds": train_seconds,
        "num_train": len(source.train_labels()),
        "class_weight": weights,
        "data": source.summary,
    }
    for name in ("val", "test"):
        if source.has_split(name):
            metrics[name] = evaluate_dataset(model, dataset(name))
    (run_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")
    report = metrics.get("test") or metrics["val"]
    plot_confusion_matrix(
        report,
        run_dir / "confusion_matrix.png",
        title=f"{'test' if 'test' in metrics else 'val'} split",
    )
    return TrainResult(run_dir, model, metrics)


def build_model(model_config, class_names, preprocessor):
    """A `MultimodalClassifier` from the run config's `model` section.

    Args:
        model_config: `ModelConfig`. Its fields are the constructor's arguments
            (empty strings for "no file" become `None`).
        class_names: list of str. Label names in output order.
        preprocessor: `MultimodalPreprocessor`. Adapted on the training texts.
    """
    kwargs = dataclasses.asdict(model_config)
    for key in ("image_weights", "text_embeddings"):
        kwargs[key] = kwargs[key] or None
    return MultimodalClassifier(class_names, preprocessor, **kwargs)


def evaluate_dataset(model, dataset):
    """Metrics of `model` on a labelled dataset of `(features, one_hot)` batches.

    True labels are read from the same batches the model sees, so the metrics
    cannot be misaligned with the predictions.

    Args:
        model: `MultimodalClassifier`.
        dataset: `tf.data.Dataset`. As `make_dataset` builds it (no shuffling needed).
    """
    y_true, y_pred = [], []
    for features, labels in dataset:
        y_pred.append(model.predict_on_batch(features).argmax(axis=-1))
        y_true.append(labels.numpy().argmax(axis=-1))
    return classification_metrics(np.concatenate(y_true), np.concatenate(y_pred), model.class_names)


def evaluate_records(model, records, batch_size=32):
    """Metrics of `model` on labelled records (see `classification_metrics`)."""
    dataset = make_dataset(records, model.preprocessor, model.class_names, batch_size)
    return evaluate_dataset(model, dataset)


def resolve_model_file(path):
    """`RUN/model.keras` for a run folder, the path itself for a file; `DataError` if absent."""
    path = Path(path)
    model_file = path / MODEL_FILE if path.is_dir() else path
    if not model_file.is_file():
        raise DataError(f"No trained model at {model_file}.")
    return model_file


def evaluate(model_path, manifest, split="test", batch_size=32):
    """Evaluates a saved `.keras` model on one split of a labelled dataset.

    The dataset goes through `validate_manifest` first, with the model's class
    names, so any row it cannot score is reported by row and field.

    Args:
        model_path: str or Path. A `model.keras` file or a run directory.
        manifest: str or Path. Anything `train` accepts (not a prepared folder).
        split: str. `train`, `val`, `test` or `all`.
        batch_size: int. Samples per batch.

    Returns:
        The metrics dict (see `classification_metrics`).
    """
    model = keras.saving.load_model(resolve_model_file(model_path))
    report = validate_manifest(manifest, class_names=model.class_names)
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
