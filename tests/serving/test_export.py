import csv
import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from multimodal_tf.errors import DataError
from multimodal_tf.serving.export import export_saved_model
from multimodal_tf.serving.predict import predict_manifest
from multimodal_tf.training.fit import train
from tests.conftest import image_bytes, write_manifest
from tests.helpers import assert_outputs_follow_each_modality, built_once, modalities_read


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A trained model whose served outputs read both modalities (one per test session)."""
    folder = built_once(tmp_path_factory, "export-trained", _train_on_twelve_rows)
    return keras.saving.load_model(folder / "run" / "model.keras")


def _train_on_twelve_rows(folder):
    from tests.conftest import make_tiny_config

    (folder / "images").mkdir()
    rows = []
    for index in range(12):
        (folder / "images" / f"{index}.png").write_bytes(
            image_bytes((200, 20, 10 * index) if index % 2 else (20, 10 * index, 200))
        )
        rows.append(
            {
                "id": str(index),
                "text": f"{'hot' if index % 2 else 'cold'} {index}",
                "image": f"images/{index}.png",
                "label": "a" if index % 2 else "b",
            }
        )
    manifest = write_manifest(folder, rows)
    config = make_tiny_config()
    config.data.val_fraction = config.data.test_fraction = 0.25
    config.training.epochs = 1
    # The deep path, which reads the image, is kept whatever val says: the served
    # probabilities are compared with the Keras model's on both modalities.
    config.training.drop_deep_if_worse = False
    train(manifest, config, folder / "run", verbose=0)


@pytest.fixture(scope="module")
def untrained():
    """A tiny classifier for the tests of how versions are written (any model would do;
    this one exports in about a second, the trained one in several)."""
    from tests.helpers import tiny_model

    return tiny_model()


def test_saved_model_cli_lists_the_signature(trained, tmp_path):
    version_dir = export_saved_model(trained, tmp_path / "m")
    cli = shutil.which("saved_model_cli") or str(Path(sys.executable).parent / "saved_model_cli")
    out = subprocess.run(
        [cli, "show", "--dir", str(version_dir), "--all"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    signature = out.split("signature_def['serving_default']")[1].split("signature_def[")[0]
    for name in (
        "inputs['text']",
        "inputs['image']",
        "outputs['probabilities']",
        "outputs['label']",
    ):
        assert name in signature
    assert signature.count("dtype: DT_STRING") == 3  # text, image, label
    assert "shape: (-1)" in signature and "shape: (-1, 2)" in signature


def test_versions_increase_and_are_never_overwritten(untrained, tmp_path):
    first = export_saved_model(untrained, tmp_path / "m")
    second = export_saved_model(untrained, tmp_path / "m")
    assert (first.name, second.name) == ("1", "2")
    assert export_saved_model(untrained, tmp_path / "m", version=10).name == "10"
    assert export_saved_model(untrained, tmp_path / "m").name == "11"
    with pytest.raises(DataError, match="already exists"):
        export_saved_model(untrained, tmp_path / "m", version=2)
    leftovers = [p.name for p in (tmp_path / "m").iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_a_version_folder_has_the_permissions_the_umask_allows(untrained, tmp_path):
    # mkdtemp's 0700 would hide the version from a model server running as another user.
    previous = os.umask(0o022)
    try:
        version_dir = export_saved_model(untrained, tmp_path / "m")
    finally:
        os.umask(previous)
    assert oct(version_dir.stat().st_mode & 0o777) == oct(0o755)


def test_an_export_traces_the_serving_graph_once(trained, tmp_path, monkeypatch):
    # Keras's archive and tf.saved_model.save would each trace it (export.py, _trace_once).
    preprocessor_type = type(trained.preprocessor)
    traced = []
    call = preprocessor_type.call

    def counting(self, *args, **kwargs):
        traced.append(1)
        return call(self, *args, **kwargs)

    monkeypatch.setattr(preprocessor_type, "call", counting)
    version_dir = export_saved_model(trained, tmp_path / "m")
    assert len(traced) == 1
    monkeypatch.undo()
    served = tf.saved_model.load(str(version_dir))
    out = served.signatures["serving_default"](
        text=tf.constant(["hot 1"]), image=tf.constant([image_bytes((200, 20, 10))])
    )
    assert out["probabilities"].shape == (1, 2)


POLLER = """
import json, os, sys, time
models, stop, out = sys.argv[1:4]
seen = []
open(out + ".ready", "w").close()
while True:
    done = os.path.exists(stop)  # then one last look
    for name in os.listdir(models):
        if name.isdigit():
            folder = os.path.join(models, name)
            complete = os.path.isfile(os.path.join(folder, "saved_model.pb")) and os.path.isfile(
                os.path.join(folder, "variables", "variables.index")
            )
            seen.append([name, complete])
    if done:
        break
json.dump(seen, open(out, "w"))
"""


def test_a_poller_never_sees_a_half_written_version(untrained, tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    stop, out = tmp_path / "stop", tmp_path / "seen.json"
    poller = subprocess.Popen([sys.executable, "-c", POLLER, str(models), str(stop), str(out)])
    try:
        deadline = time.monotonic() + 30
        while not Path(f"{out}.ready").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        for _ in range(3):
            export_saved_model(untrained, models)
    finally:
        stop.touch()
        poller.wait(timeout=30)
    seen = json.loads(out.read_text())
    assert {name for name, _ in seen} == {"1", "2", "3"}  # the poller did look
    assert all(complete for _, complete in seen), [s for s in seen if not s[1]][:5]
    assert sorted(p.name for p in models.iterdir()) == ["1", "2", "3"]


def test_saved_model_cli_run_gives_the_keras_probabilities(trained, tmp_path):
    texts = ["hot 3", "cold 4", "", "hot cold"]
    images = [image_bytes((200, 20, 30)), image_bytes((20, 40, 200), format="JPEG")] * 2
    # On these inputs the probabilities move with the text and with the image, by more
    # than the tolerance below: a graph that read either wrongly would fail.
    assert_outputs_follow_each_modality(trained, texts, images, 1e-5, ("text", "image"))
    version_dir = export_saved_model(trained, tmp_path / "m")
    np.save(tmp_path / "text.npy", np.array(texts, dtype=object), allow_pickle=True)
    np.save(tmp_path / "image.npy", np.array(images, dtype=object), allow_pickle=True)
    cli = shutil.which("saved_model_cli") or str(Path(sys.executable).parent / "saved_model_cli")
    subprocess.run(
        [
            cli,
            "run",
            "--dir",
            str(version_dir),
            "--tag_set",
            "serve",
            "--signature_def",
            "serving_default",
            "--inputs",
            f"text={tmp_path / 'text.npy'};image={tmp_path / 'image.npy'}",
            "--outdir",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        check=True,
    )
    features = trained.preprocessor(
        {"text": np.array(texts, dtype=object), "image": np.array(images, dtype=object)}
    )
    expected = trained.predict(features, verbose=0)
    np.testing.assert_allclose(np.load(tmp_path / "out" / "probabilities.npy"), expected, atol=1e-5)
    labels = np.load(tmp_path / "out" / "label.npy", allow_pickle=True)
    names = [trained.class_names[i] for i in expected.argmax(-1)]
    assert [label.decode() for label in labels] == names


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_predict_streams_probabilities_and_shows_progress(trained, tmp_path):
    version_dir = export_saved_model(trained, tmp_path / "m")
    rows = []
    for index in range(10):
        (tmp_path / f"{index}.png").write_bytes(image_bytes((20 * index, 90, 200)))
        rows.append({"id": str(index), "text": f"hot {index}", "image": f"{index}.png"})
    manifest = write_manifest(tmp_path, rows)
    log = io.StringIO()  # not a terminal: one line per update, at most every 5 s
    summary = predict_manifest(version_dir, manifest, tmp_path / "p.csv", batch_size=4, stream=log)
    assert summary["num_rows"] == 10
    lines = log.getvalue().splitlines()
    assert 1 <= len(lines) <= 2 and lines[-1].startswith("predict: 10/10 rows (100.0%)")
    assert "rows/s" in lines[-1] and "ETA 0:00:00" in lines[-1]
    written = list(csv.DictReader((tmp_path / "p.csv").open()))
    assert [row["id"] for row in written] == [row["id"] for row in rows]
    assert {f"probability_{name}" for name in trained.class_names} <= set(written[0])
    terminal = Terminal()  # a terminal: redrawn in place, then a newline
    predict_manifest(version_dir, manifest, tmp_path / "q.csv", batch_size=4, stream=terminal)
    assert terminal.getvalue().startswith("\rpredict: ") and terminal.getvalue().endswith("\n")
    quiet = io.StringIO()
    predict_manifest(version_dir, manifest, tmp_path / "r.csv", progress=False, stream=quiet)
    assert quiet.getvalue() == ""


def _node_names(version_dir):
    served = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    graph = served.graph.as_graph_def()
    names = [node.name for node in graph.node]
    for function in graph.library.function:
        names += [node.name for node in function.node_def]
    return names


def test_a_dropped_deep_path_is_not_computed_by_the_served_graph(trained, tmp_path):
    from multimodal_tf.models.wide_model import deep_path_is_silent
    from multimodal_tf.training.deep_path import silence_deep_path

    texts = ["hot 1", "cold 2", "hot 3 new words"]
    images = [image_bytes((200, 20, 10)), image_bytes((20, 10, 200)), image_bytes()]
    whole = export_saved_model(trained, tmp_path / "whole")
    assert not deep_path_is_silent(trained)
    trained.save(tmp_path / "model.keras")
    model = keras.saving.load_model(tmp_path / "model.keras")
    silence_deep_path(model)
    assert deep_path_is_silent(model)
    # Only the text moves its probabilities now: comparing on it could not see the image.
    assert modalities_read(model) == ["text"]
    with pytest.raises(AssertionError, match="changing only the image"):
        assert_outputs_follow_each_modality(model, texts, images, 1e-6, ("text", "image"))
    wide_only = export_saved_model(model, tmp_path / "wide")
    # The same probabilities as the Keras model, whose deep logits are exact zeros ...
    features = model.preprocessor({"text": tf.constant(texts), "image": tf.constant(images)})
    served = tf.saved_model.load(str(wide_only)).signatures["serving_default"]
    out = served(text=tf.constant(texts), image=tf.constant(images))["probabilities"]
    np.testing.assert_allclose(out.numpy(), model.predict(features, verbose=0), atol=1e-6)
    # ... without running the fusion that produced them.
    assert any("fusion" in name for name in _node_names(whole))
    assert not any("fusion" in name for name in _node_names(wide_only))


def _dead_pid():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_killed_exports_staging_folder_is_removed_by_the_next_export(untrained, tmp_path):
    model_dir = tmp_path / "m"
    abandoned = model_dir / f".staging-{_dead_pid()}-k1ll3d"
    (abandoned / "variables").mkdir(parents=True)
    (abandoned / "variables" / "variables.data-00000-of-00001").write_bytes(b"\0" * 1000)
    in_progress = model_dir / f".staging-{os.getpid()}-busy"  # a live process's export
    in_progress.mkdir()
    assert export_saved_model(untrained, model_dir).name == "1"
    assert not abandoned.exists() and in_progress.is_dir()


def test_two_exports_at_once_get_distinct_versions(untrained, tmp_path, monkeypatch):
    """Another export publishes while this one writes: this one takes the next version."""
    from multimodal_tf.serving import export

    model_dir, published = tmp_path / "m", []
    write_warmup = export.write_warmup_requests

    def meanwhile(*args, **kwargs):
        write_warmup(*args, **kwargs)
        if not published:  # the other export starts and finishes inside this one
            published.append(None)
            published[0] = export_saved_model(untrained, model_dir, version=version)

    monkeypatch.setattr(export, "write_warmup_requests", meanwhile)
    version = None
    assert export_saved_model(untrained, model_dir).name == "2"
    assert published[0].name == "1"
    assert sorted(p.name for p in model_dir.iterdir()) == ["1", "2"]

    published.clear()
    version = 5
    with pytest.raises(DataError, match="5 was written by another export while this one ran"):
        export_saved_model(untrained, model_dir, version=5)
    assert published[0].name == "5" and (published[0] / "saved_model.pb").is_file()
    assert sorted(p.name for p in model_dir.iterdir()) == ["1", "2", "5"]
