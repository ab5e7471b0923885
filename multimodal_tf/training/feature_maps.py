"""The second stage over cached feature maps, when the image encoder's map never changes.

A frozen pretrained backbone without image augmentation gives every image the
same feature map in every epoch, and running it is most of an epoch's work
(MobileNetV2 0.35 at 128 px on MVSA-Single, 2 cores: 10.9 s an epoch without
the cache, 7.4 s with it, computing the maps included; docs/defaults.md, "Speed").
`fit_second_stage`
computes the maps once, keeps them in memory with the other inputs, and fits
`model.feature_map_model()`, which shares every weight that trains with the
model; the checkpoint and the backup save the model itself. When the first
stage reads the backbone's pooled features (`model.wide_image`), it caches the
maps instead (`FeatureMapCache`) and hands them on: one backbone pass a run.
"""

import math

import tensorflow as tf

from multimodal_tf.models.feature_map_model import FEATURE_MAP
from multimodal_tf.models.wide_model import POOLED_FEATURES
from multimodal_tf.training.callbacks import SavesModelToSave


def fit_second_stage(
    model,
    train_batches,
    val_batches,
    callbacks,
    epochs,
    class_weight=None,
    initial_epoch=0,
    batch_size=None,
    cache_bytes=0,
    verbose=0,
    shared=None,
):
    """`model.fit` on the batches, over cached feature maps where that gives the same model.

    The maps are cached (a `FeatureMapCache`) when `caches_feature_maps(model)`
    holds, both datasets' lengths are known, the model was built without a
    `tf.distribute` strategy and they fit in `cache_bytes`; the training rows
    are reshuffled every epoch. Each call computes its own maps (an
    ensemble's members each once).
    Otherwise this is `model.fit(...)`, the encoder running over every batch.
    If the first stage left a `FeatureMapCache` in `shared["cache"]`
    (`share_feature_maps`), its maps are used and not computed again.

    Args:
        model: compiled `MultimodalClassifier`.
        train_batches: tf.data.Dataset of `(features, labels[, sample_weights])`
            batches of `batch_size` rows, reshuffling itself every epoch.
        val_batches: tf.data.Dataset. Selection data, as `train_batches`.
        callbacks: list of Keras callbacks; those that are `SavesModelToSave`
            (`AtomicModelCheckpoint`, `AtomicBackupAndRestore`) save and
            restore `model`.
        epochs: int.
        class_weight: dict or None. Keras `class_weight`.
        initial_epoch: int. Epochs a resumed run has done.
        batch_size: int or None. Rows per batch of both datasets; None: no cache.
        cache_bytes: int. Memory the cached maps of both splits may take.
        verbose: int. Keras `fit` verbosity; > 0 also says what is cached.
        shared: dict or None. What `fit_wide_first` got as `shared`.

    Returns:
        The Keras `History`.

    Example:
    >>> fit_second_stage(model, train, val, callbacks, epochs=30,  # doctest: +SKIP
    ...                  batch_size=32, cache_bytes=2**30)
    """
    cache = (shared or {}).get("cache")
    if cache is not None:
        if verbose:
            print("The rest of the training reads the feature maps cached in the first stage.")
    elif caches_feature_maps(model):
        size = feature_map_cache_bytes(model, [train_batches, val_batches], batch_size)
        if verbose:
            print(_cache_note(size, cache_bytes))
        if size is not None and size <= cache_bytes:
            cache = FeatureMapCache(model, train_batches, val_batches, batch_size)
    fitted = model
    if cache is not None:
        fitted = model.feature_map_model()
        if not model.optimizer.built:  # its slots follow the model's variables
            model.optimizer.build(model.trainable_variables)
        fitted.compile(
            optimizer=model.optimizer,
            loss=model.loss,
            metrics=model.default_metrics(),
            jit_compile=model.jit_compile,
        )
        for callback in callbacks:
            if isinstance(callback, SavesModelToSave):
                callback.model_to_save = model
        train_batches, val_batches = cache.maps("train", shuffle=True), cache.maps("val")
    return fitted.fit(
        train_batches,
        validation_data=val_batches,
        class_weight=class_weight,
        epochs=epochs,
        initial_epoch=initial_epoch,
        callbacks=callbacks,
        verbose=verbose,
        shuffle=False,  # the datasets reshuffle themselves every epoch
    )


def caches_feature_maps(model):
    """True if the model's image feature maps are the same in every epoch.

    That is a `MultimodalClassifier` with images, an encoder whose
    `frozen_feature_map` is True (a frozen pretrained backbone) and no image
    augmentation.
    """
    encoder = getattr(model, "image_encoder", None)
    return encoder is not None and encoder.frozen_feature_map and not model.image_augmentation


def _to_map(model):
    """A batch's features -> what `feature_map_model()` takes, the image as its feature map."""
    encoder = model.image_encoder
    # Every feature but the image: token ids and/or raw text (a KerasHub encoder), image_present.
    names = [name for name in model.input_names_used if name != "image"]

    def to_map(features):
        kept = {name: features[name] for name in names}
        kept[FEATURE_MAP] = encoder.feature_map(features["image"], training=False)
        return kept

    return to_map


def cached_rows(batches, transform, batch_size, shuffle=False, parallel=tf.data.AUTOTUNE):
    """`batches` with `transform` applied to each batch's features once, then cached.

    `transform` runs over the batches in the first pass, on several batches
    at once (tf.data runs each on one thread; in order); from then on the
    rows come from memory, reshuffled every pass with `shuffle`, in batches
    of `batch_size`, as many as `batches` has (Keras then knows an epoch's
    length). `cache_rows` then `batch_rows`.

    Args:
        batches: tf.data.Dataset of `(features, labels[, sample_weights])`
            with a known number of batches.
        transform: callable. A batch's features dict -> the dict to keep.
        batch_size: int. Rows per batch of `batches` (all but the last).
        shuffle: bool. Reshuffle the rows every pass.
        parallel: int or None. `num_parallel_calls` of the transform; None:
            one batch at a time.

    Example:
    >>> rows = cached_rows(batches, lambda f: {"token_ids": f["token_ids"]}, 32)  # doctest: +SKIP
    """
    return batch_rows(*cache_rows(batches, transform, parallel), batch_size, shuffle)


def cache_rows(batches, transform, parallel=tf.data.AUTOTUNE):
    """`(rows, count)`: `batches`' rows, `transform`ed and cached; `count` is its batches.

    The cache fills in the first complete pass over `rows` (or a dataset
    built on it); every dataset built on `rows` reads the same cache.
    """
    count = int(batches.cardinality())
    if count < 0:
        raise ValueError("Caching rows needs batches whose number is known (cardinality).")
    rows = batches.map(
        lambda features, *rest: (transform(features), *rest), num_parallel_calls=parallel
    )
    return rows.unbatch().cache(), count


def batch_rows(rows, count, batch_size, shuffle=False):
    """`cache_rows`' rows in `count` batches of `batch_size`; `shuffle`: a new order every pass."""
    if shuffle:
        rows = rows.shuffle(count * batch_size, reshuffle_each_iteration=True)
    rows = rows.batch(batch_size).apply(tf.data.experimental.assert_cardinality(count))
    return rows.prefetch(tf.data.AUTOTUNE)


class FeatureMapCache:
    """A frozen backbone's feature maps of one run's train and val rows, for both stages.

    `train()`'s first stage (`fit_wide_first` with `model.wide_image`) reads
    the maps' pooled features (`pooled`), its second stage
    (`fit_second_stage`) the maps (`maps`). Both come from one pass of the
    backbone over the images, in the first stage's first epoch, instead of
    one pass each. Made by `share_feature_maps`.

    Args:
        model: `MultimodalClassifier` with `caches_feature_maps(model)`.
        train_batches: tf.data.Dataset. Training batches of `batch_size`
            rows, with a known number of batches.
        val_batches: tf.data.Dataset. Selection batches, likewise.
        batch_size: int.

    Example:
    >>> cache = FeatureMapCache(model, train, val, 32)  # doctest: +SKIP
    >>> cache.pooled("train", shuffle=True)  # first stage; computes the maps  # doctest: +SKIP
    >>> cache.maps("train", shuffle=True)  # second stage; from memory  # doctest: +SKIP
    """

    def __init__(self, model, train_batches, val_batches, batch_size):
        self.batch_size = batch_size
        to_map = _to_map(model)
        self._maps = {
            split: cache_rows(batches, to_map)
            for split, batches in (("train", train_batches), ("val", val_batches))
        }
        pool = model.image_encoder.pool_feature_map

        def pooled(features, *rest):
            kept = {name: value for name, value in features.items() if name != FEATURE_MAP}
            kept[POOLED_FEATURES] = pool(features[FEATURE_MAP][None])[0]
            return (kept, *rest)

        self._pooled = {
            split: (rows.map(pooled).cache(), count) for split, (rows, count) in self._maps.items()
        }

    def maps(self, split, shuffle=False):
        """`split`'s batches with the map as `FEATURE_MAP` (what `feature_map_model()` takes)."""
        return batch_rows(*self._maps[split], self.batch_size, shuffle)

    def pooled(self, split, shuffle=False):
        """`split`'s batches with the pooled map as `POOLED_FEATURES` (`pooled_batches`)."""
        return batch_rows(*self._pooled[split], self.batch_size, shuffle)


def share_feature_maps(model, train_batches, val_batches, batch_size, cache_bytes, shared):
    """A `FeatureMapCache` for both stages, kept in `shared["cache"]`, or None if none fits.

    None when `shared` is None, the maps do not stay the same from epoch to
    epoch (`caches_feature_maps`), they cannot be cached (`cache_bytes_for`),
    or the maps and their pooled features do not fit in `cache_bytes`
    together.
    """
    if shared is None or not caches_feature_maps(model):
        return None
    datasets = [train_batches, val_batches]
    size = feature_map_cache_bytes(model, datasets, batch_size)
    if size is None or size + pooled_cache_bytes(model, datasets, batch_size) > cache_bytes:
        return None
    shared["cache"] = FeatureMapCache(model, train_batches, val_batches, batch_size)
    return shared["cache"]


def pooled_cache_bytes(model, datasets, batch_size):
    """At most the memory `pooled_batches` of `datasets` hold; None if they cannot be cached."""
    row = 4 * (model.preprocessor.sequence_length + model.image_encoder.pooled_dim + 1)
    return cache_bytes_for(model, datasets, batch_size, row)


def feature_map_cache_bytes(model, datasets, batch_size):
    """At most the memory the cached maps of `datasets` hold; None if they cannot be cached.

    None when they cannot be cached (`cache_bytes_for`).
    """
    per_row = math.prod(model.image_encoder.feature_map_shape) + 1  # + image_present
    if "text" in model.modalities:
        per_row += model.preprocessor.sequence_length
    return cache_bytes_for(model, datasets, batch_size, 4 * per_row)


def cache_bytes_for(model, datasets, batch_size, row_bytes):
    """`row_bytes` times the rows of `datasets` (batches of `batch_size`), or None.

    None when the rows cannot be cached: for a model built, or fit, under a
    `tf.distribute` strategy (`train()` fits outside the strategy's scope, so
    the model is asked too), without `batch_size`, or for a dataset of unknown
    or infinite length.
    """
    plain = tf.distribute.get_strategy()  # the default one, outside any scope
    under_strategy = tf.distribute.has_strategy() or model.distribute_strategy is not plain
    if not batch_size or under_strategy:
        return None
    counts = [int(dataset.cardinality()) for dataset in datasets]
    if min(counts) < 0:
        return None
    return sum(counts) * batch_size * row_bytes


def _cache_note(size, cache_bytes):
    """What the second stage does with the feature maps, for `verbose` runs."""
    if size is None:
        return (
            "The frozen backbone runs over every batch of the rest of the training (no "
            "cache under a tf.distribute strategy or for datasets of unknown length)."
        )
    megabytes = f"{size / 2**20:.0f} MB"
    if size <= cache_bytes:
        return (
            f"The frozen backbone's feature maps are computed once and cached ({megabytes}) "
            "for the rest of the training."
        )
    return (
        f"The frozen backbone runs over every batch of the rest of the training: its "
        f"feature maps ({megabytes}) do not fit in data.cache_decoded_images_mb "
        f"({cache_bytes / 2**20:.0f} MB)."
    )
