"""Manifest records -> a streaming `tf.data.Dataset` of preprocessed batches."""

import concurrent.futures

import tensorflow as tf

from multimodal_tf.errors import DataError
from multimodal_tf.models.preprocessor import MultimodalPreprocessor

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


def check_images(records, manifest=None, workers=8):
    """Decodes every image once with the training decoder; lists every failure.

    Training would otherwise stop mid-epoch on an unreadable image with a
    TensorFlow error that names neither the file nor the row.

    Args:
        records: list of `Record`.
        manifest: str or None. Named in the error message.
        workers: int. Images decoded at once.

    Raises:
        DataError: naming the row, the field and the file of each failure.
    """
    decoder = MultimodalPreprocessor(image_size=(8, 8)).image_decoder

    def problem(record):
        try:
            decoder.decode_one(tf.io.read_file(record.image))
        except (tf.errors.OpError, ValueError) as error:
            reason = getattr(error, "message", str(error)).strip().splitlines()[0]
            return (
                f"{record.where('image', manifest)}: cannot decode {record.image} as "
                f"JPEG, PNG, GIF or BMP ({reason})"
            )
        return None

    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        problems = [p for p in pool.map(problem, records) if p]
    if problems:
        shown = "\n".join(f"  - {p}" for p in problems[:20])
        more = f"\n  ... and {len(problems) - 20} more." if len(problems) > 20 else ""
        raise DataError(f"{len(problems)} unreadable image(s):\n{shown}{more}")


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
