"""`image_weights: imagenet`: Keras' file in the Keras cache, `weights install`, and offline runs.

Tests never reach the internet (tests/conftest.py refuses every connection off
loopback); the ImageNet file comes from ../shared/weights through `weights install`,
and a download is served from 127.0.0.1.
"""

import functools
import http.server
import json
import os
import subprocess
import sys
import threading

import h5py
import keras
import numpy as np
import pytest

from multimodal_tf.cli import main
from multimodal_tf.errors import ConfigError
from multimodal_tf.files import current_umask
from multimodal_tf.models.backbone_weights import (
    imagenet_weights_file,
    install_weights,
    resolve_backbone_weights,
)
from tests.conftest import MOBILENET_FILE, PROJECT_ROOT, requires_shared

KERAS_NAME = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5"
# A child Python whose sockets refuse every connection: a machine without network.
NO_NETWORK = """
import socket
def refuse(*args, **kwargs):
    raise OSError("no network")
socket.socket.connect = refuse
socket.getaddrinfo = refuse
"""


def shared_weights():
    model = keras.applications.MobileNetV2(
        alpha=0.35, include_top=False, weights=str(MOBILENET_FILE), input_shape=(None, None, 3)
    )
    return model.get_weights()


def assert_same_weights(weights, expected):
    assert len(weights) == len(expected)
    for ours, theirs in zip(weights, expected, strict=True):
        np.testing.assert_array_equal(np.asarray(ours), theirs)


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    """A new, empty Keras cache for the package (it reads KERAS_HOME when it looks)."""
    home = tmp_path / "keras_home"
    monkeypatch.setenv("KERAS_HOME", str(home))
    return home / "models"


def test_the_file_name_and_url_are_the_ones_keras_applications_uses():
    spec = imagenet_weights_file("mobilenet_v2", 0.35)
    assert spec.file_name == KERAS_NAME
    assert spec.url == keras.src.applications.mobilenet_v2.BASE_WEIGHT_PATH + KERAS_NAME
    assert imagenet_weights_file("resnet50").file_name == (
        "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
    )
    with pytest.raises(ConfigError, match="alpha in 0.35, 0.5, 0.75, 1, 1.3, 1.4; got .* 0.3"):
        imagenet_weights_file("mobilenet_v2", 0.3)


@pytest.mark.shared
@requires_shared(MOBILENET_FILE)
def test_installed_file_is_what_keras_applications_loads_for_imagenet(imagenet_cache):
    # The session's cache (tests/conftest.py) is the one Keras read KERAS_HOME for at import:
    # keras.applications itself finds the installed file, with every connection refused.
    assert imagenet_cache.name == KERAS_NAME
    model = keras.applications.MobileNetV2(
        alpha=0.35, include_top=False, weights="imagenet", input_shape=(None, None, 3)
    )
    assert_same_weights(model.get_weights(), shared_weights())
    with h5py.File(imagenet_cache, "r") as handle:  # Keras' own layout: layers by name
        names = np.char.decode(np.asarray(handle.attrs["layer_names"], dtype=bytes)).tolist()
        assert "Conv1" in names


@pytest.mark.shared
@requires_shared(MOBILENET_FILE)
def test_install_refuses_a_file_of_another_backbone_naming_the_layer_and_shapes(empty_cache):
    with pytest.raises(ConfigError) as error:
        install_weights(MOBILENET_FILE, "mobilenet_v2", 0.5)
    assert (
        "does not hold mobilenet_v2 alpha 0.5 weights: layer 'block_1_project' has weights of "
        "shapes [(1, 1, 48, 16)], and the file's layer 'conv2d_3' holds [(1, 1, 48, 8)]"
    ) in str(error.value)
    with pytest.raises(ConfigError, match="layer 'conv1_conv' has weights of shapes"):
        install_weights(MOBILENET_FILE, "resnet50")
    assert not empty_cache.exists() or not list(empty_cache.iterdir())


def test_install_refuses_a_file_that_is_not_hdf5(empty_cache, tmp_path):
    broken = tmp_path / "broken.h5"
    broken.write_bytes(b"\x89HDF\r\n\x1a\n truncated")
    with pytest.raises(ConfigError, match="broken.h5 is not a readable HDF5 weights file"):
        install_weights(broken, "mobilenet_v2", 0.35)


@pytest.mark.shared
@requires_shared(MOBILENET_FILE)
def test_install_never_overwrites_other_weights_unless_asked(empty_cache, tmp_path):
    path, status = install_weights(MOBILENET_FILE, "mobilenet_v2", 0.35)
    assert (path, status) == (empty_cache / KERAS_NAME, "installed")
    assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~current_umask())
    assert install_weights(MOBILENET_FILE, "mobilenet_v2", 0.35)[1] == "already installed"
    # Other weights of the same backbone: refused, then replaced when asked.
    other = keras.applications.MobileNetV2(
        alpha=0.35, include_top=False, weights=None, input_shape=(None, None, 3)
    )
    other_file = tmp_path / "other.weights.h5"
    other.save_weights(other_file)
    before = path.read_bytes()
    with pytest.raises(ConfigError, match="already holds other mobilenet_v2 alpha 0.35 weights"):
        install_weights(other_file, "mobilenet_v2", 0.35)
    assert path.read_bytes() == before
    assert install_weights(other_file, "mobilenet_v2", 0.35, overwrite=True)[1] == "replaced"
    assert [entry.name for entry in empty_cache.iterdir()] == [KERAS_NAME]  # no leftovers


def test_no_file_and_no_network_names_the_file_the_folder_the_url_and_the_ways_out(
    empty_cache,
):
    with pytest.raises(ConfigError) as error:
        resolve_backbone_weights("imagenet", "mobilenet_v2", 0.35)
    message = str(error.value)
    spec = imagenet_weights_file("mobilenet_v2", 0.35)
    for part in (
        KERAS_NAME,
        f"in the Keras cache {empty_cache}",
        f"Downloading it from {spec.url} failed",
        "multimodal-tf weights install FILE --backbone mobilenet_v2 --alpha 0.35",
        "set model.image_weights to the path",
        "model.image_encoder: conv",
    ):
        assert part in message
    assert list(empty_cache.iterdir()) == []  # no partial download left behind


@pytest.mark.shared
@requires_shared(MOBILENET_FILE)
def test_imagenet_is_downloaded_once_into_the_keras_cache(empty_cache, tmp_path, monkeypatch):
    # Keras' file, served from 127.0.0.1 in place of Keras' URL.
    served = tmp_path / "served"
    served.mkdir()
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "server_side"))
    source, _ = install_weights(MOBILENET_FILE, "mobilenet_v2", 0.35)
    (served / KERAS_NAME).write_bytes(source.read_bytes())
    monkeypatch.setenv("KERAS_HOME", str(empty_cache.parent))
    requests = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            requests.append(self.path)

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(served))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(
        keras.src.applications.mobilenet_v2,
        "BASE_WEIGHT_PATH",
        f"http://127.0.0.1:{server.server_address[1]}/",
    )
    try:
        first = resolve_backbone_weights("imagenet", "mobilenet_v2", 0.35)
        second = resolve_backbone_weights("imagenet", "mobilenet_v2", 0.35)
    finally:
        server.shutdown()
    assert first == second == str(empty_cache / KERAS_NAME)
    assert len(requests) == 1 and requests[0].endswith(KERAS_NAME)
    assert [entry.name for entry in empty_cache.iterdir()] == [KERAS_NAME]
    assert (empty_cache / KERAS_NAME).read_bytes() == source.read_bytes()


def test_a_wrong_download_is_not_kept(empty_cache, tmp_path, monkeypatch):
    def fake_get_file(fname, origin, cache_subdir, cache_dir, file_hash):
        path = os.path.join(cache_dir, cache_subdir, fname)
        with h5py.File(path, "w") as handle:  # a valid HDF5 file of the wrong layers
            handle.attrs["layer_names"] = [b"dense"]
            handle.create_group("dense").attrs["weight_names"] = [b"kernel"]
            handle["dense"]["kernel"] = np.zeros((2, 2))
        return path

    monkeypatch.setattr(keras.utils, "get_file", fake_get_file)
    with pytest.raises(ConfigError, match="does not hold mobilenet_v2 alpha 0.35 weights"):
        resolve_backbone_weights("imagenet", "mobilenet_v2", 0.35)
    assert list(empty_cache.iterdir()) == []


@pytest.mark.slow
@pytest.mark.shared
@requires_shared(MOBILENET_FILE)
def test_zero_config_run_offline_after_weights_install(
    empty_cache, tiny_manifest, tmp_path, capsys
):
    # An air-gapped machine: every connection is refused (tests/conftest.py), the cache is
    # empty; one `weights install`, then `train` with no config at all.
    assert main(["weights", "install", str(MOBILENET_FILE), "--alpha", "0.35"]) == 0
    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    assert f"installed: {empty_cache / KERAS_NAME}" in out
    assert (
        f"the default config needs mobilenet_v2 alpha 0.35: {empty_cache / KERAS_NAME} "
        "(installed)" in out
    )
    run = tmp_path / "run"
    assert main(["train", "--manifest", str(tiny_manifest), "--output", str(run), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert f"image: mobilenet_v2 alpha 0.35 (frozen), ImageNet weights from {empty_cache}" in out
    # The saved model's backbone holds the installed ImageNet weights, not random ones,
    # and its predictions read the image.
    model = keras.saving.load_model(run / "model.keras")
    assert_same_weights(model.image_encoder.backbone.get_weights(), shared_weights())
    metrics = json.loads((run / "metrics.json").read_text())
    assert any("image" in read for read in metrics["predicted_by"].values())
    assert "Predictions come from" in out


def test_train_without_weights_or_network_fails_before_reading_data(tmp_path):
    # A child process with no network and an empty Keras cache; the manifest does not even
    # exist, so an error about it would mean the data was read first.
    (tmp_path / "offline").mkdir()
    (tmp_path / "offline" / "sitecustomize.py").write_text(NO_NETWORK)
    environment = dict(
        os.environ,
        KERAS_HOME=str(tmp_path / "empty_keras_home"),
        PYTHONPATH=os.pathsep.join([str(tmp_path / "offline"), str(PROJECT_ROOT)]),
    )
    result = subprocess.run(
        [sys.executable, "-m", "multimodal_tf", "train", "--manifest", "missing.csv"]
        + ["--output", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        env=environment,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    error = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and KERAS_NAME in error[0] and "no network" in error[0]
    assert "missing.csv" not in result.stderr and not (tmp_path / "run").exists()


def test_the_conv_encoder_needs_no_weights_and_refuses_a_file():
    from multimodal_tf.config import ModelConfig
    from multimodal_tf.training.run_model import find_backbone_weights, image_weights_for

    assert find_backbone_weights(ModelConfig(image_encoder="conv")) is None  # ignores imagenet
    assert image_weights_for(ModelConfig(modalities=("text",))) is None
    with pytest.raises(ConfigError, match="image_encoder: conv is trained from scratch"):
        image_weights_for(ModelConfig(image_encoder="conv", image_weights="w.h5"))
