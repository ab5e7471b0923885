"""`tune()`: a KerasTuner search over fusion, widths, dropout and learning rate, on `val`."""

import copy
import csv
import dataclasses
import math
import time
from pathlib import Path

import keras
import keras_tuner

# KerasTuner's best-epoch checkpoint has no public name; keras-tuner is pinned below 2.
from keras_tuner.src.engine.tuner_utils import SaveBestEpoch

from multimodal_tf.config import RunConfig, load_config, save_config
from multimodal_tf.data.source import TrainingData
from multimodal_tf.errors import ConfigError, DataError
from multimodal_tf.layers.fusion import FUSIONS
from multimodal_tf.training.callbacks import ResumableEarlyStopping, SavesModelToSave
from multimodal_tf.training.deep_path import deep_path_kept, judges_deep_path
from multimodal_tf.training.feature_maps import fit_second_stage
from multimodal_tf.training.run_model import (
    adapted_preprocessor,
    compiled_model,
    find_backbone_weights,
    run_class_weights,
)

OBJECTIVE = "val_macro_f1"
CHOICE_KEYS = ("fusion", "hidden_dim", "embedding_dim", "lstm_units")  # lists of choices
RANGE_KEYS = ("dropout_rate", "learning_rate")  # [low, high]; learning_rate on a log scale
RECURRENT_ENCODERS = ("lstm", "bilstm", "gru")  # the text encoders that read lstm_units


@dataclasses.dataclass
class TuneResult:
    """What `tune()` produced.

    Args:
        best_config: `RunConfig`. The input config with the best trial's values.
        best_score: float. The best trial's best-epoch validation macro-F1.
        trials_csv: Path. One row per trial: id, status, values, score, epochs, seconds.
        best_config_path: Path. `best_config.yaml`, for `multimodal-tf train --config`.
    """

    best_config: RunConfig
    best_score: float
    trials_csv: Path
    best_config_path: Path


def default_search_space(config):
    """What `tune` searches for `config`: fusions, half/same/double widths, ranges.

    Example:
    >>> default_search_space(RunConfig())["hidden_dim"]
    [32, 64, 128]
    """
    model = config.model
    fusions = [
        name for name, layer in FUSIONS.items() if layer.min_modalities <= len(model.modalities)
    ]
    space = {"fusion": fusions, "hidden_dim": _widths(model.hidden_dim, model.num_heads)}
    if "text" in model.modalities:
        space["embedding_dim"] = _widths(model.embedding_dim)
        if model.text_encoder in RECURRENT_ENCODERS:
            space["lstm_units"] = _widths(model.lstm_units)
    return {**space, "dropout_rate": [0.0, 0.5], "learning_rate": [1e-4, 1e-2]}


def tune(manifest, config=None, trials=10, output_dir="runs/tune", search_space=None, verbose=0):
    """Random search over the model's hyperparameters, selecting on validation macro-F1.

    The data is validated and split once and the preprocessor adapted once on
    the training texts; every trial trains a fresh model on the `train` split
    with the config's early stopping and scores its best epoch on `val` (with
    `training.drop_deep_if_worse`, the first stage's best when that is higher:
    the model `train()` would keep). The `test` split is never read. Each
    trial starts from `training.seed` (same initial weights and batch order as
    `train`), so trials differ by their hyperparameters only and `train` with
    `best_config.yaml` repeats the best one. As in `train()`, a trial with a
    frozen pretrained backbone (and no image augmentation) trains over its
    feature maps, computed once per trial, when they fit in
    `data.cache_decoded_images_mb` (`fit_second_stage`); KerasTuner's trial
    checkpoints still hold the classifier's weights.

    Args:
        manifest: str or Path. Anything `train` accepts.
        config: `RunConfig`, str, Path or None. The starting point, or its YAML/JSON
            file; `None` means the defaults.
        trials: int. Trials to run (fewer if the space runs out of new points).
        output_dir: str or Path. Gets `tuner/` (KerasTuner's folder, rewritten
            on every call), `best_config.yaml` and `trials.csv`.
        search_space: dict or None. Overrides `default_search_space(config)`:
            `fusion`, `hidden_dim`, `embedding_dim`, `lstm_units` take a list
            of choices, `dropout_rate` and `learning_rate` a `[low, high]`
            range; `None` for a key keeps the config's value.
        verbose: int. KerasTuner and Keras `fit` verbosity.

    Returns:
        A `TuneResult`.

    Example:
    >>> result = tune("data/demo/manifest.csv", trials=3,  # doctest: +SKIP
    ...               search_space={"fusion": ["attention", "gated"]})
    >>> train("data/demo/manifest.csv", load_config(result.best_config_path))  # doctest: +SKIP
    """
    if isinstance(config, (str, Path)):
        config = load_config(config)
    config = config or RunConfig()
    space = _check_space(config, search_space)
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ConfigError(f"`trials` must be a positive integer; received {trials!r}.")
    data, training = config.data, config.training
    if data.multi_label and training.oversample:
        raise ConfigError("training.oversample does not work with data.multi_label: true.")
    find_backbone_weights(config.model)  # before any data is read, as in train()
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)

    # The same set-up as train(): one preprocessor, adapted once, serves every trial.
    source = TrainingData.load(manifest, data, output_dir, verbose=verbose)
    if not source.has_split("val"):
        raise DataError(f"{manifest} has no val rows; tune selects on them (data.val_fraction).")
    class_names = source.class_names
    preprocessor = adapted_preprocessor(config, source.train_texts())
    steps = math.ceil(len(source.train_labels()) / data.batch_size) * training.epochs
    weights = run_class_weights(config, source.train_labels(), class_names)

    # The current trial's first stage; filled only for drop_deep_if_worse.
    wide_best = {}
    # The current trial's cached feature maps, when both of its stages read them.
    shared = {}

    def build(hp):
        trial_config = _apply(config, _sample(hp, space))
        keras.utils.set_random_seed(training.seed)
        wide_best.clear()
        shared.clear()
        # As train() builds each member: the wide path first, the trial's learning rate.
        model = compiled_model(
            trial_config,
            class_names,
            preprocessor,
            len(source.train_labels()),
            steps,
            weights,
            wide_result=wide_best if training.drop_deep_if_worse else None,
            shared=shared,
            wide_batches=lambda text_only: (
                dataset("train", shuffle=True, text_only=text_only),
                dataset("val", text_only=text_only),
            ),
        )
        if not judges_deep_path(model, training):
            wide_best.clear()  # as in train(): a deep path not judged is not scored against it
        return model

    def dataset(split, shuffle=False, text_only=False):
        return source.dataset(
            split,
            preprocessor,
            class_names,
            data.batch_size,
            shuffle,
            training.seed,
            oversampled=shuffle and training.oversample,
            text_only=text_only,
        )

    tuner = _Tuner(
        _TrialModel(build, data.batch_size, data.cache_decoded_images_mb * 2**20, shared),
        lambda: dataset("train", shuffle=True),
        wide_best,
        objective=keras_tuner.Objective(OBJECTIVE, direction="max"),
        max_trials=trials,
        seed=training.seed,
        directory=output_dir,
        project_name="tuner",
        overwrite=True,
    )
    tuner.search(
        validation_data=dataset("val"),  # shared: its decoded-image cache serves every trial
        class_weight=weights,
        epochs=training.epochs,
        callbacks=[
            # As in train(): with drop_deep_if_worse, a trial whose second stage
            # cannot beat its first stage's best stops once its patience runs out.
            ResumableEarlyStopping(
                training.early_stopping_patience,
                monitor=OBJECTIVE,
                baseline=lambda: wide_best.get(OBJECTIVE),
            )
        ],
        shuffle=False,  # the dataset reshuffles itself every epoch
        verbose=verbose,
    )

    trials_csv = output_dir / "trials.csv"
    with trials_csv.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["trial_id", "status", *space, OBJECTIVE, "epochs", "seconds"])
        for trial in sorted(tuner.oracle.trials.values(), key=lambda trial: trial.trial_id):
            epochs, seconds = tuner.stats.get(trial.trial_id, ("", ""))
            values = _sample(trial.hyperparameters, space).values()
            score = "" if trial.score is None else trial.score
            writer.writerow([trial.trial_id, trial.status, *values, score, epochs, seconds])
    best = tuner.oracle.get_best_trials(1)[0]
    if best.score is None:  # KerasTuner ranks failed trials last, but still returns one
        raise RuntimeError(f"No trial finished; see {trials_csv} and {output_dir / 'tuner'}.")
    best_config = _apply(config, _sample(best.hyperparameters, space))
    best_config_path = output_dir / "best_config.yaml"
    save_config(best_config, best_config_path)
    return TuneResult(best_config, float(best.score), trials_csv, best_config_path)


class _TrialModel(keras_tuner.HyperModel):
    """Builds a trial's model with `build(hp)` and fits it as `train()` does.

    That is `fit_second_stage`: over feature maps computed once (per trial)
    for a frozen pretrained backbone without image augmentation, when they
    fit in `cache_bytes`, or the maps its first stage cached in `shared`;
    otherwise plain `model.fit`.
    """

    def __init__(self, build, batch_size, cache_bytes, shared=None):
        super().__init__()
        self._build, self.batch_size, self.cache_bytes = build, batch_size, cache_bytes
        self.shared = shared  # filled by `build` with the trial's cached maps, if any

    def build(self, hp):
        return self._build(hp)

    def fit(self, hp, model, x, validation_data=None, callbacks=(), shuffle=False, **kwargs):
        # The datasets reshuffle themselves every epoch, as fit_second_stage expects.
        return fit_second_stage(
            model,
            x,
            validation_data,
            list(callbacks),
            batch_size=self.batch_size,
            cache_bytes=self.cache_bytes,
            shared=self.shared,
            **kwargs,
        )


class _SaveBestClassifierEpoch(SavesModelToSave, SaveBestEpoch):
    """KerasTuner's best-epoch checkpoint, saving the classifier when its map model trains."""


class _Tuner(keras_tuner.RandomSearch):
    """`RandomSearch` that gives each trial a fresh training set and records its time.

    `wide_best` is the dict `build` fills with the trial's first stage when
    `training.drop_deep_if_worse` is on (else it stays empty); then a trial
    scores as `train()` would keep its model: the linear path's best val
    macro-F1 if the whole model's best is lower, else the whole model's.
    """

    def __init__(self, hypermodel, train_data, wide_best, **kwargs):
        super().__init__(hypermodel, **kwargs)
        self.train_data, self.wide_best, self.stats = train_data, wide_best, {}

    def run_trial(self, trial, *args, **kwargs):
        started = time.perf_counter()
        # A new dataset shuffles as train()'s does; a shared one would carry on its order.
        histories = super().run_trial(trial, self.train_data(), *args, **kwargs)
        epochs = len(histories[-1].history[OBJECTIVE])
        self.stats[trial.trial_id] = (epochs, round(time.perf_counter() - started, 2))
        wide = self.wide_best.get(OBJECTIVE)
        if wide is not None and not deep_path_kept(wide, max(histories[-1].history[OBJECTIVE])):
            return float(wide)  # train() would drop the deep path and keep the linear one
        return histories

    def _build_and_fit_model(self, trial, *args, **kwargs):
        # The trial's checkpoint must hold the classifier's weights even when
        # fit_second_stage trains its feature-map model.
        kwargs["callbacks"] = [
            _classifier_checkpoint(callback) for callback in kwargs.get("callbacks", [])
        ]
        return super()._build_and_fit_model(trial, *args, **kwargs)


def _classifier_checkpoint(callback):
    """KerasTuner's `SaveBestEpoch` as `_SaveBestClassifierEpoch`; other callbacks as they are."""
    if type(callback) is not SaveBestEpoch:
        return callback
    checkpoint = _SaveBestClassifierEpoch(callback.objective, callback.filepath)
    checkpoint.best_value = callback.best_value
    return checkpoint


def _widths(width, multiple_of=1):
    widths = (width // 2, width, width * 2)
    return [value for value in dict.fromkeys(widths) if value > 0 and value % multiple_of == 0]


def _sample(hp, space):
    """The trial's values, rounded as they are applied (so trials.csv shows what trained)."""
    values = {}
    for key, choices in space.items():
        if key in CHOICE_KEYS:
            values[key] = hp.Choice(key, list(choices))
        elif choices[0] == choices[1]:
            values[key] = hp.Fixed(key, float(choices[0]))
        elif key == "learning_rate":
            values[key] = float(f"{hp.Float(key, *choices, sampling='log'):.3g}")
        else:
            values[key] = round(hp.Float(key, *choices), 3)
    return values


def _apply(config, values):
    config = copy.deepcopy(config)
    for key, value in values.items():
        setattr(config.training if key == "learning_rate" else config.model, key, value)
    return config


def _check_space(config, search_space):
    """`default_search_space(config)` with the user's overrides, each checked."""
    space, allowed = default_search_space(config), CHOICE_KEYS + RANGE_KEYS
    for key, value in (search_space or {}).items():
        if key not in allowed:
            raise ConfigError(
                f"search_space: unknown key {key!r}; allowed keys: {', '.join(allowed)}."
            )
        if key not in space:
            raise ConfigError(
                f"search_space: {key!r} has no effect on this model (modalities "
                f"{list(config.model.modalities)}, text_encoder {config.model.text_encoder!r})."
            )
        if value is None:
            del space[key]
            continue
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        if key in RANGE_KEYS and len(values) == 1:  # one value: set, not searched
            values *= 2
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        heads = config.model.num_heads if key == "hidden_dim" else 1
        if key == "fusion":
            ok, expected = all(v in space[key] for v in values), f"a list of {space[key]}"
        elif key in RANGE_KEYS:
            low = 0 if key == "dropout_rate" else 1e-12
            high = 1 - 1e-12 if key == "dropout_rate" else math.inf
            ok = numbers and len(values) == 2 and low <= values[0] <= values[1] <= high
            expected = (
                f"[low, high] with {'0 <= low <= high < 1' if low == 0 else '0 < low <= high'}"
            )
        else:
            ok = numbers and all(isinstance(v, int) and v > 0 and v % heads == 0 for v in values)
            expected = "a list of positive integers" + (
                f" divisible by model.num_heads ({heads})" if heads > 1 else ""
            )
        if not values or not ok:
            raise ConfigError(f"search_space[{key!r}] must be {expected}; received {value!r}.")
        space[key] = values
    return space
