"""Epoch seconds of the default model with tf.data's autotuning on or off over cached rows.

Keras makes a new dataset iterator every epoch, and destroying the previous
one waits for tf.data's autotuning thread; over rows cached in memory there is
nothing left to tune, so `from_memory()` turns autotuning off for them
(`make_dataset(cache=True)`: decoded images that fit in
`data.cache_decoded_images_mb`).
This script runs `train()` on the same data and config both ways, interleaved
round by round, and prints each run's second-stage epochs: seconds from the
start of an epoch to the start of its validation, the first step's
milliseconds, the epochs whose first step took over a second, each run's val
macro-F1 (the same model either way), and the medians. Usage:

    .venv/bin/python benchmarks/epoch_stalls.py \\
        --data ../shared/data/mvsa_single/manifest.csv --epochs 8 --repeats 2
"""

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

from multimodal_tf.config import RunConfig  # noqa: E402
from multimodal_tf.data import dataset as dataset_module  # noqa: E402
from multimodal_tf.training import fit  # noqa: E402


class EpochTimer(keras.callbacks.Callback):
    """Seconds from each epoch's start to its validation, and its first step's."""

    def __init__(self):
        super().__init__()
        self.epochs = []

    def on_epoch_begin(self, epoch, logs=None):
        self.start, self.first = time.perf_counter(), None

    def on_train_batch_end(self, batch, logs=None):
        if self.first is None:
            self.first = time.perf_counter() - self.start

    def on_test_begin(self, logs=None):
        self.epochs.append((time.perf_counter() - self.start, self.first))


def run(manifest, config, autotune):
    """`(epochs, val macro-F1)` of one `train()`; `autotune` undoes `from_memory`."""
    timer = EpochTimer()
    callbacks = fit.training_callbacks
    original = dataset_module.from_memory

    def with_timer(*args, **kwargs):
        chosen, initial_epoch = callbacks(*args, **kwargs)
        return [timer, *chosen], initial_epoch

    fit.training_callbacks = with_timer
    if autotune:
        dataset_module.from_memory = lambda dataset: dataset
    try:
        with tempfile.TemporaryDirectory() as folder:
            result = fit.train(manifest, config, folder, verbose=0)
    finally:
        fit.training_callbacks = callbacks
        dataset_module.from_memory = original
    return timer.epochs, result.metrics["val"]["macro_f1"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="A manifest with a split column.")
    parser.add_argument("--epochs", type=int, default=8, help="Second-stage epochs.")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    config = RunConfig()
    config.training.epochs = args.epochs
    config.training.drop_deep_if_worse = False  # every epoch runs: no early stop
    config.training.report = False
    print(
        f"train(), the default config: {args.repeats} round(s), {os.cpu_count()} cores, "
        f"{args.epochs} second-stage epochs, the first (tracing, filling the cache) left out"
    )
    epochs = {"autotune on": [], "autotune off": []}
    for round_index in range(args.repeats):
        for name in epochs:
            timed, score = run(args.data, config, autotune=name == "autotune on")
            later = timed[1:]
            epochs[name] += later
            stalls = sum(first > 1.0 for _, first in later)
            print(
                f"round {round_index + 1}, {name:12s}: epochs "
                + " ".join(f"{seconds:.1f}" for seconds, _ in later)
                + " s; first steps "
                + " ".join(f"{1000 * first:.0f}" for _, first in later)
                + f" ms; {stalls} of {len(later)} over 1 s; val macro-F1 {score:.4f}"
            )
    before, after = (statistics.median(s for s, _ in values) for values in epochs.values())
    means = [statistics.mean(s for s, _ in values) for values in epochs.values()]
    print(
        f"median epoch: autotune on {before:.2f} s, off {after:.2f} s ({before / after:.2f}x); "
        f"mean: on {means[0]:.2f} s, off {means[1]:.2f} s ({means[0] / means[1]:.2f}x)"
    )


if __name__ == "__main__":
    main()
