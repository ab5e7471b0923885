from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from multimodal_tf.data.dataset import decoded_cache_bytes, make_dataset, shared_preprocess
from multimodal_tf.data.manifest import read_manifest, split_records
from multimodal_tf.errors import DataError
from multimodal_tf.models.preprocessor import MultimodalPreprocessor


def test_batches_carry_preprocessed_features_and_one_hot_labels(tiny_manifest):
    splits = split_records(read_manifest(tiny_manifest))
    preprocessor = MultimodalPreprocessor(sequence_length=6, image_size=(16, 16))
    preprocessor.adapt([r.text for r in splits["train"]], min_frequency=1)
    dataset = make_dataset(splits["train"], preprocessor, ["cold", "warm"], batch_size=5)
    features, labels = next(iter(dataset))
    assert features["token_ids"].shape == (5, 6)
    assert features["image"].shape == (5, 16, 16, 3)
    expected = [[0, 1] if r.label == "warm" else [1, 0] for r in splits["train"][:5]]
    np.testing.assert_array_equal(labels.numpy(), expected)
    assert sum(len(batch[1]) for batch in dataset) == 16


@pytest.mark.parametrize("cache", [False, True])
def test_shuffle_changes_order_between_epochs_and_keeps_pairs(tiny_manifest, cache):
    records = split_records(read_manifest(tiny_manifest))["train"]
    preprocessor = MultimodalPreprocessor(sequence_length=6, image_size=(16, 16))
    preprocessor.adapt([r.text for r in records], min_frequency=1)
    dataset = make_dataset(
        records, preprocessor, ["cold", "warm"], batch_size=16, shuffle=True, seed=1, cache=cache
    )
    first, second = (next(iter(dataset)) for _ in range(2))
    assert not np.array_equal(first[0]["token_ids"], second[0]["token_ids"])
    for features, labels in (first, second):
        red = features["image"].numpy()[:, 12, 12, 0] > 128  # warm rows have red images
        np.testing.assert_array_equal(red, labels.numpy()[:, 1] == 1)


def test_cached_dataset_reads_each_image_once(tiny_manifest, tmp_path):
    records = split_records(read_manifest(tiny_manifest))["train"]
    preprocessor = MultimodalPreprocessor(sequence_length=6, image_size=(16, 16))
    preprocessor.adapt([r.text for r in records], min_frequency=1)
    dataset = make_dataset(records, preprocessor, ["cold", "warm"], batch_size=4, cache=True)
    first = [batch[0]["image"].numpy() for batch in dataset]
    for record in records:  # a second epoch must not need the files any more
        Path(record.image).unlink()
    second = [batch[0]["image"].numpy() for batch in dataset]
    np.testing.assert_array_equal(np.concatenate(first), np.concatenate(second))
    assert decoded_cache_bytes(1000, preprocessor) == 1000 * (16 * 16 * 3 * 4 + 6 * 4 + 64)


@pytest.mark.parametrize("cache", [False, True])
def test_only_a_cached_dataset_turns_autotuning_off(tiny_manifest, cache):
    # Over cached rows nothing is left to tune, and the autotuning thread held up each
    # new epoch's iterator (benchmarks/epoch_stalls.py); a stream keeps tuning its decode.
    records = split_records(read_manifest(tiny_manifest))["train"]
    preprocessor = MultimodalPreprocessor(sequence_length=6, image_size=(16, 16))
    preprocessor.adapt([r.text for r in records], min_frequency=1)
    dataset = make_dataset(records, preprocessor, ["cold", "warm"], shuffle=True, cache=cache)
    assert dataset.options().autotune.enabled is (False if cache else None)
    assert sum(len(batch[1]) for batch in dataset) == len(records)


def test_unknown_label_names_row_and_field(tiny_manifest):
    records = read_manifest(tiny_manifest)
    preprocessor = MultimodalPreprocessor(vocabulary=["x"])
    with pytest.raises(DataError, match=r"row 1 \(id 'r0'\), field 'label': unknown label 'warm'"):
        make_dataset(records, preprocessor, ["cold", "hot"])


@pytest.mark.parametrize("cache", [False, True])
def test_text_only_batches_read_no_image_and_match_the_full_token_ids(tiny_manifest, cache):
    records = split_records(read_manifest(tiny_manifest))["train"]
    preprocessor = MultimodalPreprocessor(sequence_length=6, image_size=(16, 16))
    preprocessor.adapt([r.text for r in records], min_frequency=1)
    full = make_dataset(records, preprocessor, ["cold", "warm"], batch_size=8)
    expected = [(f["token_ids"].numpy(), labels.numpy()) for f, labels in full]
    for record in records:  # a text-only pipeline must not open any image
        Path(record.image).unlink()
    text_only = make_dataset(
        records, preprocessor, ["cold", "warm"], batch_size=8, cache=cache, text_only=True
    )
    batches = [(f, labels.numpy()) for f, labels in text_only]
    assert all(set(features) == {"token_ids"} for features, _ in batches)
    for (ids, labels), (features, got) in zip(expected, batches, strict=True):
        np.testing.assert_array_equal(features["token_ids"].numpy(), ids)
        np.testing.assert_array_equal(got, labels)
    assert decoded_cache_bytes(1000, preprocessor, text_only=True) == 1000 * (6 * 4 + 64)


def test_datasets_share_one_trace_until_the_preprocessor_changes(tiny_manifest):
    records = read_manifest(tiny_manifest)
    preprocessor = MultimodalPreprocessor(sequence_length=4, image_size=(8, 8))
    preprocessor.adapt(["warm red"], min_frequency=1)
    first = shared_preprocess(preprocessor)
    assert shared_preprocess(preprocessor) is first
    make_dataset(records, preprocessor, batch_size=4)
    assert shared_preprocess(preprocessor) is first
    # A new vocabulary is a new lookup table: the old trace would give the old ids.
    preprocessor.adapt(["cold blue", "cold"], min_frequency=1)
    assert shared_preprocess(preprocessor) is not first
    batch = next(iter(make_dataset(records[:1], preprocessor, batch_size=1)))
    expected = preprocessor({"text": tf.constant([records[0].text])})["token_ids"]
    np.testing.assert_array_equal(batch["token_ids"], expected)
