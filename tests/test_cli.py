import csv
import json
import re
import shutil
import subprocess
import sys

import pytest

from multimodal_tf.cli import main
from tests.helpers import write_config

SUBCOMMANDS = [
    "demo-data",
    "validate",
    "prepare",
    "train",
    "evaluate",
    "export",
    "predict",
    "ablate",
    "tune",
    "report",
    "serving-config",
    "weights",
]


def test_console_script_lists_every_subcommand():
    script = shutil.which("multimodal-tf") or f"{sys.executable} -m multimodal_tf"
    out = subprocess.run(f"{script} --help", shell=True, capture_output=True, text=True, check=True)
    for command in SUBCOMMANDS:
        assert command in out.stdout


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: multimodal-tf " + command in capsys.readouterr().out


@pytest.mark.slow  # trains, then exports and serves, ~40 s on 2 cores
def test_train_evaluate_export_predict(tiny_manifest, tiny_config, tmp_path, capsys):
    run = tmp_path / "run"
    config = write_config(tmp_path, tiny_config)
    assert (
        main(
            [
                "train",
                "--manifest",
                str(tiny_manifest),
                "--config",
                str(config),
                "--output",
                str(run),
                "--quiet",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "test: accuracy" in out and "macro-F1" in out and "95% bootstrap interval" in out
    assert re.search(r"text: [\d,]+ (words|n-grams) from \d+ training texts, sequence length", out)
    for name in (
        "config.yaml",
        "model.keras",
        "metrics.json",
        "history.csv",
        "confusion_matrix.png",
    ):
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    for split, size in (("val", 4), ("test", 4)):
        assert metrics[split]["num_samples"] == size
        assert set(metrics[split]) >= {
            "accuracy",
            "macro_f1",
            "weighted_f1",
            "per_class",
            "confusion_matrix",
        }
        assert set(metrics[split]["per_class"]) == {"cold", "warm"}
        low, high = metrics[split]["intervals"]["accuracy"]
        assert low <= metrics[split]["accuracy"] <= high
        assert sum(map(sum, metrics[split]["confusion_matrix"])) == size

    assert main(["evaluate", "--run", str(run), "--manifest", str(tiny_manifest)]) == 0
    evaluated = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert evaluated["accuracy"] == pytest.approx(metrics["test"]["accuracy"])

    relabelled = tiny_manifest.with_name("relabelled.csv")
    relabelled.write_text(tiny_manifest.read_text().replace(",warm,test", ",hot,test", 1))
    assert main(["evaluate", "--run", str(run), "--manifest", str(relabelled)]) == 2
    err = capsys.readouterr().err
    assert "relabelled.csv row 21 (id 'r20'), field 'label': unknown label 'hot'" in err

    served = tmp_path / "saved_models" / "tiny"
    assert main(["export", "--run", str(run), "--output", str(served)]) == 0
    assert main(["export", "--run", str(run), "--output", str(served)]) == 0
    assert sorted(p.name for p in served.iterdir()) == ["1", "2"]
    assert main(["export", "--run", str(run), "--output", str(served), "--version", "1"]) == 2
    assert "already exists" in capsys.readouterr().err

    predictions = tmp_path / "predictions.csv"
    capsys.readouterr()
    assert (
        main(
            [
                "predict",
                "--model",
                str(served / "2"),
                "--manifest",
                str(tiny_manifest),
                "--out",
                str(predictions),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    rows = list(csv.DictReader(predictions.open()))
    assert len(rows) == 24
    assert set(rows[0]) == {
        "id",
        "predicted_label",
        "probability_cold",
        "probability_warm",
        "label",
    }
    for row in rows:
        total = float(row["probability_cold"]) + float(row["probability_warm"])
        assert total == pytest.approx(1.0, abs=1e-4)

    # Each row holds the Keras model's probabilities for that manifest row, in the
    # model's class order, and the class with the highest one.
    import numpy as np

    from multimodal_tf.data.manifest import read_manifest
    from multimodal_tf.training.evaluate import load_model_file, predict_records

    model = load_model_file(run)
    records = read_manifest(tiny_manifest)
    keras_probabilities, _ = predict_records(model, records)
    assert [row["id"] for row in rows] == [record.id for record in records]
    assert [row["label"] for row in rows] == [record.label for record in records]
    written = np.array(
        [[float(row[f"probability_{name}"]) for name in model.class_names] for row in rows]
    )
    np.testing.assert_allclose(
        written, keras_probabilities, atol=1e-5, err_msg="predict's CSV != the Keras model"
    )
    assert [row["predicted_label"] for row in rows] == [
        model.class_names[index] for index in keras_probabilities.argmax(axis=-1)
    ]
    # Its accuracy is evaluate's on the same rows: all of them, and the test split.
    every_row = ["evaluate", "--run", str(run), "--manifest", str(tiny_manifest), "--split", "all"]
    assert main(every_row) == 0
    evaluated_all = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert evaluated_all["num_samples"] == 24
    printed_accuracy = re.search(r"accuracy against the manifest's labels: ([0-9.]+)", printed)
    assert printed_accuracy, printed
    assert float(printed_accuracy[1]) == pytest.approx(evaluated_all["accuracy"], abs=5e-5)
    correct = [row["predicted_label"] == row["label"] for row in rows]
    assert np.mean(correct) == pytest.approx(evaluated_all["accuracy"])
    on_test = [ok for ok, record in zip(correct, records, strict=True) if record.split == "test"]
    assert np.mean(on_test) == pytest.approx(evaluated["accuracy"])


def run_failing(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    return err


def test_missing_image_file(tiny_manifest, tiny_config, tmp_path, capsys):
    (tiny_manifest.parent / "images" / "5.png").unlink()
    config = write_config(tmp_path, tiny_config)
    err = run_failing(
        ["train", "--manifest", str(tiny_manifest), "--config", str(config)]
        + ["--output", str(tmp_path / "r")],
        capsys,
    )
    assert "manifest.csv row 6 (id 'r5'), field 'image': file not found:" in err
    assert "5.png" in err


def test_undecodable_image(tiny_manifest, tiny_config, tmp_path, capsys):
    (tiny_manifest.parent / "images" / "7.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    config = write_config(tmp_path, tiny_config)
    err = run_failing(
        ["train", "--manifest", str(tiny_manifest), "--config", str(config)]
        + ["--output", str(tmp_path / "r")],
        capsys,
    )
    assert "manifest.csv row 8 (id 'r7'), field 'image': PNG header cannot be read" in err
    assert "7.png" in err


def test_manifest_without_a_required_column(tmp_path, tiny_config, capsys):
    manifest = tmp_path / "m.csv"
    manifest.write_text("id,text,picture,label\n1,hi,a.png,x\n")
    config = write_config(tmp_path, tiny_config)
    err = run_failing(
        ["train", "--manifest", str(manifest), "--config", str(config)]
        + ["--output", str(tmp_path / "r")],
        capsys,
    )
    assert "m.csv: missing required column(s) 'image'" in err


def test_unknown_config_key(tiny_manifest, tiny_config, tmp_path, capsys):
    config = write_config(tmp_path, tiny_config, {"training": {"epoch": 3}})
    err = run_failing(["train", "--manifest", str(tiny_manifest), "--config", str(config)], capsys)
    assert "unknown key 'epoch' at section 'training'; allowed keys: epochs" in err


def _lambda_model_file(path):
    import keras

    model = keras.Sequential([keras.Input((2,)), keras.layers.Lambda(lambda x: x * 2)])
    model.save(path)
    return path


@pytest.mark.parametrize("broken", ["truncated", "empty", "lambda"])
@pytest.mark.parametrize("command", ["export", "evaluate", "report"])
def test_a_model_file_that_cannot_be_loaded_is_one_error_line(
    broken, command, tiny_manifest, tmp_path, capsys
):
    model_file = tmp_path / "model.keras"
    if broken == "lambda":  # safe mode refuses a file that would run code on loading
        _lambda_model_file(model_file)
    else:
        full = _lambda_model_file(tmp_path / "whole.keras").read_bytes()
        model_file.write_bytes(full[: len(full) // 2] if broken == "truncated" else b"")
    argv = {
        "export": ["export", "--run", str(model_file), "--output", str(tmp_path / "out")],
        "evaluate": ["evaluate", "--run", str(model_file), "--manifest", str(tiny_manifest)],
        "report": ["report", "--run", str(tmp_path), "--manifest", str(tiny_manifest)],
    }[command]
    err = run_failing(argv, capsys)
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert f"{model_file} cannot be loaded" in err
    if broken == "lambda":
        assert "safe mode refused it" in err


def test_a_broken_saved_model_is_one_error_line(tiny_manifest, tmp_path, capsys):
    version = tmp_path / "served" / "1"
    version.mkdir(parents=True)
    (version / "saved_model.pb").write_bytes(b"not a protobuf")
    (version / "assets.extra").mkdir()
    (version / "assets.extra" / "labels.txt").write_text("a\nb\n")
    argv = ["predict", "--model", str(version), "--manifest", str(tiny_manifest)]
    err = run_failing(argv + ["--out", str(tmp_path / "p.csv")], capsys)
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert f"{version} cannot be loaded as a SavedModel" in err


def test_training_into_a_finished_run_is_one_error_line(
    tiny_manifest, tiny_config, tmp_path, capsys
):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text("{}")
    (run / "model.keras").write_bytes(b"a finished run's model")
    config = write_config(tmp_path, tiny_config)
    argv = ["train", "--manifest", str(tiny_manifest), "--config", str(config)]
    err = run_failing(argv + ["--output", str(run)], capsys)
    assert "holds a finished run (metrics.json, model.keras)" in err and "--overwrite" in err
    assert (run / "model.keras").read_bytes() == b"a finished run's model"
