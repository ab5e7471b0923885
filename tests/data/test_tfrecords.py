import json

import numpy as np
import pytest

from multimodal_tf.cli import main
from multimodal_tf.data.manifest import read_manifest
from multimodal_tf.data.tfrecords import raw_dataset, read_prepared
from multimodal_tf.errors import DataError
from multimodal_tf.training.fit import train


@pytest.fixture
def prepared(tiny_manifest, tmp_path):
    output = tmp_path / "prepared"
    assert (
        main(
            ["prepare", "--manifest", str(tiny_manifest), "--output", str(output), "--shards", "4"]
        )
        == 0
    )
    return read_prepared(output)


@pytest.fixture
def preprocessor():
    from multimodal_tf.models.preprocessor import MultimodalPreprocessor

    preprocessor = MultimodalPreprocessor(sequence_length=6, image_size=(16, 16))
    preprocessor.adapt(["sunny warm fire", "icy cold snow"], min_frequency=1)
    return preprocessor


def ids(dataset):
    return sorted(sample["id"].decode() for sample in dataset.as_numpy_iterator())


def test_prepare_writes_every_usable_row_once_in_its_split(prepared, tiny_manifest):
    records = read_manifest(tiny_manifest)
    for split, size, files in (("train", 16, 4), ("val", 4, 4), ("test", 4, 4)):
        info = prepared["splits"][split]
        assert info["num_samples"] == size and len(info["files"]) == files
        assert ids(raw_dataset(prepared, split)) == sorted(
            r.id for r in records if r.split == split
        )
    sample = next(raw_dataset(prepared, "train").as_numpy_iterator())
    record = next(r for r in records if r.id == sample["id"].decode())
    assert sample["image"] == open(record.image, "rb").read()  # raw bytes, not pixels
    assert sample["text"].decode() == record.text and sample["label"].decode() == record.label


def test_two_workers_read_disjoint_files_covering_the_split(prepared):
    first = ids(raw_dataset(prepared, "train", num_shards=2, shard_index=0))
    second = ids(raw_dataset(prepared, "train", num_shards=2, shard_index=1))
    assert len(first) == len(second) == 8
    assert not set(first) & set(second)
    assert sorted(first + second) == ids(raw_dataset(prepared, "train"))
    with pytest.raises(DataError, match="more --shards"):
        raw_dataset(prepared, "train", num_shards=5)


def test_shuffled_reading_changes_order_not_content(prepared):
    dataset = raw_dataset(prepared, "train", shuffle=True, seed=3)
    first = [s["id"] for s in dataset.as_numpy_iterator()]
    second = [s["id"] for s in dataset.as_numpy_iterator()]
    assert sorted(first) == sorted(second) and first != second


def test_training_on_the_prepared_folder_matches_the_manifest_setup(
    prepared, tiny_manifest, tiny_config, tmp_path
):
    from_records = train(tiny_manifest, tiny_config, tmp_path / "a", verbose=0)
    from_shards = train(prepared["folder"], tiny_config, tmp_path / "b", verbose=0)
    assert from_shards.model.preprocessor.vocabulary == from_records.model.preprocessor.vocabulary
    assert from_shards.model.class_names == from_records.model.class_names
    metrics = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert metrics["num_train"] == 16 and metrics["test"]["num_samples"] == 4
    assert metrics["data"]["samples"] == {"train": 16, "val": 4, "test": 4}


def test_a_cached_prepared_split_holds_the_streamed_samples_and_reshuffles(prepared, preprocessor):
    from multimodal_tf.data.dataset import make_prepared_dataset

    names = ["cold", "warm"]

    def rows(dataset):
        """Each sample as bytes of its features and label, in the order read."""
        out = []
        for features, labels in dataset.as_numpy_iterator():
            for index in range(len(labels)):
                parts = [features[key][index].tobytes() for key in sorted(features)]
                out.append(b"|".join(parts + [labels[index].tobytes()]))
        return out

    streamed = make_prepared_dataset(prepared, "train", preprocessor, names, batch_size=4)
    cached = make_prepared_dataset(
        prepared, "train", preprocessor, names, batch_size=4, shuffle=True, seed=1, cache=True
    )
    first, second = rows(cached), rows(cached)
    assert sorted(first) == sorted(second) == sorted(rows(streamed))
    assert len(first) == 16 and first != second  # every sample once, a new order each epoch
    assert int(cached.cardinality()) == 4


def test_training_on_a_prepared_folder_caches_the_splits_that_fit(
    prepared, preprocessor, tiny_config
):
    from multimodal_tf.data.source import TrainingData

    cached = {}
    for budget in (0, 64):
        tiny_config.data.cache_decoded_images_mb = budget
        source = TrainingData.load(prepared["folder"], tiny_config.data, None, verbose=False)
        dataset = source.dataset("train", preprocessor, ["cold", "warm"], 8, shuffle=True)
        # `from_memory` turns tf.data's autotuning off for rows read from the cache.
        cached[budget] = dataset.options().autotune.enabled is False
    assert cached == {0: False, 64: True}


def test_prepare_refuses_to_overwrite(prepared, tiny_manifest, capsys):
    code = main(["prepare", "--manifest", str(tiny_manifest), "--output", prepared["folder"]])
    assert code == 2 and "already holds a prepared dataset" in capsys.readouterr().err


def test_text_only_prepared_batches_carry_token_ids_and_labels(prepared, preprocessor):
    from multimodal_tf.data.dataset import make_prepared_dataset

    names = ["cold", "warm"]
    full = make_prepared_dataset(prepared, "train", preprocessor, names, batch_size=32)
    text = make_prepared_dataset(
        prepared, "train", preprocessor, names, batch_size=32, text_only=True
    )
    (full_features, full_labels), (features, labels) = next(iter(full)), next(iter(text))
    assert set(features) == {"token_ids"}
    np.testing.assert_array_equal(features["token_ids"], full_features["token_ids"])
    np.testing.assert_array_equal(labels, full_labels)
