"""`training.wide_epochs`: train a Wide & Deep model's linear path first, then the rest.

Trained jointly, the wide path (logistic regression over the TF-IDF bag) and
the deep path share one best epoch, and the deep path picks it: the fused
model peaks after 2-5 epochs, long before a linear model over 100k n-grams
reaches its regularised optimum. Training the wide path alone first, to its
own best validation epoch, and freezing it gives the deep path a strong
linear model to add to (docs/design.md, "The training stages").
"""

from pathlib import Path

import keras
import tensorflow as tf

from multimodal_tf.models.wide_model import POOLED_FEATURES
from multimodal_tf.training.callbacks import MONITOR
from multimodal_tf.training.feature_maps import (
    cached_rows,
    pooled_cache_bytes,
    share_feature_maps,
)

#: The first stage's epoch log in a run (or ensemble member) folder.
WIDE_HISTORY_FILE = "wide_history.csv"


def train_wide_path(
    model,
    training,
    batches,
    class_weight=None,
    folder=None,
    resumed=False,
    verbose=0,
    batch_size=None,
    cache_bytes=0,
    shared=None,
):
    """`training.wide_epochs` for one run: the wide path first, as `train()` and `tune()` do.

    Does nothing for a model without a wide path or with `wide_epochs: 0`.
    In a resumed run the backup holds the trained path: it is only frozen again.

    Args:
        model: `MultimodalClassifier`.
        training: `TrainingConfig`. `wide_epochs`, `wide_ema_epochs`,
            `early_stopping_patience`, `learning_rate` and `label_smoothing`
            are read.
        batches: callable taking `text_only` and returning `(train, val)`
            tf.data.Datasets; called only when the path trains, with
            `text_only=True` (token ids are enough) unless the path also
            reads images (`model.wide_image`).
        class_weight: dict or None. Keras `class_weight`.
        folder: Path or None. The run folder: `wide_history.csv` goes there.
        resumed: bool. The run resumes from its backup.
        verbose: int. Keras `fit` verbosity; > 0 also prints what the stage did.
        batch_size: int or None. Rows per batch of `batches`; needed to cache
            the backbone's pooled features (see `fit_wide_first`).
        cache_bytes: int. Memory the cached pooled features may take.
        shared: dict or None. Passed to `fit_wide_first`.

    Returns:
        `fit_wide_first()`'s dict, or None if nothing was trained.

    Example:
    >>> train_wide_path(model, config.training, lambda: (train, val), folder=run)  # doctest: +SKIP
    >>> model.compile()  # then fit the rest around the frozen path
    """
    if not (training.wide_epochs and model.wide):
        return None
    if resumed:
        freeze_wide(model)
        return None
    if verbose:
        over = "the text"
        if model.wide_image:
            over += " and the backbone's pooled image features"
        print(
            f"Training the wide path (a linear model over {over}) alone first, for at "
            f"most {training.wide_epochs} epochs (training.wide_epochs)."
        )
    best = fit_wide_first(
        model,
        *batches(text_only=not model.wide_image),
        epochs=training.wide_epochs,
        patience=training.early_stopping_patience,
        learning_rate=training.learning_rate,
        label_smoothing=training.label_smoothing,
        class_weight=class_weight,
        ema_epochs=training.wide_ema_epochs,
        log_file=None if folder is None else Path(folder) / WIDE_HISTORY_FILE,
        verbose=verbose,
        batch_size=batch_size,
        cache_bytes=cache_bytes,
        shared=shared,
    )
    if verbose:
        print(
            f"Wide path trained first: best val macro-F1 {best['val_macro_f1']:.4f} "
            f"at epoch {best['epoch']}; it is frozen while the rest trains."
        )
    return best


def fit_wide_first(
    model,
    train_batches,
    val_batches,
    epochs,
    patience,
    learning_rate,
    label_smoothing=0.0,
    class_weight=None,
    ema_epochs=0.0,
    log_file=None,
    monitor=MONITOR,
    verbose=1,
    batch_size=None,
    cache_bytes=0,
    shared=None,
):
    """Fits `model.wide_model()` alone, keeps its best val epoch and freezes it.

    The linear path trains with Adam at a constant `learning_rate` and no
    weight decay (its L2 is `model.wide_l2`), on the model's own loss and
    metrics, and stops `patience` epochs after its best `monitor` value; the
    weights of that epoch are kept. With `ema_epochs`, Adam keeps an
    exponential moving average of the weights (`use_ema`, momentum
    `1 - 1 / (ema_epochs * steps per epoch)`), validation reads the average
    (`keras.callbacks.SwapEMAWeights`) and the kept epoch's average is what
    stays: Polyak averaging, which on MVSA-Single made the val curve's
    epoch-to-epoch jumps 1.6-4x smaller (docs/defaults.md). It needs
    `train_batches` of known length; without it the weights are not averaged.
    The `WideTextLogits` layers are then non-trainable, so compile `model`
    afterwards: its next `fit` trains the deep path around the fixed linear
    one.

    With `model.wide_image`, the frozen image encoder's pooled features do
    not change from epoch to epoch: given `batch_size`, if both datasets'
    number of batches is known (`train()`'s are, on one worker) and their
    features fit in `cache_bytes`, under the default `tf.distribute`
    strategy, they are computed once, before the first epoch, and kept in
    memory with the token ids (`pooled_batches`); the rows are reshuffled
    every epoch. Otherwise the encoder runs over every batch of every epoch.
    Given a dict as `shared`, when the second stage will train over cached
    feature maps (`caches_feature_maps`) and they fit too, the backbone's
    feature maps are cached instead and pooled, and left in
    `shared["cache"]` for `fit_second_stage` (`share_feature_maps`): one
    pass of the backbone over the images serves both stages.

    Args:
        model: `MultimodalClassifier` built with `wide=True`.
        train_batches: tf.data.Dataset of `(features, labels)` or
            `(features, labels, sample_weights)`; only `features["token_ids"]`
            is read (and, with `model.wide_image`, `image` and
            `image_present`: one pass over them first sets the
            `WideImageLogits` standardization).
        val_batches: tf.data.Dataset. Selection data, as `train_batches`.
        epochs: int. At most this many epochs.
        patience: int. Early-stopping patience in epochs.
        learning_rate: float. Adam's learning rate.
        label_smoothing: float. For the model's default loss.
        class_weight: dict or None. Keras `class_weight`.
        ema_epochs: float. Average the weights over about this many epochs
            of steps; 0: keep the last step's weights of each epoch.
        log_file: str, Path or None. A CSV log of the linear path's epochs.
        monitor: str. The validation metric that picks the epoch.
        verbose: int. Keras `fit` verbosity.
        batch_size: int or None. Rows per batch of `train_batches`: the
            cached rows are batched again at this size. None: no cache.
        cache_bytes: int. Memory the cached features of both splits may take.
        shared: dict or None. Gets the `FeatureMapCache` both stages read.

    Returns:
        dict: the best epoch (`epoch`, counted from 1) and its validation logs.

    Example:
    >>> model = MultimodalClassifier(  # doctest: +SKIP
    ...     names, preprocessor, text_encoder="bag", wide=True, wide_l2=7e-5)
    >>> best = fit_wide_first(model, train, val, epochs=30, patience=8, learning_rate=2e-3)
    >>> model.compile()  # now the deep path, around the frozen linear one
    >>> model.fit(train, validation_data=val, epochs=30)
    """
    pooled = False
    if model.wide_image:
        train_batches, val_batches, pooled, note = _first_stage_batches(
            model, train_batches, val_batches, batch_size, cache_bytes, shared
        )
        if verbose:
            print(note)
    linear = model.wide_model(pooled_features=pooled)
    if model.wide_image:
        adapt_wide_image(model, train_batches, pooled=pooled)
    momentum = ema_momentum(ema_epochs, train_batches)
    if verbose and momentum:
        print(
            f"The wide path has its weights averaged over about {ema_epochs:g} epochs "
            "(training.wide_ema_epochs); validation scores the average."
        )
    elif verbose and ema_epochs:
        print("The wide path's weights are not averaged: its training batches' number is unknown.")
    linear.compile(
        keras.optimizers.Adam(learning_rate, use_ema=bool(momentum), ema_momentum=momentum or 0.99),
        model.default_loss(label_smoothing),
        metrics=model.default_metrics(),
    )
    stopping = keras.callbacks.EarlyStopping(
        monitor=monitor, mode="max", patience=patience, restore_best_weights=True
    )
    callbacks = [stopping]
    if momentum:
        # Swapped in before validation and kept in through `stopping`, which then
        # saves (and at the end restores) the averaged weights of its best epoch.
        callbacks.insert(0, keras.callbacks.SwapEMAWeights(swap_on_epoch=True))
    if log_file is not None:
        callbacks.insert(0, keras.callbacks.CSVLogger(str(log_file)))
    history = linear.fit(
        _wide_features(train_batches, model, pooled),
        validation_data=_wide_features(val_batches, model, pooled),
        epochs=epochs,
        class_weight=class_weight,
        callbacks=callbacks,
        verbose=verbose,
        shuffle=False,  # the dataset reshuffles itself every epoch
    )
    freeze_wide(model)
    best = stopping.best_epoch
    return {"epoch": best + 1, **{k: float(v[best]) for k, v in history.history.items()}}


def ema_momentum(ema_epochs, train_batches):
    """Adam's `ema_momentum` for an average over about `ema_epochs` epochs, or None.

    The moving average forgets a step's weights by a factor e over about
    `ema_epochs * steps per epoch` steps, whatever the dataset's size.

    Args:
        ema_epochs: float. The average's horizon in epochs; 0: no average.
        train_batches: tf.data.Dataset. One epoch of training batches; its
            cardinality is the number of steps per epoch.

    Returns:
        float, or None when `ema_epochs` is 0 or the number of
        `train_batches` is unknown (then the weights are not averaged).

    Raises:
        ValueError: `ema_epochs` is negative (`tune()` and direct callers of
            `fit_wide_first` reach here; `train()` rejects it earlier).

    Example:
    >>> ema_momentum(4, tf.data.Dataset.range(100).batch(1))
    0.9975
    """
    if ema_epochs < 0:
        raise ValueError(f"ema_epochs must be 0 (no average) or more; got {ema_epochs}.")
    steps = int(train_batches.cardinality())
    if not ema_epochs or steps <= 0:
        return None
    return 1.0 - 1.0 / max(ema_epochs * steps, 1.0)


def _first_stage_batches(model, train_batches, val_batches, batch_size, cache_bytes, shared):
    """`(train, val, pooled, note)`: the batches the wide path reads with `wide_image`.

    The maps cached for both stages (`share_feature_maps`) when they can be,
    else the pooled features cached alone (`pooled_batches`) when they fit,
    else the batches as they are (`pooled` False); `note` says which.
    """
    datasets = [train_batches, val_batches]
    cache = share_feature_maps(model, *datasets, batch_size, cache_bytes, shared)
    if cache is not None:
        note = (
            "The frozen backbone's feature maps are computed once and cached for both "
            "stages: this one reads their pooled features, the next the maps."
        )
        return cache.pooled("train", shuffle=True), cache.pooled("val"), True, note
    size = pooled_cache_bytes(model, datasets, batch_size)
    note = _cache_note(size, cache_bytes)
    if size is None or size > cache_bytes:
        return train_batches, val_batches, False, note
    train_batches = pooled_batches(train_batches, model, batch_size, shuffle=True)
    return train_batches, pooled_batches(val_batches, model, batch_size), True, note


def freeze_wide(model):
    """Makes the wide path's layers non-trainable (compile afterwards)."""
    for name in model.wide_layer_names():
        model.get_layer(name).trainable = False


def adapt_wide_image(model, batches, pooled=False):
    """Sets every `WideImageLogits`' mean and variance from one pass over `batches`' images.

    The features are the image encoder's pooled feature map of the images as
    they are (no augmentation); rows without an image are left out. With
    `pooled`, the batches already hold them (`pooled_batches`).
    """
    encoder = model.image_encoder

    @tf.function
    def pool(images):
        return encoder(images, return_pooled=True)[1]

    def features():
        for batch in batches:
            present = batch[0]["image_present"].numpy() > 0.5
            if present.any():
                if pooled:
                    yield batch[0][POOLED_FEATURES].numpy()[present]
                else:
                    yield pool(batch[0]["image"]).numpy()[present]

    layers = [model.get_layer(f"{name}_wide_image") for name in model.head_names]
    layers[0].adapt(features())
    for layer in layers[1:]:
        layer.mean.assign(layers[0].mean)
        layer.variance.assign(layers[0].variance)


def pooled_batches(batches, model, batch_size, shuffle=False):
    """`batches` with each image replaced by the frozen encoder's pooled features, cached.

    The encoder runs over the images once, batched, in the first pass; from
    then on the rows (`token_ids`, `POOLED_FEATURES`, `image_present`, the
    labels and any sample weights) come from memory, reshuffled every pass
    with `shuffle`, in batches of `batch_size`. The images are not augmented,
    as in `wide_model()`.

    Args:
        batches: tf.data.Dataset of `(features, labels[, sample_weights])`.
        model: `MultimodalClassifier` with `wide_image`.
        batch_size: int. Rows per batch of `batches` (all but the last), and
            of the result. `batches` must have a known cardinality.
        shuffle: bool. Reshuffle the rows every pass (training batches).

    Example:
    >>> train = pooled_batches(train_batches, model, 32, shuffle=True)  # doctest: +SKIP
    >>> model.wide_model(pooled_features=True).fit(train, epochs=10)  # doctest: +SKIP
    """
    encoder = model.image_encoder

    def pool(features):
        feature_map = encoder.feature_map(features["image"], training=False)
        return {
            "token_ids": features["token_ids"],
            POOLED_FEATURES: encoder.pool_feature_map(feature_map),
            "image_present": features["image_present"],
        }

    return cached_rows(batches, pool, batch_size, shuffle)


def _cache_note(size, cache_bytes):
    """What the first stage does with the backbone's pooled features, for `verbose` runs."""
    if size is None:
        return (
            "The backbone's pooled features are recomputed every epoch (no cache under a "
            "tf.distribute strategy or for datasets of unknown length)."
        )
    megabytes = f"{size / 2**20:.0f} MB"
    if size <= cache_bytes:
        return f"The backbone's pooled features are computed once and cached ({megabytes})."
    return (
        f"The backbone's pooled features are recomputed every epoch: their {megabytes} do "
        f"not fit in data.cache_decoded_images_mb ({cache_bytes / 2**20:.0f} MB)."
    )


def _wide_features(batches, model, pooled=False):
    names = ["token_ids"]
    if model.wide_image:
        names += [POOLED_FEATURES if pooled else "image", "image_present"]

    def select(features, *rest):
        return ({name: features[name] for name in names}, *rest)

    return batches.map(select, num_parallel_calls=tf.data.AUTOTUNE)
