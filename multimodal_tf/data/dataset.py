"""Manifest records -> a streaming `tf.data.Dataset` of preprocessed batches."""

import tensorflow as tf

from multimodal_tf.data.tfrecords import raw_dataset
from multimodal_tf.errors import DataError

AUTOTUNE = tf.data.AUTOTUNE


def make_dataset(
    records,
    preprocessor,
    class_names=None,
    batch_size=32,
    shuffle=False,
    seed=None,
):
    """Streams records through the preprocessor: `(features, one_hot_label)` batches.

    Only paths and texts are held in memory; image files are read and decoded
    in parallel `tf.data` maps, by the same `MultimodalPreprocessor` that the
    exported SavedModel runs on request tensors.

    Args:
        records: list of `Record`.
        preprocessor: `MultimodalPreprocessor`. Adapted on the training split.
        class_names: list of str or None. With names, batches carry one-hot
            labels; without, they carry features only (for prediction).
        batch_size: int. Samples per batch.
        shuffle: bool. Reshuffle every epoch (training).
        seed: int or None. Shuffle seed.

    Example:
    >>> dataset = make_dataset(splits["train"], model.preprocessor,  # doctest: +SKIP
    ...                        model.class_names, shuffle=True)
    >>> model.fit(dataset, epochs=3)  # doctest: +SKIP
    """
    samples = read_records(records, class_names, shuffle=shuffle, seed=seed)
    return to_batches(samples, preprocessor, len(class_names or ()), batch_size)


def read_records(records, class_names=None, shuffle=False, seed=None):
    """Raw samples `{"text", "image" (encoded bytes)[, "label" (id)]}`, files read in parallel.

    The one place manifest rows become a stream: `make_dataset` preprocesses
    it for Keras, and batch prediction feeds it to an exported SavedModel,
    which preprocesses inside its graph.

    Args:
        records: list of `Record`.
        class_names: list of str or None. With names, samples carry label ids.
        shuffle: bool. Reshuffle every epoch.
        seed: int or None. Shuffle seed.
    """
    if not records:
        raise DataError("Cannot build a dataset from zero records.")
    columns = {
        "text": [record.text for record in records],
        "image_path": [record.image or "" for record in records],
    }
    if class_names is not None:
        columns["label"] = _label_ids(records, class_names)
    dataset = tf.data.Dataset.from_tensor_slices(columns)
    if shuffle:
        dataset = dataset.shuffle(len(records), seed=seed, reshuffle_each_iteration=True)

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
):
    """Like `make_dataset`, but streams a split written by `prepare` (sharded TFRecords).

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
        index = table.lookup(sample["label"])
        check = tf.debugging.Assert(
            index >= 0, ["unknown label", sample["label"], "in row id", sample["id"]]
        )
        with tf.control_dependencies([check]):
            return {"text": sample["text"], "image": sample["image"], "label": tf.identity(index)}

    raw = raw_dataset(meta, split, shuffle, seed, num_shards, shard_index)
    raw = raw.map(label_id, num_parallel_calls=AUTOTUNE)
    return to_batches(raw, preprocessor, len(class_names), batch_size)


def to_batches(raw, preprocessor, num_classes, batch_size):
    """`{"text", "image" (bytes)[, "label" (id)]}` samples -> preprocessed, batched, prefetched."""

    def prepare(sample):
        features = preprocessor({"text": sample["text"], "image": sample["image"]})
        if "label" not in sample:
            return features
        return features, tf.one_hot(sample["label"], num_classes)

    return raw.map(prepare, num_parallel_calls=AUTOTUNE).batch(batch_size).prefetch(AUTOTUNE)


def _label_ids(records, class_names):
    index = {name: i for i, name in enumerate(class_names)}
    ids = []
    for record in records:
        if record.label not in index:
            raise DataError(
                f"{record.where('label')}: unknown label {record.label!r}; the model "
                f"knows {', '.join(map(repr, class_names))}."
            )
        ids.append(index[record.label])
    return ids
