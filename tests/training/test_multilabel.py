"""Multi-label rows (`joy|surprise`) from the run config: data, metrics, training, serving."""

import csv
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from multimodal_tf.cli import main
from multimodal_tf.config import load_config
from multimodal_tf.data.dataset import make_dataset, make_prepared_dataset
from multimodal_tf.data.manifest import Record, read_manifest, split_records
from multimodal_tf.data.source import TrainingData
from multimodal_tf.data.tfrecords import read_prepared, write_tfrecords
from multimodal_tf.data.validate import validate_manifest
from multimodal_tf.errors import ConfigError, DataError
from multimodal_tf.models.preprocessor import MultimodalPreprocessor
from multimodal_tf.training.fit import train
from multimodal_tf.training.metrics import multilabel_metrics
from multimodal_tf.training.thresholds import best_thresholds
from tests.conftest import image_bytes, make_tiny_config, write_manifest
from tests.helpers import built_once, run_export_test

CLASSES = ["cold", "loud", "warm"]


def label_of(index):
    """warm/cold alternate; every third row is also loud, written in either order."""
    base = "warm" if index % 2 == 0 else "cold"
    if index % 3:
        return base
    return f"{base}|loud" if index % 2 else f" loud | {base} "


def multi_hot(label):
    names = {part.strip() for part in label.split("|")}
    return [float(name in names) for name in CLASSES]


def write_multilabel_manifest(folder, num_rows=32):
    """Rows 0-19 train, 20-25 val, 26-31 test; every class occurs in each split."""
    (folder / "images").mkdir(parents=True)
    rows = []
    for index in range(num_rows):
        label = label_of(index)
        colour = (220, 40, 40) if "warm" in label else (40, 40, 220)
        if "loud" in label:
            colour = (colour[0], 200, colour[2])
        (folder / f"images/{index}.png").write_bytes(image_bytes(colour))
        words = ("sunny warm" if "warm" in label else "icy cold") + (
            " loud bang" if "loud" in label else " quiet"
        )
        split = "test" if index >= 26 else "val" if index >= 20 else "train"
        rows.append(
            {
                "id": f"r{index}",
                "text": f"{words} #{index}",
                "image": f"images/{index}.png",
                "label": label,
                "split": split,
            }
        )
    return write_manifest(folder, rows)


def tiny_preprocessor(texts):
    preprocessor = MultimodalPreprocessor(sequence_length=6, image_size=(16, 16))
    preprocessor.adapt(texts, min_frequency=1)
    return preprocessor


def test_multilabel_metrics_on_a_hand_made_example():
    y_true = [[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1], [1, 0, 0]]
    y_pred = [[1, 0, 0], [0, 1, 0], [1, 0, 1], [0, 0, 1], [1, 0, 0]]
    metrics = multilabel_metrics(y_true, y_pred, ["a", "b", "c"])
    # a: 3 of 3 right; b: P 1/1, R 1/2; c: P 1/2, R 1/2. Supports 3, 2, 2.
    assert metrics["per_class"]["a"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 3}
    assert metrics["per_class"]["b"] == pytest.approx(
        {"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2}
    )
    assert metrics["per_class"]["c"]["f1"] == pytest.approx(0.5)
    assert metrics["macro_f1"] == pytest.approx((1 + 2 / 3 + 0.5) / 3)
    assert metrics["weighted_f1"] == pytest.approx((3 * 1 + 2 * 2 / 3 + 2 * 0.5) / 7)
    assert metrics["micro_f1"] == pytest.approx(2 * 5 / (6 + 7))  # TP 5, 6 predicted, 7 true
    assert metrics["accuracy"] == pytest.approx(3 / 5)  # rows 2, 4 and 5 exactly right
    assert metrics["hamming_loss"] == pytest.approx(3 / 15)  # 3 wrong decisions of 15
    assert metrics["num_samples"] == 5 and metrics["class_names"] == ["a", "b", "c"]
    with pytest.raises(ValueError, match=r"\[samples, 3\]"):
        multilabel_metrics([[1, 0]], [[1, 0]], ["a", "b", "c"])


def test_manifest_batches_carry_multi_hot_vectors(tmp_path):
    records = read_manifest(write_multilabel_manifest(tmp_path))
    preprocessor = tiny_preprocessor([r.text for r in records])
    dataset = make_dataset(records[:7], preprocessor, CLASSES, batch_size=7, multi_label=True)
    features, labels = next(iter(dataset))
    assert labels.dtype == tf.float32 and features["token_ids"].shape == (7, 6)
    expected = [multi_hot(label_of(index)) for index in range(7)]
    assert expected[0] == [0, 1, 1] and expected[3] == [1, 1, 0]  # " loud | warm ", "cold|loud"
    np.testing.assert_array_equal(labels.numpy(), expected)
    with pytest.raises(DataError, match=r"row 1 \(id 'r0'\), field 'label': unknown label 'loud'"):
        make_dataset(records, preprocessor, ["cold", "warm"], multi_label=True)


def test_prepared_folder_batches_carry_multi_hot_vectors(tmp_path):
    splits = split_records(read_manifest(write_multilabel_manifest(tmp_path / "data")))
    write_tfrecords(splits, tmp_path / "prepared", num_shards=1, multi_label=True)
    meta = read_prepared(tmp_path / "prepared")
    preprocessor = tiny_preprocessor(["sunny warm", "icy cold"])
    dataset = make_prepared_dataset(
        meta, "train", preprocessor, CLASSES, batch_size=20, multi_label=True
    )
    _, labels = next(iter(dataset))
    expected = [multi_hot(label_of(index)) for index in range(20)]
    np.testing.assert_array_equal(labels.numpy(), expected)
    # The in-graph lookup stops at a label the model does not know, naming the row.
    missing_loud = make_prepared_dataset(
        meta, "train", preprocessor, ["cold", "warm"], batch_size=20, multi_label=True
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"unknown label.*in row id"):
        next(iter(missing_loud))

    data_config = make_tiny_config().data
    data_config.multi_label = True
    source = TrainingData.load(tmp_path / "prepared", data_config, tmp_path)
    assert source.class_names == CLASSES  # split from the distinct label cells
    data_config.multi_label = False
    with pytest.raises(ConfigError, match="prepared with data.multi_label: true"):
        TrainingData.load(tmp_path / "prepared", data_config, tmp_path)


def test_validation_splits_the_cell_before_checking_each_label(tmp_path):
    manifest = write_multilabel_manifest(tmp_path)
    text = manifest.read_text()
    text = text.replace("cold|loud,val", "cold|loud|fear,val", 1)  # r21
    text = text.replace(
        "icy cold quiet #25,images/25.png,cold", "icy cold quiet #25,images/25.png,|"
    )
    manifest.write_text(text)
    report = validate_manifest(manifest, multi_label=True)
    problems = {(p.id, p.field, p.kind): p.message for p in report.errors}
    assert set(problems) == {("r21", "label", "unknown_label"), ("r25", "label", "empty_label")}
    assert problems[("r21", "label", "unknown_label")].startswith("unknown label 'fear';")
    known = validate_manifest(manifest, class_names=["cold", "loud"], multi_label=True)
    assert {p.id for p in known.errors if p.kind == "unknown_label"} >= {"r0", "r2", "r21"}


def test_assigned_split_stratifies_by_the_rarest_label():
    labels = ["a"] * 70 + ["a|b"] * 20 + ["a|c"] * 10
    records = [
        Record(row, f"r{row}", f"text {row}", f"/images/{row}.png", label, None)
        for row, label in enumerate(labels, start=1)
    ]
    splits = split_records(records, seed=3, multi_label=True)
    assert split_records(records, seed=3, multi_label=True) == splits
    for split in ("val", "test"):
        counts = {label: [r.label for r in splits[split]].count(label) for label in set(labels)}
        # 10% of each stratum: the rarest label c gets its row in val and test.
        assert counts == {"a": 7, "a|b": 2, "a|c": 1}, split


def test_oversampling_is_refused_for_multi_label(tmp_path):
    config = make_tiny_config()
    config.data.multi_label = True
    config.training.oversample = True
    with pytest.raises(ConfigError, match="training.oversample"):
        train(tmp_path / "unused.csv", config, tmp_path / "run", verbose=0)


@pytest.fixture(scope="module")
def multilabel_run(tmp_path_factory):
    """One multi-label training run from a YAML config, shared by the end-to-end checks."""

    def build(folder):
        manifest = write_multilabel_manifest(folder / "data")
        values = make_tiny_config().to_dict()
        values["data"]["multi_label"] = True
        (folder / "run.json").write_text(json.dumps(values))
        config = load_config(folder / "run.json")
        assert config.data.multi_label
        train(manifest, config, folder / "run", verbose=0)

    folder = built_once(tmp_path_factory, "multilabel-run", build)
    return folder, folder / "data" / "manifest.csv"


@pytest.mark.slow  # trains a model (with the export test: ~30-40 s on two busy cores)
def test_train_tunes_thresholds_and_reports_multilabel_metrics(multilabel_run, capsys):
    folder, manifest = multilabel_run
    run = folder / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["class_weight"] is None
    assert list(metrics["thresholds"]) == CLASSES
    for split, size in (("val", 6), ("test", 6)):
        report = metrics[split]
        assert report["num_samples"] == size and report["class_names"] == CLASSES
        assert set(report) >= {"accuracy", "macro_f1", "micro_f1", "weighted_f1", "hamming_loss"}
        rows = range(20, 26) if split == "val" else range(26, 32)
        support = np.sum([multi_hot(label_of(i)) for i in rows], axis=0)
        assert [report["per_class"][c]["support"] for c in CLASSES] == support.tolist()
    assert not (run / "confusion_matrix.png").exists()

    # model.keras carries the thresholds tuned on val: reload and tune again to compare.
    model = keras.saving.load_model(run / "model.keras")
    assert model.is_multi_label()
    saved = keras.ops.convert_to_numpy(model.get_layer("label").thresholds)
    np.testing.assert_allclose(saved, [metrics["thresholds"][name] for name in CLASSES])
    val = [r for r in read_manifest(manifest) if r.split == "val"]
    texts = tf.constant([r.text for r in val])
    images = tf.constant([open(r.image, "rb").read() for r in val])
    features = model.preprocessor({"text": texts, "image": images})
    probabilities = model.predict(features, verbose=0)
    truth = [multi_hot(r.label) for r in val]
    np.testing.assert_allclose(saved, best_thresholds(probabilities, truth), atol=1e-6)

    # `evaluate` from the CLI reads the label sets and uses the saved thresholds.
    assert main(["evaluate", "--run", str(run), "--manifest", str(manifest)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("test: accuracy")
    evaluated = json.loads(out.split("\n", 1)[1])
    for key in ("accuracy", "macro_f1", "micro_f1", "weighted_f1", "hamming_loss"):
        assert evaluated[key] == pytest.approx(metrics["test"][key]), key
    assert evaluated["per_class"] == metrics["test"]["per_class"]


@pytest.mark.slow
def test_export_and_predict_join_the_classes_over_the_thresholds(multilabel_run, tmp_path):
    folder, manifest = multilabel_run
    model = keras.saving.load_model(folder / "run" / "model.keras")
    records = read_manifest(manifest)
    texts = [r.text for r in records[20:]]
    images = [open(r.image, "rb").read() for r in records[20:]]
    # Checks the `label` output against the Keras model and the head's thresholds.
    version = run_export_test(model, texts, images, tmp_path)

    predictions = tmp_path / "predictions.csv"
    argv = ["predict", "--model", str(version), "--manifest", str(manifest)]
    assert main([*argv, "--out", str(predictions)]) == 0
    rows = list(csv.DictReader(predictions.open()))
    assert list(rows[0]) == ["id", "predicted_label"] + [f"probability_{c}" for c in CLASSES] + [
        "label"
    ]
    thresholds = keras.ops.convert_to_numpy(model.get_layer("label").thresholds)
    for row in rows:
        probabilities = np.array([float(row[f"probability_{c}"]) for c in CLASSES])
        chosen = [c for c, p, t in zip(CLASSES, probabilities, thresholds, strict=True) if p >= t]
        assert row["predicted_label"] == "|".join(chosen)
