"""The notebooks run top to bottom (the quick start is documentation a user runs)."""

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["01_quickstart.ipynb"])
def test_notebook_runs(name, tmp_path, monkeypatch):
    monkeypatch.setenv("QUICKSTART_NUM_SAMPLES", "600")
    monkeypatch.setenv("QUICKSTART_EPOCHS", "3")
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()
    outputs = "".join(
        output.get("text", "") for cell in notebook.cells for output in cell.get("outputs", [])
    )
    assert "test accuracy" in outputs
    difference = float(outputs.split("max |served - keras| =")[1].split()[0])
    assert difference < 1e-5
    assert (
        tmp_path / "data" / "quickstart" / "saved_models" / "demo" / "1" / "saved_model.pb"
    ).is_file()
    assert os.path.isfile(tmp_path / "data" / "quickstart" / "model.keras")
