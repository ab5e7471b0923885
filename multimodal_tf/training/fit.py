"""`train()` and `evaluate()`: manifest in, run directory with model and metrics out."""

import dataclasses
import json
import math
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from multimodal_tf.config import RunConfig, load_config, save_config
from multimodal_tf.data.balance import class_weights
from multimodal_tf.data.dataset import make_dataset
from multimodal_tf.data.source import TrainingData
from multimodal_tf.data.validate import validate_manifest
from multimodal_tf.errors import ConfigError, DataError
from multimodal_tf.models.classifier import DEFAULT_HEAD, MultimodalClassifier
from multimodal_tf.models.preprocessor import MultimodalPreprocessor
from multimodal_tf.models.text_encoder import text_features_for
from multimodal_tf.training.callbacks import BACKUP_DIR, training_callbacks
from multimodal_tf.training.distribute import every_worker_sees_all, make_strategy, shard_by_data
from multimodal_tf.training.metrics import (
    classification_metrics,
    multilabel_metrics,
    plot_confusion_matrix,
)
from multimodal_tf.training.provenance import data_fingerprint, read_run_record, write_run_record
from multimodal_tf.training.report import write_report
from multimodal_tf.training.thresholds import tune_thresholds

MODEL_FILE = "model.keras"
METRICS_FILE = "metrics.json"


@dataclasses.dataclass
class TrainResult:
    """What `train()` produced.

    Args:
        run_dir: Path. Holds `config.yaml`, `run.json`, `model.keras`,
            `metrics.json`, `history.csv`, TensorBoard `logs/` and (single-label)
            `confusion_matrix.png`.
        model: `MultimodalClassifier`. The best model (by validation macro-F1).
        metrics: dict. `{"val": {...}, "test": {...}}` as in `metrics.json`, plus
            `train_seconds` (kept in `run.json`, so reruns give the same file).
    """

    run_dir: Path
    model: MultimodalClassifier
    metrics: dict


def train(manifest, config=None, output_dir="runs/latest", verbose=1):
    """Trains on the `train` split, selects on `val`, reports `val` and `test`.

    The vocabulary comes from training texts only and the test split is read
    once, after model selection, so the test figures are held-out figures.

    With `data.multi_label`, a label cell holds `|`-separated labels: the
    model gets a sigmoid head, and after selection its per-class thresholds
    are tuned on `val` (`tune_thresholds`) and saved with it in `model.keras`;
    `metrics.json` then holds `thresholds` and `multilabel_metrics` results.

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
    if data.multi_label and training.oversample:
        raise ConfigError(
            "training.oversample repeats rows of the smaller classes, which a row with "
            "several labels does not belong to; set it to false with data.multi_label: true."
        )
    # MultiWorkerMirroredStrategy must exist before TensorFlow runs any op.
    strategy = make_strategy(training.strategy)
    run_dir = Path(output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    resuming = (run_dir / BACKUP_DIR).is_dir()
    if resuming:
        _check_same_config(run_dir, config)
    save_config(config, run_dir / "config.yaml")
    if training.deterministic:
        tf.config.experimental.enable_op_determinism()

    source = TrainingData.load(manifest, data, run_dir, verbose=verbose)
    fingerprint = data_fingerprint(manifest, source)
    if resuming:
        _check_same_data(run_dir, fingerprint)
    write_run_record(run_dir, data=fingerprint, seed=training.seed)
    class_names = source.class_names
    keras.utils.set_random_seed(training.seed)
    preprocessor = adapted_preprocessor(config, source.train_texts())
    # `data.batch_size` is per replica: every replica sees that many rows per step.
    batch_size = data.batch_size * strategy.num_replicas_in_sync
    steps = math.ceil(len(source.train_labels()) / batch_size) * training.epochs
    with strategy.scope():
        model = build_model(config.model, class_names, preprocessor, multi_label=data.multi_label)
        model.compile(
            learning_rate=learning_rate(training, steps),
            weight_decay=training.weight_decay,
            label_smoothing=training.label_smoothing,
        )

    weights = run_class_weights(config, source.train_labels(), class_names)

    def dataset(split, shuffle=False, size=data.batch_size):
        return source.dataset(
            split,
            preprocessor,
            class_names,
            size,
            shuffle,
            training.seed,
            oversampled=shuffle and training.oversample,
        )

    callbacks, initial_epoch = training_callbacks(
        run_dir, training.early_stopping_patience, MODEL_FILE, tensorboard=training.tensorboard
    )
    if initial_epoch:
        print(
            f"Resuming from {run_dir / BACKUP_DIR}: {initial_epoch} of {training.epochs} "
            "epochs were done."
        )
    distributed = training.strategy == "multi_worker"
    train_batches = dataset("train", shuffle=True, size=batch_size)
    val_batches = dataset("val", size=batch_size)
    if distributed:
        train_batches, val_batches = (
            shard_by_data(train_batches),
            every_worker_sees_all(val_batches),
        )
    started = time.perf_counter()
    model.fit(
        train_batches,
        validation_data=val_batches,
        class_weight=weights,
        epochs=training.epochs,
        callbacks=callbacks,
        verbose=verbose,
        shuffle=False,  # the dataset reshuffles itself every epoch
    )
    train_seconds = time.perf_counter() - started
    model = keras.saving.load_model(run_dir / MODEL_FILE)

    metrics = {
        "num_train": len(source.train_labels()),
        "class_weight": weights,
        "data": source.summary,
    }
    if data.multi_label:
        # Chosen on val only; saved in the head, so model.keras and exports carry them.
        chosen = tune_thresholds(model, dataset("val"))[DEFAULT_HEAD]
        model.save(run_dir / MODEL_FILE)
        chosen = [round(float(threshold), 6) for threshold in chosen]  # 0.45, not 0.4499999881
        metrics["thresholds"] = dict(zip(class_names, chosen, strict=True))
    for name in ("val", "test"):
        if source.has_split(name):
            metrics[name] = evaluate_dataset(model, dataset(name))
    (run_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")
    write_run_record(
        run_dir,
        train_seconds=train_seconds,
        resumed_from_epoch=initial_epoch,
        replicas=strategy.num_replicas_in_sync,
    )
    metrics["train_seconds"] = train_seconds
    if training.report:
        _write_report(run_dir, model, source, data.batch_size)
    if not data.multi_label:  # a confusion matrix needs one class per row
        report = metrics.get("test") or metrics["val"]
        plot_confusion_matrix(
            report,
            run_dir / "confusion_matrix.png",
            title=f"{'test' if 'test' in metrics else 'val'} split",
        )
    return TrainResult(run_dir, model, metrics)


def adapted_preprocessor(config, train_texts):
    """The run config's `MultimodalPreprocessor`, adapted on the training texts only.

    Args:
        config: `RunConfig`. Its `data` section and `model.text_encoder` (which
            decides word or n-gram features).
        train_texts: list of str.
    """
    data = config.data
    preprocessor = MultimodalPreprocessor(
        sequence_length=data.sequence_length or None,
        image_size=data.image_size,
        max_vocabulary_size=data.max_vocabulary_size,
        min_frequency=data.min_frequency,
        text_features=text_features_for(config.model.text_encoder),
    )
    preprocessor.adapt(train_texts, spacy_norms=data.spacy_norms)
    return preprocessor


def run_class_weights(config, train_labels, class_names):
    """Keras `class_weight` for `training.class_weight`, or None (none, oversample, multi-label).

    Args:
        config: `RunConfig`.
        train_labels: list of str. The training split's label cells.
        class_names: list of str.
    """
    training = config.training
    if training.class_weight == "none" or training.oversample:
        return None
    if config.data.multi_label:
        print(
            f"training.class_weight: {training.class_weight} does not apply with "
            "data.multi_label (Keras class_weight weights one class per row, not "
            "multi-hot targets); training without class weights."
        )
        return None
    power = 0.5 if training.class_weight == "sqrt" else 1.0
    return class_weights(train_labels, class_names, power=power)


def _write_report(run_dir, model, source, batch_size):
    if source.splits is None:
        print(
            "No report: a prepared TFRecord folder keeps no image files to show; "
            "`multimodal-tf report --run RUN --manifest MANIFEST` makes one from the manifest."
        )
        return
    split = "test" if source.has_split("test") else "val"
    write_report(run_dir, model, source.splits[split], split=split, batch_size=batch_size)


def _check_same_config(run_dir, config):
    """A backup is resumed only by the run that wrote it: same config, same data."""
    saved = run_dir / "config.yaml"
    if saved.is_file() and load_config(saved).to_dict() != config.to_dict():
        raise ConfigError(
            f"{run_dir} holds an interrupted run ({run_dir / BACKUP_DIR}) with a different "
            f"config ({saved}). Run the same config to resume it, or delete "
            f"{run_dir / BACKUP_DIR} (or pick another output folder) to start over."
        )


def _check_same_data(run_dir, fingerprint):
    saved = read_run_record(run_dir).get("data")
    if saved is not None and _without_source(saved) != _without_source(fingerprint):
        raise ConfigError(
            f"{run_dir} holds an interrupted run ({run_dir / BACKUP_DIR}) trained on other "
            f"data: run.json has {saved}, this run reads {fingerprint}. Resume it with the "
            f"same data, or delete {run_dir / BACKUP_DIR} to start over."
        )


def _without_source(fingerprint):  # the same file named by another path is the same data
    return {key: value for key, value in fingerprint.items() if key != "source"}


def learning_rate(training, total_steps):
    """`training.learning_rate`, constant or as a cosine decay with a linear warm-up.

    The cosine schedule warms up linearly over the first 5% of `total_steps`
    (AdamW's first steps are noisy) and decays to 1% of the peak at the last
    planned step; early stopping may end training before that.
    """
    if training.lr_schedule == "constant":
        return training.learning_rate
    warmup = max(1, int(0.05 * total_steps))
    return keras.optimizers.schedules.CosineDecay(
        0.0,
        decay_steps=max(1, total_steps - warmup),
        alpha=0.01,
        warmup_target=training.learning_rate,
        warmup_steps=warmup,
    )


def build_model(model_config, class_names, preprocessor, multi_label=False):
    """A `MultimodalClassifier` from the run config's `model` section.

    Args:
        model_config: `ModelConfig`. Its fields are the constructor's arguments
            (empty strings for "no file" become `None`).
        class_names: list of str. Label names in output order.
        preprocessor: `MultimodalPreprocessor`. Adapted on the training texts.
        multi_label: bool. A sigmoid head with per-class thresholds (`data.multi_label`).
    """
    kwargs = dataclasses.asdict(model_config)
    for key in ("image_weights", "text_embeddings"):
        kwargs[key] = kwargs[key] or None
    return MultimodalClassifier(class_names, preprocessor, multi_label=multi_label, **kwargs)


def evaluate_dataset(model, dataset):
    """Metrics of `model` on a labelled dataset of `(features, one-hot or multi-hot)` batches.

    True labels are read from the same batches the model sees, so the metrics
    cannot be misaligned with the predictions. A multi-label model's batches
    carry multi-hot labels; a class is predicted when its probability is at
    or above the head's threshold, and the result is `multilabel_metrics`.

    Args:
        model: `MultimodalClassifier`.
        dataset: `tf.data.Dataset`. As `make_dataset` builds it (no shuffling needed).
    """
    multi_label = model.is_multi_label()
    if multi_label:
        thresholds = keras.ops.convert_to_numpy(model.get_layer(DEFAULT_HEAD).thresholds)
    y_true, y_pred = [], []
    for features, labels in dataset:
        probabilities = model.predict_on_batch(features)
        if multi_label:
            y_pred.append(probabilities >= thresholds)
            y_true.append(labels.numpy())
        else:
            y_pred.append(probabilities.argmax(axis=-1))
            y_true.append(labels.numpy().argmax(axis=-1))
    score = multilabel_metrics if multi_label else classification_metrics
    return score(np.concatenate(y_true), np.concatenate(y_pred), model.class_names)


def evaluate_records(model, records, batch_size=32):
    """Metrics of `model` on labelled records (see `evaluate_dataset`)."""
    dataset = make_dataset(
        records,
        model.preprocessor,
        model.class_names,
        batch_size,
        multi_label=model.is_multi_label(),
    )
    return evaluate_dataset(model, dataset)


def resolve_model_file(path):
    """`RUN/model.keras` for a run folder, the path itself for a file; `DataError` if absent."""
    path = Path(path)
    model_file = path / MODEL_FILE if path.is_dir() else path
    if not model_file.is_file():
        raise DataError(f"No trained model at {model_file}.")
    return model_file


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
    model = keras.saving.load_model(model_file)
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
