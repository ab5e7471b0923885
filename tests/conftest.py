"""Shared fixtures: seeding, tiny datasets written to tmp_path, ../shared detection."""

import csv
import io
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# `make test` runs pytest-xdist workers side by side, one per core: each worker's
# TensorFlow would size its thread pools to every core and the workers would fight
# over them. A share of the cores each (set before TensorFlow is imported; the
# subprocesses that tests start inherit it) made the suite 6% faster on 2 cores
# (768 s -> 720 s), the compute-heavy tests most (MVSA 70 -> 60 s, the demo's fused
# model 60 -> 45 s).
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    _SHARE = str(max(1, (os.cpu_count() or 1) // _WORKERS))
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", _SHARE)
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", _SHARE)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MULTIMODAL_TF_SHARED", PROJECT_ROOT.parent / "shared"))
MVSA_MANIFEST = SHARED / "data" / "mvsa_single" / "manifest.csv"


@pytest.fixture(autouse=True)
def seed_everything():
    keras.utils.set_random_seed(1337)


def image_bytes(colour=(200, 30, 30), size=(16, 16), format="PNG", mode="RGB"):
    """Encoded bytes of a small solid image with a darker square in one corner."""
    image = Image.new("RGB", size, colour)
    image.paste((0, 0, 0), (0, 0, size[0] // 2, size[1] // 2))
    if mode != "RGB":
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format=format)
    return buffer.getvalue()


def write_manifest(folder, rows, name="manifest.csv", fieldnames=None):
    """Writes rows (dicts) to folder/name as CSV and returns its path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fieldnames = fieldnames or list(rows[0])
    path = folder / name
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fieldnames)
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture
def tiny_manifest(tmp_path):
    """24 rows, 2 classes (red images + 'warm' words vs blue + 'cold'), with splits."""
    (tmp_path / "images").mkdir()
    rows = []
    rng = np.random.default_rng(0)
    for index in range(24):
        warm = index % 2 == 0
        colour = (220, 40, 40) if warm else (40, 40, 220)
        fmt = "PNG" if index % 3 else "JPEG"
        name = f"images/{index}.{'png' if fmt == 'PNG' else 'jpg'}"
        (tmp_path / name).write_bytes(image_bytes(colour, format=fmt))
        words = (
            ["sunny warm fire", "hot red summer"]
            if warm
            else ["icy cold snow", "blue winter frost"]
        )
        split = "test" if index >= 20 else "val" if index >= 16 else "train"
        rows.append(
            {
                "id": f"r{index}",
                "text": f"{words[int(rng.integers(2))]} #{index}",
                "image": name,
                "label": "warm" if warm else "cold",
                "split": split,
            }
        )
    return write_manifest(tmp_path, rows)


def make_tiny_config():
    """A RunConfig small enough to train in seconds."""
    from multimodal_tf.config import RunConfig

    config = RunConfig()
    config.data.image_size = (16, 16)
    config.data.sequence_length = 6
    config.data.min_frequency = 1
    config.data.batch_size = 8
    config.model.embedding_dim = 8
    config.model.lstm_units = 8
    config.model.hidden_dim = 8
    config.model.num_heads = 2
    config.model.image_filters = (4, 8)
    config.model.grid_size = 2
    config.training.epochs = 2
    config.training.tensorboard = False
    config.training.report = False  # tests/training/test_report.py trains with it
    return config


@pytest.fixture
def tiny_config():
    return make_tiny_config()


def requires_shared(path):
    """Skip marker for tests that need a file from ../shared."""
    return pytest.mark.skipif(
        not Path(path).exists(),
        reason=f"needs {path} (../shared is not present in a user's clone; CI has it)",
    )


def pytest_collection_modifyitems(config, items):
    """Runs the tests marked `slow` first.

    On pytest-xdist workers a long test that starts near the end of the run
    keeps one worker busy while the other has nothing left to do; started
    first, the long tests share the workers and the short ones fill the gaps.
    """
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
