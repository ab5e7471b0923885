"""Sharded TFRecords of raw samples: `prepare` writes them, training streams them."""

import json
from pathlib import Path

import tensorflow as tf

from multimodal_tf.errors import DataError
from multimodal_tf.files import write_text_atomically

META_FILE = "prepared.json"
_FEATURES = {
    "id": tf.io.FixedLenFeature([], tf.string),
    "text": tf.io.FixedLenFeature([], tf.string),
    "image": tf.io.FixedLenFeature([], tf.string),
    "label": tf.io.FixedLenFeature([], tf.string, default_value=""),
}


def write_tfrecords(splits, output_dir, num_shards=8, source="", multi_label=False):
    """Writes each split as `num_shards` TFRecord files of raw samples.

    Each record holds the id, the raw text, the image file's encoded bytes
    (not decoded pixels: smaller, and decoded by the same in-graph decoder as
    everything else) and the label. Samples are dealt round-robin, so shards
    have equal sizes and the same class mix. Files are read one at a time.

    Args:
        splits: dict. `{"train": [Record, ...], "val": [...], "test": [...]}`.
        output_dir: str or Path. Created; must not already hold a prepared set.
        num_shards: int. Files per split (at least one per training worker).
        source: str. Recorded in `prepared.json`.
        multi_label: bool. Whether the labels are `|`-separated sets; recorded
            in `prepared.json` so training reads them the way they were checked.

    Returns:
        Path of the written `prepared.json`.

    Example:
    >>> write_tfrecords(split_records(read_manifest("m.csv")), "data/prepared")  # doctest: +SKIP
    """
    output_dir = Path(output_dir)
    if (output_dir / META_FILE).exists():
        raise DataError(f"{output_dir} already holds a prepared dataset; pick a new folder.")
    output_dir.mkdir(parents=True, exist_ok=True)
    meta = {
        "source": str(source),
        "num_shards": num_shards,
        "multi_label": bool(multi_label),
        "splits": {},
    }
    for split, records in splits.items():
        if not records:
            continue
        shards = min(num_shards, len(records))
        names = [f"{split}-{i:05d}-of-{shards:05d}.tfrecord" for i in range(shards)]
        writers = [tf.io.TFRecordWriter(str(output_dir / name)) for name in names]
        try:
            for index, record in enumerate(records):
                writers[index % shards].write(_example(record).SerializeToString())
        finally:
            for writer in writers:
                writer.close()
        labels = sorted({record.label for record in records if record.label is not None})
        meta["splits"][split] = {"files": names, "num_samples": len(records), "labels": labels}
    path = output_dir / META_FILE
    write_text_atomically(path, json.dumps(meta, indent=2) + "\n")
    return path


def read_prepared(folder):
    """Reads `prepared.json` of a folder written by `write_tfrecords` (or None if absent)."""
    path = Path(folder) / META_FILE
    if not path.is_file():
        return None
    meta = json.loads(path.read_text(encoding="utf-8"))
    meta["folder"] = str(Path(folder))
    return meta


def raw_dataset(meta, split, shuffle=False, seed=None, num_shards=1, shard_index=0):
    """Raw samples of one split: `{"id", "text", "image" (bytes), "label"}`.

    Files are interleaved in parallel. For multi-worker training, each worker
    reads every `num_shards`-th file (`shard_index`); under a
    `tf.distribute` strategy the FILE auto-shard policy does the same.

    Args:
        meta: dict. From `read_prepared`.
        split: str. `train`, `val` or `test`.
        shuffle: bool. Shuffle file order and samples (training).
        seed: int or None. Shuffle seed.
        num_shards: int. Training workers reading this split.
        shard_index: int. This worker's index.
    """
    if split not in meta["splits"]:
        raise DataError(f"{meta['folder']} has no {split!r} split.")
    files = [str(Path(meta["folder"]) / name) for name in meta["splits"][split]["files"]]
    if num_shards > len(files):
        raise DataError(
            f"{len(files)} file(s) in split {split!r} cannot be shared by {num_shards} workers; "
            "run prepare with more --shards."
        )
    dataset = tf.data.Dataset.from_tensor_slices(files)
    if num_shards > 1:
        dataset = dataset.shard(num_shards, shard_index)
    if shuffle:
        dataset = dataset.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.interleave(
        tf.data.TFRecordDataset,
        cycle_length=min(len(files), 8),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=not shuffle,
    )
    if shuffle:
        dataset = dataset.shuffle(4096, seed=seed, reshuffle_each_iteration=True)
    if num_shards == 1:
        # Keras can then size epochs and progress bars without a first full pass.
        num_samples = meta["splits"][split]["num_samples"]
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(num_samples))
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.FILE
    dataset = dataset.with_options(options)
    return dataset.map(
        lambda serialized: tf.io.parse_single_example(serialized, _FEATURES),
        num_parallel_calls=tf.data.AUTOTUNE,
    )


def _example(record):
    def feature(value):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    return tf.train.Example(
        features=tf.train.Features(
            feature={
                "id": feature(record.id.encode("utf-8")),
                "text": feature(record.text.encode("utf-8")),
                "image": feature(Path(record.image).read_bytes() if record.image else b""),
                "label": feature((record.label or "").encode("utf-8")),
            }
        )
    )
