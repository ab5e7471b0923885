"""`training.strategy`: which `tf.distribute` strategy `train()` builds the model under."""

import os

import tensorflow as tf

from multimodal_tf.errors import ConfigError

STRATEGIES = ("none", "mirrored", "multi_worker")


def make_strategy(name):
    """The `tf.distribute.Strategy` for `training.strategy`.

    - `none`: TensorFlow's default strategy (one device).
    - `mirrored`: `MirroredStrategy` over every GPU, or, without GPUs, every
      logical CPU device (one replica per device; a machine's CPU is one
      device unless split with `tf.config.set_logical_device_configuration`).
    - `multi_worker`: `MultiWorkerMirroredStrategy`; every worker runs the
      same command with its own `TF_CONFIG` (see the README).

    Args:
        name: str. One of `STRATEGIES`.

    Example:
    >>> strategy = make_strategy("mirrored")  # doctest: +SKIP
    >>> strategy.num_replicas_in_sync  # doctest: +SKIP
    2
    """
    if name == "none":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([device.name for device in devices])
    if name == "multi_worker":
        if not os.environ.get("TF_CONFIG"):
            raise ConfigError(
                "training.strategy: multi_worker needs the TF_CONFIG environment variable "
                '(e.g. {"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                '"task": {"type": "worker", "index": 0}}) on every worker.'
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ConfigError(f"training.strategy: {name!r} is not one of {', '.join(STRATEGIES)}.")


def shard_by_data(dataset):
    """Each worker trains on its share of the batches (manifest rows are not files)."""
    return _with_shard_policy(dataset, tf.data.experimental.AutoShardPolicy.DATA)


def every_worker_sees_all(dataset):
    """Each worker evaluates every batch, so validation metrics are exact and equal.

    Keras averages logged metrics over workers; sharded, a worker's macro-F1
    would be its shard's, and workers could disagree on the best epoch.
    """
    return _with_shard_policy(dataset, tf.data.experimental.AutoShardPolicy.OFF)


def _with_shard_policy(dataset, policy):
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = policy
    return dataset.with_options(options)
