"""`fit`/`evaluate` plumbing for Keras models in this package, apart from what they compute."""

import keras
import tensorflow as tf
from keras import ops


def _multi_worker(strategy):
    return (
        isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
        and strategy.extended._in_multi_worker_mode()
    )


def _dataset_element_spec(iterator):
    """The element_spec of the dataset a `fit`/`evaluate` epoch iterator reads, else None.

    Keras's TF epoch iterator turns any input (a tf.data.Dataset, NumPy arrays or
    tensors, a generator) into one dataset before the first step, with
    `class_weight`'s sample weights in it; its spec is read without reading a
    batch. An iterator without that dataset returns None and Keras builds as it
    always does.
    """
    return getattr(getattr(iterator, "_distributed_dataset", None), "element_spec", None)


class StrategyAwareFit:
    """A `keras.Model` mixin: `fit` traces once and works under every `tf.distribute` strategy.

    Two Keras (3.15, TF backend) behaviours are mended here, not in the model:
    without a strategy the optimizer and metrics are built inside the first
    trace of `train_step` (so it is traced twice); under
    `MultiWorkerMirroredStrategy` the first batch and the step logs are
    reduced with `strategy.reduce(axis=0)`, which fails on a feature dict and
    on scalars. Put it before `keras.Model` in the bases.

    Example:
    >>> class MyModel(StrategyAwareFit, keras.Model):  # doctest: +SKIP
    ...     pass
    """

    def train_step(self, data):
        return self._mergeable_logs(super().train_step(data))

    def test_step(self, data):
        return self._mergeable_logs(super().test_step(data))

    def _mergeable_logs(self, logs):
        # Keras 3 averages a multi-worker step's logs with `strategy.reduce(
        # "MEAN", value, axis=0)`, which fails on scalars (tensorflow#72388);
        # a length-1 vector per worker averages to the mean over workers.
        if not _multi_worker(self._distribute_strategy):
            return logs
        return {name: ops.reshape(value, (1,)) for name, value in logs.items()}

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras (3.15, TF backend) builds metrics from a first batch that it
        # averages over replicas with `strategy.reduce`, which fails for a dict of
        # features under MultiWorkerMirroredStrategy (keras-team/keras#20329).
        # Only shapes and dtypes matter here, which one replica's slice has.
        strategy = self._distribute_strategy
        if strategy is None:
            # Without a strategy Keras defers building the optimizer and the
            # compiled metrics to the first trace of `train_step`; their
            # variables are then created inside it and tf.function traces it
            # again (about 4 s per `fit` on 2 cores). Building first from the
            # dataset's element_spec traces once and reads no batch, so a
            # `cache()` or the shuffle order is untouched.
            spec = _dataset_element_spec(iterator)
            if spec is not None:
                self._symbolic_build(data_batch=spec)
            return None
        if iterator is None:
            return super()._maybe_symbolic_build(iterator, data_batch)
        for _, _, batches in iterator:
            data_batch = keras.tree.map_structure(
                lambda value: strategy.experimental_local_results(value)[0], next(batches)
            )
            break
        with strategy.scope():
            self._symbolic_build(data_batch=data_batch)
