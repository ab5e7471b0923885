"""`training.strategy`: mirrored replicas and multi-worker training through tf.distribute."""

import csv
import json
import os
import socket
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from multimodal_tf.errors import ConfigError
from multimodal_tf.training.distribute import make_strategy


def _config(tiny_config, tmp_path, name, **training):
    values = tiny_config.to_dict()
    # No dropout or augmentation: replicas draw other random masks and crops
    # than one device would.
    values["model"].update(
        dropout_rate=0.0, token_dropout=0.0, modality_dropout=0.0, image_augmentation=False
    )
    # The wide path's own first stage (training.wide_epochs) runs under the strategy too;
    # two epochs of it are enough to show that, where its default runs 9 to 30.
    values["training"].update(tensorboard=False, wide_epochs=2, **training)
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(values))
    return path


@pytest.fixture
def demo_manifest(tmp_path):
    from multimodal_tf.data.demo import make_demo_dataset

    return make_demo_dataset(tmp_path / "demo", num_samples=240, image_size=32)


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for handle in sockets:
        handle.bind(("127.0.0.1", 0))
    ports = [handle.getsockname()[1] for handle in sockets]
    for handle in sockets:
        handle.close()
    return ports


def _losses(run):
    return [float(row["loss"]) for row in csv.DictReader((run / "history.csv").open())]


def test_multi_worker_needs_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="TF_CONFIG"):
        make_strategy("multi_worker")


@pytest.mark.slow
def test_two_workers_train_together_and_end_with_identical_weights(
    demo_manifest, tiny_config, tmp_path
):
    config = _config(tiny_config, tmp_path, "workers", strategy="multi_worker", epochs=2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    workers = []
    for index in range(2):
        environment = dict(
            os.environ,
            TF_CPP_MIN_LOG_LEVEL="3",
            TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
        )
        command = [sys.executable, "-m", "multimodal_tf", "train", "--quiet"]
        command += ["--manifest", str(demo_manifest), "--config", str(config)]
        command += ["--output", str(tmp_path / f"worker-{index}")]
        workers.append(subprocess.Popen(command, env=environment, stderr=subprocess.PIPE))
    for worker in workers:
        _, errors = worker.communicate(timeout=300)
        assert worker.returncode == 0, errors.decode()[-3000:]

    runs = [tmp_path / f"worker-{index}" for index in range(2)]
    for run in runs:
        assert json.loads((run / "run.json").read_text())["replicas"] == 2
    assert _losses(runs[0]) == _losses(runs[1])  # logs are averaged over the workers
    first, second = (keras.saving.load_model(run / "model.keras") for run in runs)
    for a, b in zip(first.get_weights(), second.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_mirrored_over_two_cpus_follows_the_one_device_loss(demo_manifest, tiny_config, tmp_path):
    # Two replicas of 96 rows take the step one device takes with all 192 training
    # rows. Full batches, because tf.data's distribution rewrite reshuffles: with
    # smaller batches the two runs would see the rows grouped differently.
    tiny_config.data.batch_size = 96
    mirrored = _config(tiny_config, tmp_path, "mirrored", strategy="mirrored", epochs=4)
    tiny_config.data.batch_size = 192
    single = _config(tiny_config, tmp_path, "single", epochs=4)
    script = textwrap.dedent(
        f"""
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2
        )
        from multimodal_tf.config import load_config
        from multimodal_tf.training.fit import train
        for name, config in (("mirrored", {str(mirrored)!r}), ("single", {str(single)!r})):
            result = train({str(demo_manifest)!r}, load_config(config),
                           {str(tmp_path)!r} + "/" + name, verbose=0)
        """
    )
    subprocess.run(
        [sys.executable, "-c", script],
        check=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
        timeout=300,
    )
    assert json.loads((tmp_path / "mirrored" / "run.json").read_text())["replicas"] == 2
    assert json.loads((tmp_path / "mirrored" / "metrics.json").read_text())["num_train"] == 192
    losses = _losses(tmp_path / "mirrored")
    assert losses[-1] < losses[0]  # it learns, so the comparison is of a real trajectory
    np.testing.assert_allclose(losses, _losses(tmp_path / "single"), rtol=1e-4)
