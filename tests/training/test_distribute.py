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
import tensorflow as tf

from multimodal_tf.errors import ConfigError
from multimodal_tf.training.distribute import every_worker_sees_all, make_strategy, shard_by_data
from tests.conftest import make_tiny_config
from tests.helpers import built_once, write_config

# Both strategies are held to one device that takes one step per epoch over all 192
# training rows of the demo manifest. Full batches, because tf.data's distribution
# rewrite reshuffles: with smaller batches the runs would see the rows grouped differently.
GLOBAL_BATCH = 192
EPOCHS = 4


def _config(tmp_path, name, batch_size, **training):
    # No dropout or augmentation: replicas draw other random masks and crops
    # than one device would. The wide path's own first stage (training.wide_epochs)
    # runs under the strategy too; two epochs of it are enough to show that.
    changes = {
        "model": dict(
            dropout_rate=0.0, token_dropout=0.0, modality_dropout=0.0, image_augmentation=False
        ),
        "data": {"batch_size": batch_size},  # per replica
        "training": dict(tensorboard=False, wide_epochs=2, epochs=EPOCHS, **training),
    }
    return write_config(tmp_path, make_tiny_config(), changes, name=f"{name}.json")


@pytest.fixture(scope="module")
def small_demo_manifest(tmp_path_factory):
    """240 demo rows at 32 px: every worker's share is a few steps."""
    from multimodal_tf.data.demo import make_demo_dataset

    folder = built_once(
        tmp_path_factory,
        "distribute-demo",
        lambda folder: make_demo_dataset(folder, num_samples=240, image_size=32),
    )
    return folder / "manifest.csv"


@pytest.fixture(scope="module")
def one_device_run(small_demo_manifest, tmp_path_factory):
    """The run folder of one device on the global batch, trained once per session."""
    from multimodal_tf.config import load_config
    from multimodal_tf.training.fit import train

    def build(folder):
        config = load_config(_config(folder, "single", GLOBAL_BATCH))
        train(small_demo_manifest, config, folder / "run", verbose=0)

    return built_once(tmp_path_factory, "distribute-one-device", build) / "run"


def _finish(processes):
    for process in processes:
        _, errors = process.communicate(timeout=300)
        assert process.returncode == 0, errors.decode()[-3000:]


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for handle in sockets:
        handle.bind(("127.0.0.1", 0))
    ports = [handle.getsockname()[1] for handle in sockets]
    for handle in sockets:
        handle.close()
    return ports


def _losses(run, log="history.csv"):
    return [float(row["loss"]) for row in csv.DictReader((run / log).open())]


def _policy(dataset):
    return dataset.options().experimental_distribute.auto_shard_policy


def test_multi_worker_needs_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="TF_CONFIG"):
        make_strategy("multi_worker")


def test_workers_shard_training_batches_by_row_and_score_every_selection_batch():
    # Set, not left to tf.data's default (AUTO), which shards by file wherever it
    # finds files to shard (a prepared folder's TFRecords) and by row elsewhere.
    batches = tf.data.Dataset.range(8).batch(2)
    assert _policy(shard_by_data(batches)) == tf.data.experimental.AutoShardPolicy.DATA
    assert _policy(every_worker_sees_all(batches)) == tf.data.experimental.AutoShardPolicy.OFF


@pytest.mark.slow
def test_two_workers_each_train_on_their_share_and_follow_the_one_device_loss(
    small_demo_manifest, one_device_run, tmp_path
):
    # Two workers of 96 rows take the step one device takes with all 192 training
    # rows only if each trains on its own half of them; given every batch, both
    # would step on the same rows and the loss would leave the one device's.
    config = _config(tmp_path, "workers", GLOBAL_BATCH // 2, strategy="multi_worker")
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    workers = []
    for index in range(2):
        environment = dict(
            os.environ,
            TF_CPP_MIN_LOG_LEVEL="3",
            TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
        )
        command = [sys.executable, "-m", "multimodal_tf", "train", "--quiet"]
        command += ["--manifest", str(small_demo_manifest), "--config", str(config)]
        command += ["--output", str(tmp_path / f"worker-{index}")]
        workers.append(
            subprocess.Popen(
                command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
        )
    _finish(workers)

    runs = [tmp_path / f"worker-{index}" for index in range(2)]
    for run in runs:
        assert json.loads((run / "run.json").read_text())["replicas"] == 2
        assert json.loads((run / "metrics.json").read_text())["num_train"] == GLOBAL_BATCH
    assert _losses(runs[0]) == _losses(runs[1])  # logs are averaged over the workers
    first, second = (keras.saving.load_model(run / "model.keras") for run in runs)
    for a, b in zip(first.get_weights(), second.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    # Both stages, the wide path's first, train on sharded batches.
    for log in ("wide_history.csv", "history.csv"):
        np.testing.assert_allclose(
            _losses(runs[0], log),
            _losses(one_device_run, log),
            rtol=1e-4,
            err_msg=f"{log}: two workers' loss is not one device's on all the rows",
        )


@pytest.mark.slow
def test_mirrored_over_two_cpus_follows_the_one_device_loss(
    small_demo_manifest, one_device_run, tmp_path
):
    # Two replicas of 96 rows take the step one device takes with all 192 training rows.
    mirrored = _config(tmp_path, "mirrored", GLOBAL_BATCH // 2, strategy="mirrored")
    script = textwrap.dedent(
        f"""
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2
        )
        from multimodal_tf.config import load_config
        from multimodal_tf.training.fit import train
        train({str(small_demo_manifest)!r}, load_config({str(mirrored)!r}),
              {str(tmp_path / "mirrored")!r}, verbose=0)
        """
    )
    subprocess.run(
        [sys.executable, "-c", script],
        check=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
        timeout=300,
    )
    run = tmp_path / "mirrored"
    assert json.loads((run / "run.json").read_text())["replicas"] == 2
    assert json.loads((run / "metrics.json").read_text())["num_train"] == GLOBAL_BATCH
    losses = _losses(run)
    assert losses[-1] < losses[0]  # it learns, so the comparison is of a real trajectory
    for log in ("wide_history.csv", "history.csv"):  # both stages
        np.testing.assert_allclose(
            _losses(run, log), _losses(one_device_run, log), rtol=1e-4, err_msg=log
        )
