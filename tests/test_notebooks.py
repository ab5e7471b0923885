"""The notebooks run top to bottom (they are documentation a user runs)."""

import csv
import os
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
# A row of the ablation table: "| fusion=concat | 0.965 ± 0.000 | 0.965 ± 0.000 | ...".
ABLATION_ROW = re.compile(r"^\| (\S+) \| ([\d.]+) ± [\d.]+ \| ([\d.]+) ± [\d.]+ \|", re.MULTILINE)


def notebook_outputs(notebook):
    """Every printed stream and displayed text or Markdown of the executed notebook."""
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            data = output.get("data", {})
            parts.append(data.get("text/markdown", ""))
    return "\n".join(parts)


def served_minus_keras(outputs):
    return float(outputs.split("max |served - keras| =")[1].split()[0])


def count_figures(notebook):
    return sum(
        "image/png" in output.get("data", {})
        for cell in notebook.cells
        for output in cell.get("outputs", [])
    )


def check_quickstart(notebook, workdir):
    outputs = notebook_outputs(notebook)
    assert "test accuracy" in outputs
    assert served_minus_keras(outputs) < 1e-5
    assert (
        workdir / "data" / "quickstart" / "saved_models" / "demo" / "1" / "saved_model.pb"
    ).is_file()
    assert os.path.isfile(workdir / "data" / "quickstart" / "model.keras")


# The smoke run's ablation: a baseline and the default fusion (each training costs the
# suite ~10 s). Every fusion is built, saved and served in tests/models/test_classifier.py,
# and `ablate` runs end to end (image_only and a fusion) in tests/training/test_ablation.py;
# the full notebook trains all seven.
FUSION_SMOKE_VARIANTS = ["text_only", "fusion=attention"]


def check_fusion_strategies(notebook, workdir):
    outputs = notebook_outputs(notebook)
    shown = {
        variant: (float(accuracy), float(macro_f1))
        for variant, accuracy, macro_f1 in ABLATION_ROW.findall(outputs)
    }
    assert sorted(shown) == sorted(FUSION_SMOKE_VARIANTS)
    # The table the notebook shows is the one `ablate` measured (each run's test metrics).
    table = workdir / "data" / "fusion_demo" / "ablation" / "ablation.csv"
    with table.open(encoding="utf-8") as handle:
        measured = {
            row["variant"]: (float(row["test_accuracy_mean"]), float(row["test_macro_f1_mean"]))
            for row in csv.DictReader(handle)
        }
    assert shown == {
        variant: (round(accuracy, 3), round(macro_f1, 3))
        for variant, (accuracy, macro_f1) in measured.items()
    }
    # The sample images and the bar chart (drawn after training, which must not hide it).
    assert count_figures(notebook) == 2
    # The missing-modality rows went through both the Keras model and the SavedModel.
    assert "no image" in outputs and "no text" in outputs
    assert served_minus_keras(outputs) < 1e-5
    version_dir = workdir / "data" / "fusion_demo" / "saved_models" / "fusion_demo" / "1"
    assert (version_dir / "saved_model.pb").is_file()
    assert (version_dir / "assets.extra" / "labels.txt").is_file()


def check_serving(notebook, workdir):
    outputs = notebook_outputs(notebook)
    assert "serving_default" in outputs and "inputs['image']" in outputs  # saved_model_cli
    assert served_minus_keras(outputs) < 1e-5
    assert "row and columnar agree: True" in outputs
    assert "image 1 of 2: not JPEG" in outputs and "next request:" in outputs
    version_dir = workdir / "data" / "serving_demo" / "saved_models" / "demo" / "1"
    assert (version_dir / "assets.extra" / "tf_serving_warmup_requests").is_file()


def check_pretrained_backbone(notebook, workdir):
    outputs = notebook_outputs(notebook)
    assert f"backbone weights: {os.environ['KERAS_HOME']}" in outputs
    assert "ImageNet weights from" in outputs and "deep_path: {'wide':" in outputs
    assert "val macro-F1: linear path" in outputs
    assert "wide layers: ['label_wide', 'label_wide_image']" in outputs
    assert count_figures(notebook) == 1  # the two stages' validation curves
    assert served_minus_keras(outputs) < 1e-5
    run = workdir / "data" / "pretrained_demo" / "run"
    assert (run / "wide_history.csv").is_file() and (run / "history.csv").is_file()
    version_dir = workdir / "data" / "pretrained_demo" / "saved_models" / "pretrained_demo" / "1"
    assert (version_dir / "saved_model.pb").is_file()


# Per notebook: the environment that shrinks it to a smoke run, and what must come out.
NOTEBOOK_RUNS = {
    "01_quickstart.ipynb": (
        {"QUICKSTART_NUM_SAMPLES": "300", "QUICKSTART_EPOCHS": "2"},
        check_quickstart,
    ),
    "02_fusion_strategies.ipynb": (
        {
            "FUSION_NUM_SAMPLES": "120",
            "FUSION_EPOCHS": "1",
            "FUSION_VARIANTS": ",".join(FUSION_SMOKE_VARIANTS),
        },
        check_fusion_strategies,
    ),
    "03_serving.ipynb": (
        {"SERVING_NUM_SAMPLES": "120", "SERVING_EPOCHS": "1"},
        check_serving,
    ),
    "04_pretrained_backbone.ipynb": (
        {
            "PRETRAINED_NUM_SAMPLES": "120",
            "PRETRAINED_EPOCHS": "1",
        },
        check_pretrained_backbone,
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(NOTEBOOK_RUNS))
def test_notebook_runs(name, tmp_path, monkeypatch, request):
    environment, check = NOTEBOOK_RUNS[name]
    if name.startswith("04_"):
        # The default backbone's ImageNet file in the Keras cache the kernel inherits
        # (KERAS_HOME, tests/conftest.py), from ../shared; a visible skip without it.
        request.getfixturevalue("imagenet_cache")
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()
    check(notebook, tmp_path)
