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

import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

sys.path.insert(0, str(Path(__file__).resolve().parent))

import keras  # noqa: E402
from small_runs import interleaved_runs, parse_args  # noqa: E402

from multimodal_tf.training import fit, run_model  # noqa: E402

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


def use(schedule):
    def switch_on():
        run_model.learning_rate = schedule

    return switch_on


def main():
    args = parse_args(__doc__)
    fit.training_callbacks = with_first_step(fit.training_callbacks)  # the second stage's fit
    arms = {"keras CosineDecay": use(keras_cosine_decay), "WarmupCosineDecay": use(OURS)}
    first = {name: [] for name in arms}

    def first_step(name):
        first[name].append(FirstStep.seconds)
        return f", second stage's first step {FirstStep.seconds:.2f} s"

    seconds = interleaved_runs(arms, args.rounds, args.samples, describe=first_step)
    run_model.learning_rate = OURS
    (old, new), (old_first, new_first) = (
        [statistics.median(values[name]) for name in arms] for values in (seconds, first)
    )
    print(
        f"medians: train() {old:.2f} -> {new:.2f} s ({old / new:.2f}x); "
        f"first step {old_first:.2f} -> {new_first:.2f} s ({old_first / new_first:.2f}x)"
    )


if __name__ == "__main__":
    main()
