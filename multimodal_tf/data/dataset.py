"""Manifest records -> a streaming `tf.data.Dataset` of preprocessed batches."""

import weakref

import numpy as np
import tensorflow as tf

from multimodal_tf.data.labels import SEPARATOR, labels_of
from multimodal_tf.data.tfrecords import raw_dataset
from multimodal_tf.errors import DataError

AUTOTUNE = tf.data.AUTOTUNE
# Datasets built on one preprocessor share its traced graph (`shared_preprocess`).
_SHARED = weakref.WeakKeyDictionary()


def make_dataset(
    records,
    preprocessor,
    class_names=None,
    batch_size=32,
    shuffle=False,
    seed=None,
    multi_label=False,
    cache=False,
    text_only=False,
):
    """Streams records through the preprocessor: `(features, one_hot_label)` batches.

    Only paths and texts are held in memory; image files are read and decoded
    in parallel `tf.data` maps, by the same `MultimodalPreprocessor` that the
    exported SavedModel runs on request tensors. With `cache=True` the
    preprocessed samples (decoded, resized images) are kept in memory after
    the first pass and shuffled from there: for small datasets, where decoding
    every JPEG again each epoch costs more than the model
    (`decoded_cache_bytes` estimates the size; `train` decides with
    `data.cache_decoded_images_mb`). Random augmentation runs in the model,
    so it still differs every epoch.

    Args:
        records: list of `Record`.
        preprocessor: `MultimodalPreprocessor`. Adapted on the training split.
        class_names: list of str or None. With names, batches carry one-hot
            labels; without, they carry features only (for prediction).
        batch_size: int. Samples per batch.
        shuffle: bool. Reshuffle every epoch (training).
        seed: int or None. Shuffle seed.
        multi_label: bool. Labels are `|`-separated sets (`"joy|surprise"`)
            and batches carry multi-hot float vectors instead of one-hot.
        cache: bool. Keep preprocessed samples in memory after the first epoch.
        text_only: bool. Features are `{"token_ids"}` only: no image file is
            read or decoded (for a model that reads only the text).

    Example:
    >>> dataset = make_dataset(splits["train"], model.preprocessor,  # doctest: +SKIP
    ...                        model.class_names, shuffle=True)
    >>> model.fit(dataset, epochs=3)  # doctest: +SKIP
    """
    num_classes = len(class_names or ())
    if not cache:
        samples = read_records(records, class_names, shuffle, seed, multi_label, text_only)
        return to_batches(samples, preprocessor, num_classes, batch_size)
    samples = read_records(records, class_names, multi_label=multi_label, text_only=text_only)
    shuffle_size = len(records) if shuffle else None
    return cached_batches(samples, preprocessor, num_classes, batch_size, shuffle_size, seed)


def from_memory(dataset):
    """`dataset` with tf.data's autotuning off, for a pipeline over rows cached in memory.

    After the first pass there is nothing left to tune (the rows come from
    `cache()`, then shuffle, batch and prefetch), and the autotuning thread
    costs time: Keras makes a new iterator every epoch, and destroying the
    previous one waits for that thread. On MVSA-Single that wait was about 3 s
    at the start of half the epochs of the default model (6.4 s epochs, 9.5 s
    with the wait; docs/defaults.md, "Speed"). The first pass, which fills
    the cache, measured no slower without it.

    Args:
        dataset: tf.data.Dataset reading cached rows.

    Returns:
        The same dataset with `tf.data.Options().autotune.enabled = False`.

    Example:
    >>> batches = from_memory(rows.cache().shuffle(1000).batch(32).prefetch(-1))  # doctest: +SKIP
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


def decoded_cache_bytes(num_records, preprocessor, text_only=False):
    """Memory that `make_dataset(..., cache=True)` holds for `num_records` samples."""
    height, width = (0, 0) if text_only else preprocessor.image_size
    per_sample = height * width * 3 * 4 + (preprocessor.sequence_length or 0) * 4 + 64
    return num_records * per_sample


def read_records(
    records, class_names=None, shuffle=False, seed=None, multi_label=False, text_only=False
):
    """Raw samples `{"text", "image" (encoded bytes)[, "label"]}`, files read in parallel.

    The one place manifest rows become a stream: `make_dataset` preprocesses
    it for Keras, and batch prediction feeds it to an exported SavedModel,
    which preprocesses inside its graph.

    Args:
        records: list of `Record`.
        class_names: list of str or None. With names, samples carry label ids
            (multi-label: multi-hot float vectors).
        shuffle: bool. Reshuffle every epoch.
        seed: int or None. Shuffle seed.
        multi_label: bool. Labels are `|`-separated sets.
        text_only: bool. Samples have no `"image"`: no file is read.
    """
    if not records:
        raise DataError("Cannot build a dataset from zero records.")
    columns = {"text": [record.text for record in records]}
    if not text_only:
        columns["image_path"] = [record.image or "" for record in records]
    if class_names is not None:
        columns["label"] = _label_ids(records, class_names, multi_label)
    dataset = tf.data.Dataset.from_tensor_slices(columns)
    if shuffle:
        dataset = dataset.shuffle(len(records), seed=seed, reshuffle_each_iteration=True)
    if text_only:
        return dataset

    def read(sample):
        sample = dict(sample)
        path = sample.pop("image_path")
        # No path: a sample without an image, which the preprocessor flags.
        sample["image"] = tf.cond(
            tf.strings.length(path) > 0, lambda: tf.io.read_file(path), lambda: tf.constant(b"")
        )
        return sample

    return dataset.map(read, num_parallel_calls=AUTOTUNE)


def make_prepared_dataset(
    meta,
    split,
    preprocessor,
    class_names,
    batch_size=32,
    shuffle=False,
    seed=None,
    num_shards=1,
    shard_index=0,
    multi_label=False,
    text_only=False,
    cache=False,
):
    """Like `make_dataset`, but streams a split written by `prepare` (sharded TFRecords).

    With `cache=True`, as in `make_dataset`, the preprocessed samples are kept
    in memory after the first pass (read in file order) and shuffled from
    there: otherwise every epoch reads and decodes the shards again, and each
    new iterator instantiates the preprocessing graph anew (~0.27 s an epoch
    and split on 2 cores, more than a small split's whole pass).

    Args:
        meta: dict. From `read_prepared(folder)`.
        split: str. `train`, `val` or `test`.
        preprocessor: `MultimodalPreprocessor`.
        class_names: list of str. Labels become one-hot vectors in this order.
        batch_size: int. Samples per batch.
        shuffle: bool. Shuffle files and samples every epoch.
        seed: int or None. Shuffle seed.
        num_shards: int. Training workers; each reads its own files.
        shard_index: int. This worker's index.
        multi_label: bool. Labels are `|`-separated sets, looked up in the
            graph and reduced to multi-hot float vectors.
        text_only: bool. Features are `{"token_ids"}` only: images are not decoded.
        cache: bool. Keep preprocessed samples in memory after the first epoch
            (`decoded_cache_bytes` estimates the size).

    Example:
    >>> meta = read_prepared("data/prepared")  # doctest: +SKIP
    >>> model.fit(make_prepared_dataset(meta, "train", model.preprocessor,  # doctest: +SKIP
    ...                                 model.class_names, shuffle=True))
    """
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(list(class_names)), tf.range(len(class_names), dtype=tf.int64)
        ),
        default_value=-1,
    )

    def label_id(sample):
        names = sample["label"]
        if multi_label:  # as `split_labels` reads a cell: split, strip, drop empty parts
            names = tf.strings.strip(tf.strings.split(names, SEPARATOR))
            names = tf.boolean_mask(names, tf.strings.length(names) > 0)
        index = table.lookup(names)
        check = tf.debugging.Assert(
            tf.reduce_all(index >= 0),
            ["unknown label", sample["label"], "in row id", sample["id"]],
        )
        with tf.control_dependencies([check]):
            label = tf.identity(index)
        if multi_label:
            # A sum of one-hot rows, capped at 1: duplicates count once, no label gives 0s.
            label = tf.minimum(tf.reduce_sum(tf.one_hot(label, len(class_names)), axis=0), 1.0)
        if text_only:
            return {"text": sample["text"], "label": label}
        return {"text": sample["text"], "image": sample["image"], "label": label}

    # A cached split is read once, in file order, and shuffled from memory.
    raw = raw_dataset(meta, split, shuffle and not cache, seed, num_shards, shard_index)
    raw = raw.map(label_id, num_parallel_calls=AUTOTUNE)
    if not cache:
        return to_batches(raw, preprocessor, len(class_names), batch_size)
    shuffle_size = meta["splits"][split]["num_samples"] if shuffle else None
    return cached_batches(raw, preprocessor, len(class_names), batch_size, shuffle_size, seed)


def to_batches(raw, preprocessor, num_classes, batch_size):
    """`{"text", "image" (bytes)[, "label"]}` samples -> preprocessed, batched, prefetched.

    A label is a class id (made one-hot here) or already a multi-hot vector.
    """
    prepare = _preparer(preprocessor, num_classes)
    return raw.map(prepare, num_parallel_calls=AUTOTUNE).batch(batch_size).prefetch(AUTOTUNE)


def cached_batches(raw, preprocessor, num_classes, batch_size, shuffle_size=None, seed=None):
    """Like `to_batches`, but preprocessed once: kept in memory after the first pass.

    Args:
        raw: tf.data.Dataset of `{"text", "image" (bytes)[, "label"]}` samples.
        preprocessor: `MultimodalPreprocessor`.
        num_classes: int. Class ids become one-hot vectors this long.
        batch_size: int. Samples per batch.
        shuffle_size: int or None. Reshuffle the cached samples every epoch
            (the split's size, for a full shuffle); None keeps their order.
        seed: int or None. Shuffle seed.
    """
    samples = raw.map(_preparer(preprocessor, num_classes), num_parallel_calls=AUTOTUNE).cache()
    if shuffle_size:
        samples = samples.shuffle(shuffle_size, seed=seed, reshuffle_each_iteration=True)
    return from_memory(samples.batch(batch_size).prefetch(AUTOTUNE))


def shared_preprocess(preprocessor):
    """`preprocessor` as one `tf.function`, traced once for all the datasets built on it.

    Every `Dataset.map` traces its function anew, and tracing the preprocessor
    (standardizer, lexicon, n-grams, image decoding: about 550 ops) took about
    0.2 s a time; a `train()` maps it over 6 to 16 datasets (splits, text-only
    variants, the first and second stages). Mapped through this function, each
    map traces a call to one cached concrete function instead. The cache is
    dropped when the preprocessor's graph state changes (`adapt()`, a new
    vocabulary, lexicon or norm table, another sequence length).

    Args:
        preprocessor: `MultimodalPreprocessor`.

    Returns:
        A callable taking the preprocessor's inputs.
    """
    state = preprocessor.graph_state()
    cached = _SHARED.get(preprocessor)
    if cached is not None and _same(cached[0], state):
        return cached[1]
    owner = weakref.ref(preprocessor)  # the cache must not keep its key alive
    function = tf.function(lambda inputs: owner()(inputs))
    _SHARED[preprocessor] = (state, function)
    return function


def _same(old, new):
    return len(old) == len(new) and all(a is b or a == b for a, b in zip(old, new, strict=True))


def _preparer(preprocessor, num_classes):
    preprocess = shared_preprocess(preprocessor)

    def prepare(sample):
        # A text-only sample has no "image": the preprocessor then makes token ids only.
        features = preprocess({key: sample[key] for key in ("text", "image") if key in sample})
        if "label" not in sample:
            return features
        labels = sample["label"]
        if labels.shape.rank == 0:
            labels = tf.one_hot(labels, num_classes)
        return features, labels

    return prepare


def _label_ids(records, class_names, multi_label=False):
    """Class ids (one per record), or for multi-label a `[records, classes]` multi-hot array."""
    index = {name: i for i, name in enumerate(class_names)}
    targets = np.zeros((len(records), len(class_names)), "float32") if multi_label else []
    for row, record in enumerate(records):
        names = labels_of(record.label, multi_label)
        unknown = [name for name in names if name not in index]
        if unknown or not names:
            what = f"unknown label {unknown[0]!r}" if unknown else f"no label in {record.label!r}"
            raise DataError(
                f"{record.where('label')}: {what}; the model "
                f"knows {', '.join(map(repr, class_names))}."
            )
        if multi_label:
            targets[row, [index[name] for name in names]] = 1.0
        else:
            targets.append(index[names[0]])
    return targets
