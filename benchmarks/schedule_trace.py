"""What a branch-free learning-rate schedule saves, side by side with Keras's `CosineDecay`.

`train()`'s cosine schedule with a warm-up was Keras's `CosineDecay(...,
warmup_target=...)`, which builds an `ops.cond` every time the rate is read;
AdamW reads it once per variable (its weight decay), so tracing the train step
built dozens of `cond`s and every step ran one `If` op per variable.
`WarmupCosineDecay` gives the same rates with `ops.where`. This script trains
the same small model with each schedule in interleaved rounds (the machines are
shared and noisy) and prints, per run, the whole `train()` and the second
stage's first step (tracing the train step and running it), then the ratio of
the medians. Usage:

    .venv/bin/python benchmarks/schedule_trace.py --rounds 3
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' own small config

import keras  # noqa: E402

import multimodal_tf as mtf  # noqa: E402
from multimodal_tf.training import fit, run_model  # noqa: E402
from tests.conftest import make_tiny_config as small_config  # noqa: E402

OURS = run_model.learning_rate


def keras_cosine_decay(training, total_steps):
    """The schedule `train()` used before: Keras's `CosineDecay` with the same rates."""
    schedule = OURS(training, total_steps)
    if training.lr_schedule == "constant":
        return schedule
    return keras.optimizers.schedules.CosineDecay(
        0.0,
        decay_steps=schedule.decay_steps,
        alpha=schedule.alpha,
        warmup_target=schedule.peak,
        warmup_steps=schedule.warmup_steps,
    )


class FirstStep(keras.callbacks.Callback):
    """Seconds from `on_train_begin` to the end of the first batch, of the last `fit`."""

    seconds = None

    def on_train_begin(self, logs=None):
        self.started = time.perf_counter()
        self.done = False

    def on_train_batch_end(self, batch, logs=None):
        if not self.done:
            FirstStep.seconds = time.perf_counter() - self.started
            self.done = True


def with_first_step(make_callbacks):
    def wrapped(*args, **kwargs):
        callbacks, initial_epoch = make_callbacks(*args, **kwargs)
        return [FirstStep(), *callbacks], initial_epoch

    return wrapped


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--samples", type=int, default=120, help="Demo rows to train on.")
    args = parser.parse_args()
    folder = tempfile.mkdtemp()
    manifest = mtf.make_demo_dataset(f"{folder}/data", num_samples=args.samples, image_size=16)
    fit.training_callbacks = with_first_step(fit.training_callbacks)  # the second stage's fit
    mtf.train(manifest, small_config(), f"{folder}/warm-up", verbose=0)  # imports, spaCy
    schedules = {"keras CosineDecay": keras_cosine_decay, "WarmupCosineDecay": OURS}
    seconds = {name: [] for name in schedules}
    first = {name: [] for name in schedules}
    for round_index in range(args.rounds):
        for name, schedule in schedules.items():
            run_model.learning_rate = schedule
            start = time.perf_counter()
            mtf.train(manifest, small_config(), f"{folder}/{round_index}-{name}", verbose=0)
            seconds[name].append(time.perf_counter() - start)
            first[name].append(FirstStep.seconds)
            print(
                f"round {round_index}: {name:18} train() {seconds[name][-1]:.2f} s, "
                f"second stage's first step {first[name][-1]:.2f} s",
                flush=True,
            )
    run_model.learning_rate = OURS
    (old, new), (old_first, new_first) = (
        [statistics.median(values[name]) for name in schedules] for values in (seconds, first)
    )
    print(
        f"medians: train() {old:.2f} -> {new:.2f} s ({old / new:.2f}x); "
        f"first step {old_first:.2f} -> {new_first:.2f} s ({old_first / new_first:.2f}x)"
    )


if __name__ == "__main__":
    main()
