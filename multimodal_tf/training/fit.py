"""`train()`: manifest in, run directory with model and metrics out.

`train()` is a sequence of stages, each a function of this module, in this order:

- check: `_checked_strategy` (the config, and its `tf.distribute` strategy),
  `_open_run_folder` (a run in the folder to resume, refuse or evaluate;
  `training/run_folder.py`);
- load and check data: `_load_and_check_data`;
- adapt: `_adapt` (the preprocessor, on the training texts), or
  `_resume_at_evaluation` for a run that finished training; then
  `_plan_training` (batch size, steps, class weights);
- build and fit, for the model or each ensemble member: `_fit`, `_fit_member`,
  `_build` (which trains the wide path first), `_judge_deep_path`;
- select: `_select` (the kept model's record; multi-label thresholds);
- evaluate: `_evaluate` (`metrics.json`);
- report: `_report`.

`_Run` holds what the stages hand on, `_Member` what one model's training shares.
"""

import dataclasses
import functools
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
from multimodal_tf.models.preprocessor import MultimodalPreprocessor
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
    strategy = _checked_strategy(config)
    # A missing backbone file stops the run here, before it reads any data.
    find_backbone_weights(config.model)
    run = _open_run_folder(output_dir, config, strategy, overwrite, verbose)
    if config.training.deterministic:
        tf.config.experimental.enable_op_determinism()
    _load_and_check_data(run, manifest)
    keras.utils.set_random_seed(config.training.seed)
    if run.trained is None:
        _adapt(run)
    else:  # training finished in an earlier run that stopped before evaluating
        model = _resume_at_evaluation(run)
    _plan_training(run)
    if run.trained is None:
        model, initial_epoch, train_seconds = _fit(run)
        _select(run, model, initial_epoch, train_seconds)
    metrics, predictions = _evaluate(run, model)
    _report(run, model, metrics, predictions)
    return TrainResult(run.run_dir, model, metrics)


@dataclasses.dataclass
class _Run:
    """One `train()` call as its stages share it; each stage fills in what the next reads.

    Args:
        config: `RunConfig`.
        run_dir: Path. The run folder.
        strategy: `tf.distribute.Strategy`. The one the model is built under.
        verbose: int. Keras `fit` verbosity.
        resuming: bool. The folder holds an interrupted run's backup, resumed.
        trained: dict or None. run.json's record of a finished training (what
            `_select` writes); None while the run has still to train.
        source: `TrainingData`. The splits (`_load_and_check_data`).
        class_names: list of str. Label names in output order.
        preprocessor: `MultimodalPreprocessor`. Adapted on the training texts
            (`_adapt`), or the trained model's when resuming at evaluation.
        batch_size: int. Training rows per step, over every replica.
        steps: int. Planned training steps (the learning-rate schedule).
        class_weight: dict or None. Keras `class_weight`.
        deep_path: dict. `{folder: keep_deep_path_if_better's verdict}` for
            each run or ensemble member folder whose deep path was judged.
    """

    config: RunConfig
    run_dir: Path
    strategy: tf.distribute.Strategy
    verbose: int
    resuming: bool = False
    trained: dict | None = None
    source: TrainingData | None = None
    class_names: list | None = None
    preprocessor: MultimodalPreprocessor | None = None
    batch_size: int = 0
    steps: int = 0
    class_weight: dict | None = None
    deep_path: dict = dataclasses.field(default_factory=dict)

    def dataset(self, split, shuffle=False, size=None, text_only=False):
        """A split's batches of `size` rows (default `data.batch_size`, one replica's)."""
        data, training = self.config.data, self.config.training
        return self.source.dataset(
            split,
            self.preprocessor,
            self.class_names,
            data.batch_size if size is None else size,
            shuffle,
            training.seed,
            oversampled=shuffle and training.oversample,
            text_only=text_only,
        )

    def fit_batches(self, text_only=False):
        """Training and selection batches, each worker's share under multi_worker."""
        train_batches = self.dataset(
            "train", shuffle=True, size=self.batch_size, text_only=text_only
        )
        val_batches = self.dataset("val", size=self.batch_size, text_only=text_only)
        if self.config.training.strategy == "multi_worker":
            return shard_by_data(train_batches), every_worker_sees_all(val_batches)
        return train_batches, val_batches


@dataclasses.dataclass
class _Member:
    """One model's training (the run's, or an ensemble member's), as its stages share it.

    Args:
        folder: Path. The run folder, or the member's (`RUN/members/<i>`).
        judged: bool. `training.drop_deep_if_worse` judges its deep path after
            both stages (`_judge_deep_path`).
        first_stage_best: float or None. The wide path's best val score, once
            judged: the second stage's early stopping counts from it.
        shared: dict. The frozen backbone's feature maps, when both stages read them.
    """

    folder: Path
    judged: bool = False
    first_stage_best: float | None = None
    shared: dict = dataclasses.field(default_factory=dict)


def _checked_strategy(config):
    """The run config's training checks, and the `tf.distribute` strategy it names.

    Raises `ConfigError` for settings that cannot run together, and says when
    `model.wide` has no text to read.
    """
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
    return strategy


def _open_run_folder(output_dir, config, strategy, overwrite, verbose):
    """The run folder, created, with what it already holds checked (`training/run_folder.py`).

    `overwrite` clears an earlier run first. A backup is resumed only with the
    same config; a folder without one may hold a run that finished training,
    resumed at its evaluation, and any other run in it is refused. The run's
    config is saved as `config.yaml`.

    Returns:
        The `_Run` that the later stages fill in.
    """
    run_dir = Path(output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if overwrite:
        clear_run(run_dir)
    resuming = (run_dir / BACKUP_DIR).is_dir() or any(run_dir.glob(f"members/*/{BACKUP_DIR}"))
    if resuming:
        check_same_config(run_dir, config)
    trained = None if resuming else trained_record(run_dir, config)
    save_config(config, run_dir / "config.yaml")
    return _Run(config, run_dir, strategy, verbose, resuming=resuming, trained=trained)


def _load_and_check_data(run, manifest):
    """Reads the splits, checks they are the data a resumed run read, and records them.

    The data's fingerprint goes to run.json with the seed; a run resumed from
    its backup, or at its evaluation, must read the same data.
    """
    source = TrainingData.load(manifest, run.config.data, run.run_dir, verbose=run.verbose)
    fingerprint = data_fingerprint(manifest, source)
    if run.resuming:
        check_same_data(run.run_dir, fingerprint)
    if run.trained is not None:
        check_same_data(run.run_dir, fingerprint, finished_training=True)
    write_run_record(run.run_dir, data=fingerprint, seed=run.config.training.seed)
    run.source, run.class_names = source, source.class_names


def _adapt(run):
    """Adapts the preprocessor (vocabulary, lexicon) on the training texts only."""
    config = run.config
    run.preprocessor = adapted_preprocessor(config, run.source.train_texts())
    if "text" in config.model.modalities:
        print(run.preprocessor.describe_adapt())


def _resume_at_evaluation(run):
    """The model an earlier run finished training in this folder; its preprocessor is the run's."""
    print(
        f"Resuming at evaluation: {run.run_dir / MODEL_FILE} finished training in an earlier "
        "run that stopped before evaluating it (run.json); evaluating it now."
    )
    model = load_model_file(run.run_dir / MODEL_FILE)
    run.preprocessor = _preprocessor_of(model)
    return model


def _plan_training(run):
    """The batch size over every replica, the planned steps and the class weights."""
    config, train_labels = run.config, run.source.train_labels()
    # `data.batch_size` is per replica: every replica sees that many rows per step.
    run.batch_size = config.data.batch_size * run.strategy.num_replicas_in_sync
    run.steps = math.ceil(len(train_labels) / run.batch_size) * config.training.epochs
    run.class_weight = run_class_weights(config, train_labels, run.class_names)


def _fit(run):
    """Trains the run's model, or each ensemble member in turn, and loads the one kept.

    One dataset serves every member: images are decoded (and cached) once, and
    the shuffle order goes on changing from one member's epochs to the next.

    Returns:
        `(model, initial_epoch, train_seconds)`: the model kept (with
        `training.ensemble` > 1, the `MultimodalEnsemble` of the members), the
        epoch a resumed run restarted from (0 for a fresh run) and the seconds
        training took.
    """
    training = run.config.training
    batches = run.fit_batches()  # one dataset for every member
    fit_member = functools.partial(_fit_member, run, batches)
    started = time.perf_counter()
    if training.ensemble == 1:
        initial_epoch = fit_member(run.run_dir, training.seed)
        model = keras.saving.load_model(run.run_dir / MODEL_FILE)
    else:
        initial_epoch, model = fit_ensemble(
            fit_member, run.run_dir, training, run.resuming, MODEL_FILE, verbose=run.verbose
        )
    return model, initial_epoch, time.perf_counter() - started


def _fit_member(run, batches, folder, seed):
    """Trains one model (the run's, or an ensemble member's) into `folder`, both stages.

    The first stage (`training.wide_epochs`) trains the wide path alone as the
    model is built (`_build`); the second trains the rest of the model around
    it, keeping its best val epoch (`model.keras`) and a backup to resume
    from. With `drop_deep_if_worse`, the deep path is then kept only if it
    beat the wide path (the member's part of the selection, made before an
    ensemble loads the member).

    Returns:
        int. The epoch a resumed run restarted from (0 for a fresh one).
    """
    training = run.config.training
    keras.utils.set_random_seed(seed)
    member = _Member(folder)
    callbacks, initial_epoch = training_callbacks(
        folder,
        training.early_stopping_patience,
        MODEL_FILE,
        tensorboard=training.tensorboard,
        baseline=lambda: member.first_stage_best,
    )
    model = _build(run, member, resumed=initial_epoch > 0)
    _judge_deep_path(run, model, member)
    if initial_epoch:
        print(
            f"Resuming from {folder / BACKUP_DIR}: {initial_epoch} of "
            f"{training.epochs} epochs were done."
        )
    train_batches, val_batches = batches
    # A frozen backbone's feature maps are computed once if they fit (in the
    # first stage, for both, when it reads the backbone's pooled features).
    fit_second_stage(
        model,
        train_batches,
        val_batches,
        callbacks,
        epochs=training.epochs,
        class_weight=run.class_weight,
        initial_epoch=initial_epoch,
        batch_size=run.batch_size,
        cache_bytes=run.config.data.cache_decoded_images_mb * 2**20,
        verbose=run.verbose,
        shared=member.shared,
    )
    if member.judged:
        run.deep_path[folder] = keep_deep_path_if_better(folder / MODEL_FILE, folder, run.verbose)
    return initial_epoch


def _build(run, member, resumed):
    """Builds one model under the run's strategy, its wide path trained first, compiled.

    `compiled_model`, as `tune()` builds each trial, also runs the first
    training stage: the wide path alone to its best val epoch, then frozen
    (`training.wide_epochs`); a resumed run only freezes it again.
    """
    with run.strategy.scope():
        return compiled_model(
            run.config,
            run.class_names,
            run.preprocessor,
            len(run.source.train_labels()),
            run.steps,
            run.class_weight,
            wide_batches=run.fit_batches,
            folder=member.folder,
            resumed=resumed,
            verbose=run.verbose,
            shared=member.shared,
        )


def _judge_deep_path(run, model, member):
    """Whether `drop_deep_if_worse` judges this member's deep path, and the bar it must clear.

    When it does, the second stage's early stopping counts from the first
    stage's best val score: a second stage that never beats it would be
    dropped, so it stops once its patience runs out below it.
    """
    training = run.config.training
    member.judged = judges_deep_path(model, training)
    if member.judged:
        member.first_stage_best = first_stage_best(member.folder)
        if run.verbose and member.first_stage_best is not None:
            print(
                f"Training the rest of the model. Early stopping counts from its last "
                f"epoch above the wide path's val macro-F1 ({member.first_stage_best:.4f}): "
                f"it stops after {training.early_stopping_patience} epochs if it never "
                "beats it (training.drop_deep_if_worse would drop it)."
            )


def _select(run, model, initial_epoch, train_seconds):
    """Records the model kept, and from then on a rerun evaluates it instead of training.

    Each model kept its best val epoch and, with `drop_deep_if_worse`, its
    deep path only if that beat the wide path (`_fit_member`); run.json's
    `trained` record says which parts predict. With `data.multi_label`, the
    per-class thresholds are chosen here, on val only, and saved in the head,
    so `model.keras` and exports carry them.
    """
    trained = {}
    if run.deep_path.get(run.run_dir):
        trained["deep_path"] = run.deep_path[run.run_dir]
    verdicts = [verdict for verdict in run.deep_path.values() if verdict]
    trained["predicted_by"] = prediction_parts(
        model, deep_kept=not verdicts or any(verdict["kept"] for verdict in verdicts)
    )
    if run.config.data.multi_label:
        chosen = tune_thresholds(model, run.dataset("val"))[DEFAULT_HEAD]
        save_model_atomically(model, run.run_dir / MODEL_FILE)
        chosen = [round(float(threshold), 6) for threshold in chosen]  # 0.45, not 0.4499999881
        trained["thresholds"] = dict(zip(run.class_names, chosen, strict=True))
    write_run_record(
        run.run_dir,
        trained=trained,
        train_seconds=train_seconds,
        resumed_from_epoch=initial_epoch,
        replicas=run.strategy.num_replicas_in_sync,
    )
    run.trained = trained


def _evaluate(run, model):
    """Evaluates the kept model on `val` and `test` (read once, now) into `metrics.json`.

    An ensemble's members are also evaluated alone, so the run shows what
    averaging added.

    Returns:
        `(metrics, predictions)`: `TrainResult.metrics`, and each split's
        predictions, which the report shows.
    """
    data, source = run.config.data, run.source
    print(describe_prediction_parts(run.trained["predicted_by"]))
    metrics = {
        "num_train": len(source.train_labels()),
        "class_weight": run.class_weight,
        "data": source.summary,
        **run.trained,
    }
    splits = [name for name in ("val", "test") if source.has_split(name)]
    predictions = {}  # the report shows the same predictions as the metrics
    for name in splits:
        predictions[name] = predict_dataset(model, run.dataset(name))
        metrics[name] = evaluate_predictions(model, *predictions[name])
    if run.config.training.ensemble > 1:
        if data.multi_label:  # members' own thresholds, chosen on val as the ensemble's are
            for member in model.members:
                tune_thresholds(member, run.dataset("val"))
        metrics["members"] = [
            {name: evaluate_dataset(member, run.dataset(name)) for name in splits}
            for member in model.members
        ]
    write_text_atomically(run.run_dir / METRICS_FILE, json.dumps(metrics, indent=2) + "\n")
    metrics["train_seconds"] = read_run_record(run.run_dir).get("train_seconds", 0.0)
    return metrics, predictions


def _report(run, model, metrics, predictions):
    """The HTML report (`training.report`) and, single-label, the confusion matrix."""
    data = run.config.data
    if run.config.training.report:
        _write_report(run.run_dir, model, run.source, data.batch_size, predictions)
    if not data.multi_label:  # a confusion matrix needs one class per row
        report = metrics.get("test") or metrics["val"]
        plot_confusion_matrix(
            report,
            run.run_dir / "confusion_matrix.png",
            title=f"{'test' if 'test' in metrics else 'val'} split",
        )


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
