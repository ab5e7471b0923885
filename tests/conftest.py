"""Shared fixtures: seeding, tiny datasets written to tmp_path, ../shared detection."""

import atexit
import csv
import io
import os
import shutil
import socket
import tempfile
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

# Tests never read or fill the user's Keras cache, and never download: Keras reads
# KERAS_HOME when it is imported, and the package when it looks for ImageNet weights, so an
# empty folder of this process's own is set first (test subprocesses inherit it); the
# `imagenet_cache` fixture fills it from ../shared/weights.
_KERAS_HOME = tempfile.mkdtemp(prefix="keras-home-")
os.environ["KERAS_HOME"] = _KERAS_HOME
atexit.register(shutil.rmtree, _KERAS_HOME, ignore_errors=True)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MULTIMODAL_TF_SHARED", PROJECT_ROOT.parent / "shared"))
MVSA_MANIFEST = SHARED / "data" / "mvsa_single" / "manifest.csv"
MOBILENET_FILE = SHARED / "weights" / "mobilenet_v2_0.35_224_no_top_imagenet_tm.weights.h5"


def _refuse_the_internet(connect):
    """`socket.connect` for tests: loopback and Unix sockets only."""

    def guarded(self, address):
        host = address[0] if isinstance(address, tuple) else None
        if host is not None and not (str(host).startswith("127.") or host in ("::1", "localhost")):
            raise OSError(f"tests never reach the internet (connect to {address!r} refused)")
        return connect(self, address)

    return guarded


socket.socket.connect = _refuse_the_internet(socket.socket.connect)


@pytest.fixture(scope="session")
def imagenet_cache():
    """The Keras cache of this test process with the default backbone's ImageNet file in it.

    `multimodal-tf weights install` of ../shared's MobileNetV2 0.35, as a user
    without network would do it; skips where ../shared is absent.
    """
    if not MOBILENET_FILE.is_file():
        pytest.skip(
            f"needs {MOBILENET_FILE} (../shared is not present in a user's clone; CI has it)"
        )
    from multimodal_tf.models.backbone_weights import install_weights

    path, _ = install_weights(MOBILENET_FILE, "mobilenet_v2", 0.35)
    return path


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
    config.model.image_encoder = "conv"  # trained from scratch: no weights file
    config.model.image_weights = ""
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
    # The linear path's own first stage (default up to 30 epochs, stopping after 8
    # without progress) gets as many: tests that check the stage set their own.
    config.training.wide_epochs = 2
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
