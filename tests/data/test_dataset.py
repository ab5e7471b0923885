import io
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from multimodal_tf.data.dataset import decoded_cache_bytes, make_dataset, shared_preprocess
from multimodal_tf.data.manifest import read_manifest, split_records
from multimodal_tf.errors import DataError
from multimodal_tf.models.preprocessor import MultimodalPreprocessor
from tests.conftest import write_manifest
from tests.helpers import served_image_features


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
    # new epoch's iterator (docs/defaults.md, "Speed"); a stream keeps tuning its decode.
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


def noise_image(width, height, format, seed):
    """Encoded bytes of random RGB pixels: channel order and resizing show in every one."""
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=format)
    return buffer.getvalue()


def test_training_batches_hold_the_images_the_exported_model_decodes(tmp_path):
    """The `tf.data` pipeline and the SavedModel's graph decode the same bytes alike.

    Images of both formats, larger and smaller than the model's 16 x 16, and
    a row without an image: channel order, the JPEG scale, the resize and
    `image_present` must agree, streamed or cached.
    """
    from multimodal_tf.models.classifier import MultimodalClassifier
    from multimodal_tf.serving.export import export_saved_model

    files = {
        "wide.png": noise_image(40, 24, "PNG", 0),
        "photo.jpg": noise_image(64, 48, "JPEG", 1),  # libjpeg decodes it at 1/2 scale
        "small.png": noise_image(9, 13, "PNG", 2),  # enlarged
        "tall.jpg": noise_image(20, 50, "JPEG", 3),
        "": b"",  # no image
    }
    rows = []
    for index, (name, data) in enumerate(files.items()):
        if name:
            (tmp_path / name).write_bytes(data)
        label = "warm" if index % 2 else "cold"
        rows.append({"id": str(index), "text": f"{label} {name}", "image": name, "label": label})
    records = read_manifest(write_manifest(tmp_path, rows), allow_missing=True)
    preprocessor = MultimodalPreprocessor(sequence_length=6, image_size=(16, 16))
    preprocessor.adapt([r.text for r in records], min_frequency=1)
    model = MultimodalClassifier(
        ["cold", "warm"], preprocessor, hidden_dim=8, image_filters=(4, 8), grid_size=2
    )
    version_dir = export_saved_model(model, tmp_path / "served", allow_missing=True)
    served = served_image_features(version_dir, [r.text for r in records], list(files.values()))
    np.testing.assert_array_equal(served["image_present"], [1, 1, 1, 1, 0])
    # Reversed channels would be another image: the comparison below sees the channel order.
    assert np.abs(served["image"] - served["image"][..., ::-1]).mean() > 10
    for cache in (False, True):
        batches = list(make_dataset(records, preprocessor, ["cold", "warm"], 2, cache=cache))
        for key, atol in (("image", 1e-4), ("image_present", 0)):
            trained_on = np.concatenate([features[key].numpy() for features, _ in batches])
            np.testing.assert_allclose(
                trained_on,
                served[key],
                atol=atol,
                err_msg=f"{key} of the training batches (cache={cache}) is not what the "
                "exported model's preprocessor makes from the same bytes",
            )
