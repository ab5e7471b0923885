"""SIGKILL at random moments of the final saves and of export never leaves a half-written file."""

import json
import random
import subprocess
import sys
import time
import zipfile

import keras
import numpy as np
import pytest
from tensorflow.core.protobuf import saved_model_pb2

from multimodal_tf.serving.export import LABELS_FILE
from tests.helpers import tiny_model

KILLS = 20
# Saves, in a loop, what the end of a run and `export` write: model.keras, metrics.json
# (round n: every weight of the head's kernel is n) and a new exported version.
CHILD = """
import json, sys
from pathlib import Path
import keras
import multimodal_tf.models
from multimodal_tf.files import write_text_atomically
from multimodal_tf.serving.export import export_saved_model
from multimodal_tf.training.callbacks import save_model_atomically

folder = Path(sys.argv[1])
model = keras.saving.load_model(folder / "source.keras")
kernel = model.get_layer("label").weights[0]
start = json.loads((folder / "metrics.json").read_text())["round"] + 1
print("ready", flush=True)
for number in range(start, start + 1000):
    kernel.assign(kernel * 0 + number)
    save_model_atomically(model, folder / "model.keras")
    write_text_atomically(folder / "metrics.json", json.dumps({"round": number}))
    export_saved_model(model, folder / "served", warmup_samples=[("hot", b"")])
"""


def _round_of(model_file):
    with zipfile.ZipFile(model_file) as archive:
        assert archive.testzip() is None
    model = keras.saving.load_model(model_file)
    values = np.unique(keras.ops.convert_to_numpy(model.get_layer("label").weights[0]))
    assert len(values) == 1, values  # one round's weights, not a mix
    return int(values[0])


def _check_version(version_dir):
    graph = saved_model_pb2.SavedModel()
    graph.ParseFromString((version_dir / "saved_model.pb").read_bytes())
    assert graph.meta_graphs, version_dir
    assert (version_dir / "variables" / "variables.index").stat().st_size > 0
    assert (version_dir / "assets.extra" / LABELS_FILE).read_text().split() == ["warm", "cold"]


@pytest.mark.slow
def test_kills_leave_the_old_or_the_new_complete_file(tmp_path):
    model = tiny_model(modality_dropout=0.2)  # serves a missing image: warm-up without one
    model.save(tmp_path / "source.keras")
    (tmp_path / "metrics.json").write_text(json.dumps({"round": 0}))
    rng = random.Random(0)
    seen_rounds, killed_during = set(), 0
    cycle = 3.0  # seconds of one round; measured on the first child
    for kill in range(KILLS):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(tmp_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert child.stdout.readline().strip() == "ready"
        began = time.monotonic()
        if kill == 0:  # one whole round, to know how long a round takes
            while json.loads((tmp_path / "metrics.json").read_text())["round"] == 0:
                time.sleep(0.05)
            cycle = max(0.5, time.monotonic() - began)
        time.sleep(rng.uniform(0.05, cycle))
        killed_during += child.poll() is None
        child.kill()
        child.wait()

        metrics_round = json.loads((tmp_path / "metrics.json").read_text())["round"]
        model_round = _round_of(tmp_path / "model.keras")
        # metrics.json is written after model.keras: the same round, or the model one ahead.
        assert model_round in (metrics_round, metrics_round + 1)
        seen_rounds.add(model_round)
        versions = [p for p in (tmp_path / "served").iterdir() if p.name.isdigit()]
        for version in versions:
            _check_version(version)
    assert killed_during == KILLS  # every kill came while the child was saving
    assert len(seen_rounds) > KILLS // 2  # the kills fell on different rounds
    leftovers = [p.name for p in (tmp_path / "served").iterdir() if not p.name.isdigit()]
    assert len(leftovers) <= 1  # at most the staging folder of the last kill
