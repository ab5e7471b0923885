"""Manifest records -> a streaming `tf.data.Dataset` of preprocessed batches."""

import tensorflow as tf

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
    if not records:
        raise DataError("Cannot build a dataset from zero records.")
    texts = [record.text for record in records]
    paths = [record.image for record in records]
    columns = {"text": texts, "image_path": paths}
    if class_names is not None:
        columns["label"] = _label_ids(records, class_names)
    dataset = tf.data.Dataset.from_tensor_slices(columns)
    if shuffle:
        dataset = dataset.shuffle(len(records), seed=seed, reshuffle_each_iteration=True)
    num_classes = len(class_names) if class_names is not None else 0

    def load(sample):
        raw = {"text": sample["text"], "image": tf.io.read_file(sample["image_path"])}
        features = preprocessor(raw)
        if "label" not in sample:
            return features
        return features, tf.one_hot(sample["label"], num_classes)

    dataset = dataset.map(load, num_parallel_calls=AUTOTUNE)
    return dataset.batch(batch_size).prefetch(AUTOTUNE)


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
