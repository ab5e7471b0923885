"""`train()` and `evaluate()`: manifest in, run directory with model and metrics out."""

import dataclasses
import json
import math
import time
from pathlib import Path

import keras
import tensorflow as tf

from multimodal_tf.config import RunConfig, save_config
from multimodal_tf.data.source import TrainingData
from multimodal_tf.errors import ConfigError
from multimodal_tf.files import write_text_atomically
from multimodal_tf.models.classifier import DEFAULT_HEAD, MultimodalClassifier
from multimodal_tf.training.callbacks import (
    BACKUP_DIR,
    HISTORY_FILE,
    save_model_atomically,
    training_callbacks,
)
from multimodal_tf.training.deep_path import (
    describe_prediction_parts,
    first_stage_best,
    judges_deep_path,
    keep_deep_path_if_better,
    prediction_parts,
)
from multimodal_tf.training.distribute import every_worker_sees_all, make_strategy, shard_by_data
from multimodal_tf.training.ensemble import fit_ensemble, member_dir
from multimodal_tf.training.evaluate import (
    METRICS_FILE,
    MODEL_FILE,
    evaluate_dataset,
    evaluate_predictions,
    load_model_file,
    predict_dataset,
)
from multimodal_tf.training.feature_maps import fit_second_stage
from multimodal_tf.training.metrics import (
    plot_confusion_matrix,
)
from multimodal_tf.training.provenance import data_fingerprint, read_run_record, write_run_record
from multimodal_tf.training.report import write_report
from multimodal_tf.training.run_folder import (
    check_same_config,
    check_same_data,
    clear_run,
    trained_record,
)
from multimodal_tf.training.run_model import (
    adapted_preprocessor,
    compiled_model,
    find_backbone_weights,
    run_class_weights,
)
from multimodal_tf.training.thresholds import tune_thresholds


@dataclasses.dataclass
class TrainResult:
    """What `train()` produced.

    Args:
        run_dir: Path. Holds `config.yaml`, `run.json`, `model.keras`,
            `metrics.json`, `history.csv`, TensorBoard `logs/` and (single-label)
            `confusion_matrix.png`.
        model: `MultimodalClassifier`. The best model (by validation macro-F1);
            with `training.ensemble` > 1, a `MultimodalEnsemble` of the members.
        metrics: dict. `{"val": {...}, "test": {...}}` as in `metrics.json`, plus
            `train_seconds` (kept in `run.json`, so reruns give the same file).
    """

    run_dir: Path
    model: MultimodalClassifier
    metrics: dict


def train(manifest, config=None, output_dir="runs/latest", verbose=1, overwrite=False):
    """Trains on the `train` split, selects on `val`, reports `val` and `test`.

    The vocabulary comes from training texts only and the test split is read
    once, after model selection, so the test figures are held-out figures.

    With `training.ensemble: N` > 1, N members are trained one after another
    with seeds `seed`, ..., `seed + N - 1` (each with its own model selection
    and early stopping, in `RUN/members/<i>/`) on one preprocessor, and
    `model.keras` is their `MultimodalEnsemble`, which averages their
    probabilities (see `training/ensemble.py`). It costs N trainings and N
    models per request.

    With `data.multi_label`, a label cell holds `|`-separated labels: the
    model gets a sigmoid head, and after selection its per-class thresholds
    are tuned on `val` (`tune_thresholds`) and saved with it in `model.keras`;
    `metrics.json` then holds `thresholds` and `multilabel_metrics` results.

    A run folder is never replaced without being asked. A folder that holds a
    finished run (`metrics.json`) is refused unless `overwrite`; one whose run
    was killed during training resumes from its backup (same config and data
    only); one whose run finished training but was killed before its
    evaluation resumes at the evaluation, with the saved model, and says so.

    Args:
        manifest: str or Path. A CSV or JSONL manifest (see `read_manifest`).
        config: `RunConfig` or None. `None` means the defaults.
        output_dir: str or Path. The run directory (created).
        verbose: int. Keras `fit` verbosity.
        overwrite: bool. Train again in a folder that holds another run's
            model, replacing it.

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
    if training.ensemble < 1:
        raise ConfigError(
            f"training.ensemble must be 1 (one model) or more (an ensemble); got "
            f"{training.ensemble}."
        )
    if config.model.wide and "text" not in config.model.modalities:
        print(
            f"model.wide adds a linear model over the text, and model.modalities "
            f"{list(config.model.modalities)} has none: this model has no wide path."
        )
    if training.wide_epochs < 0:
        raise ConfigError(
            f"training.wide_epochs must be 0 (train the wide path with the rest) or more "
            f"(train it first, for at most that many epochs); got {training.wide_epochs}."
        )
    if training.wide_ema_epochs < 0:
        raise ConfigError(
            f"training.wide_ema_epochs must be 0 (no averaging of the wide path's weights) "
            f"or more (average them over about that many epochs); got {training.wide_ema_epochs}."
        )
    # A missing backbone file stops the run here, before it reads any data.
    find_backbone_weights(config.model)
    run_dir = Path(output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if overwrite:
        clear_run(run_dir)
    resuming = (run_dir / BACKUP_DIR).is_dir() or any(run_dir.glob(f"members/*/{BACKUP_DIR}"))
    if resuming:
        check_same_config(run_dir, config)
    trained = None if resuming else trained_record(run_dir, config)
    save_config(config, run_dir / "config.yaml")
    if training.deterministic:
        tf.config.experimental.enable_op_determinism()

    source = TrainingData.load(manifest, data, run_dir, verbose=verbose)
    fingerprint = data_fingerprint(manifest, source)
    if resuming:
        check_same_data(run_dir, fingerprint)
    if trained is not None:
        check_same_data(run_dir, fingerprint, finished_training=True)
    write_run_record(run_dir, data=fingerprint, seed=training.seed)
    class_names = source.class_names
    keras.utils.set_random_seed(training.seed)
    if trained is None:
        preprocessor = adapted_preprocessor(config, source.train_texts())
        if "text" in config.model.modalities:
            print(preprocessor.describe_adapt())
    else:
        print(
            f"Resuming at evaluation: {run_dir / MODEL_FILE} finished training in an earlier "
            "run that stopped before evaluating it (run.json); evaluating it now."
        )
        model = load_model_file(run_dir / MODEL_FILE)
        preprocessor = _preprocessor_of(model)
    # `data.batch_size` is per replica: every replica sees that many rows per step.
    batch_size = data.batch_size * strategy.num_replicas_in_sync
    steps = math.ceil(len(source.train_labels()) / batch_size) * training.epochs
    weights = run_class_weights(config, source.train_labels(), class_names)

    def dataset(split, shuffle=False, size=data.batch_size, text_only=False):
        return source.dataset(
            split,
            preprocessor,
            class_names,
            size,
            shuffle,
            training.seed,
            oversampled=shuffle and training.oversample,
            text_only=text_only,
        )

    def fit_batches(text_only=False):
        """Training and selection batches, each worker's share under multi_worker."""
        train_batches = dataset("train", shuffle=True, size=batch_size, text_only=text_only)
        val_batches = dataset("val", size=batch_size, text_only=text_only)
        if training.strategy == "multi_worker":
            return shard_by_data(train_batches), every_worker_sees_all(val_batches)
        return train_batches, val_batches

    if trained is None:
        train_batches, val_batches = fit_batches()

        def fit_member(folder, seed):
            keras.utils.set_random_seed(seed)
            # With drop_deep_if_worse, a second stage that never beats the first
            # stage's best is dropped, so it stops once its patience runs out below it.
            first_stage = {}  # its best val score, once compiled_model has trained it
            shared = {}  # the frozen backbone's feature maps, when both stages read them
            callbacks, initial_epoch = training_callbacks(
                folder,
                training.early_stopping_patience,
                MODEL_FILE,
                tensorboard=training.tensorboard,
                baseline=lambda: first_stage.get("best"),
            )
            with strategy.scope():
                model = compiled_model(
                    config,
                    class_names,
                    preprocessor,
                    len(source.train_labels()),
                    steps,
                    weights,
                    wide_batches=fit_batches,
                    folder=folder,
                    resumed=initial_epoch > 0,
                    verbose=verbose,
                    shared=shared,
                )
            dropping_deep = judges_deep_path(model, training)
            if dropping_deep:
                first_stage["best"] = first_stage_best(folder)
                if verbose and first_stage["best"] is not None:
                    print(
                        f"Training the rest of the model. Early stopping counts from its last "
                        f"epoch above the wide path's val macro-F1 ({first_stage['best']:.4f}): "
                        f"it stops after {training.early_stopping_patience} epochs if it never "
                        "beats it (training.drop_deep_if_worse would drop it)."
                    )
            if initial_epoch:
                print(
                    f"Resuming from {folder / BACKUP_DIR}: {initial_epoch} of "
                    f"{training.epochs} epochs were done."
                )
            # One dataset for every member: images are decoded (and cached) once, and
            # the shuffle order goes on changing from one member's epochs to the next.
            # A frozen backbone's feature maps are computed once if they fit (in the
            # first stage, for both, when it reads the backbone's pooled features).
            fit_second_stage(
                model,
                train_batches,
                val_batches,
                callbacks,
                epochs=training.epochs,
                class_weight=weights,
                initial_epoch=initial_epoch,
                batch_size=batch_size,
                cache_bytes=data.cache_decoded_images_mb * 2**20,
                verbose=verbose,
                shared=shared,
            )
            if dropping_deep:
                deep_path[folder] = keep_deep_path_if_better(folder / MODEL_FILE, folder, verbose)
            return initial_epoch

        deep_path = {}  # folder -> keep_deep_path_if_better's verdict
        started = time.perf_counter()
        if training.ensemble == 1:
            initial_epoch = fit_member(run_dir, training.seed)
            model = keras.saving.load_model(run_dir / MODEL_FILE)
        else:
            initial_epoch, model = fit_ensemble(
                fit_member, run_dir, training, resuming, MODEL_FILE, verbose=verbose
            )
        train_seconds = time.perf_counter() - started

        trained = {}
        if deep_path.get(run_dir):
            trained["deep_path"] = deep_path[run_dir]
        verdicts = [verdict for verdict in deep_path.values() if verdict]
        trained["predicted_by"] = prediction_parts(
            model, deep_kept=not verdicts or any(verdict["kept"] for verdict in verdicts)
        )
        if data.multi_label:
            # Chosen on val only; saved in the head, so model.keras and exports carry them.
            chosen = tune_thresholds(model, dataset("val"))[DEFAULT_HEAD]
            save_model_atomically(model, run_dir / MODEL_FILE)
            chosen = [round(float(threshold), 6) for threshold in chosen]  # 0.45, not 0.4499999881
            trained["thresholds"] = dict(zip(class_names, chosen, strict=True))
        # From here on, a rerun of this command evaluates this model instead of training again.
        write_run_record(
            run_dir,
            trained=trained,
            train_seconds=train_seconds,
            resumed_from_epoch=initial_epoch,
            replicas=strategy.num_replicas_in_sync,
        )
    print(describe_prediction_parts(trained["predicted_by"]))
    metrics = {
        "num_train": len(source.train_labels()),
        "class_weight": weights,
        "data": source.summary,
        **trained,
    }
    splits = [name for name in ("val", "test") if source.has_split(name)]
    predictions = {}  # the report shows the same predictions as the metrics
    for name in splits:
        predictions[name] = predict_dataset(model, dataset(name))
        metrics[name] = evaluate_predictions(model, *predictions[name])
    if training.ensemble > 1:
        # Each member alone, so the run shows what averaging added.
        if data.multi_label:  # members' own thresholds, chosen on val as the ensemble's are
            for member in model.members:
                tune_thresholds(member, dataset("val"))
        metrics["members"] = [
            {name: evaluate_dataset(member, dataset(name)) for name in splits}
            for member in model.members
        ]
    write_text_atomically(run_dir / METRICS_FILE, json.dumps(metrics, indent=2) + "\n")
    metrics["train_seconds"] = read_run_record(run_dir).get("train_seconds", 0.0)
    if training.report:
        _write_report(run_dir, model, source, data.batch_size, predictions)
    if not data.multi_label:  # a confusion matrix needs one class per row
        report = metrics.get("test") or metrics["val"]
        plot_confusion_matrix(
            report,
            run_dir / "confusion_matrix.png",
            title=f"{'test' if 'test' in metrics else 'val'} split",
        )
    return TrainResult(run_dir, model, metrics)


def _write_report(run_dir, model, source, batch_size, predictions):
    if source.splits is None:
        print(
            "No report: a prepared TFRecord folder keeps no image files to show; "
            "`multimodal-tf report --run RUN --manifest MANIFEST` makes one from the manifest."
        )
        return
    split = "test" if source.has_split("test") else "val"
    # An ensemble has no epochs of its own: the curves are its first member's.
    history = None if isinstance(model, MultimodalClassifier) else member_dir(run_dir, 0)
    write_report(
        run_dir,
        model,
        source.splits[split],
        split=split,
        batch_size=batch_size,
        history_csv=history and history / HISTORY_FILE,
        predictions=predictions[split],
    )


def _preprocessor_of(model):
    """The preprocessor a trained classifier (or an ensemble's first member) carries."""
    members = getattr(model, "members", None)
    return members[0].preprocessor if members else model.preprocessor
