"""A linear warm-up, then a cosine decay: the training runs' learning-rate schedule."""

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="multimodal_tf")
class WarmupCosineDecay(keras.optimizers.schedules.LearningRateSchedule):
    """From 0 up to `peak` in `warmup_steps`, then down to `alpha * peak` along a cosine.

    The values of Keras's `CosineDecay(0.0, decay_steps, alpha,
    warmup_target=peak, warmup_steps=warmup_steps)`, computed without a
    branch: Keras's version builds an `ops.cond` (two branch graphs) every
    time the rate is read, and `AdamW` reads it once per variable for its
    weight decay, so a small model's train step spent about a third of its
    tracing there and ran one `If` op per variable at every step. This one
    computes both pieces and picks one with `ops.where`. After
    `warmup_steps + decay_steps` the rate stays at `alpha * peak`.

    Args:
        peak: float. The rate at the end of the warm-up.
        warmup_steps: int. Steps of the linear warm-up from 0 (0: none).
        decay_steps: int. Steps of the cosine decay after it (at least 1).
        alpha: float. The last rate as a fraction of `peak`.
        name: str. The ops' name scope.

    Example:
    >>> schedule = WarmupCosineDecay(1e-3, warmup_steps=10, decay_steps=90, alpha=0.01)
    >>> [round(float(schedule(step)), 6) for step in (0, 5, 10, 100)]
    [0.0, 0.0005, 0.001, 1e-05]
    """

    def __init__(self, peak, warmup_steps, decay_steps, alpha=0.0, name="warmup_cosine_decay"):
        super().__init__()
        if warmup_steps < 0 or decay_steps < 1:
            raise ValueError(
                f"`warmup_steps` must be 0 or more and `decay_steps` 1 or more; received "
                f"{warmup_steps} and {decay_steps}."
            )
        self.peak = float(peak)
        self.warmup_steps = int(warmup_steps)
        self.decay_steps = int(decay_steps)
        self.alpha = float(alpha)
        self.name = name

    def __call__(self, step):
        with keras.name_scope(self.name):
            warmup = float(self.warmup_steps)
            step = ops.minimum(ops.cast(step, "float32"), warmup + self.decay_steps)
            warming = self.peak * step / max(warmup, 1.0)
            fraction = ops.maximum(step - warmup, 0.0) / self.decay_steps
            cosine = 0.5 * (1.0 + ops.cos(math.pi * fraction))
            decayed = self.peak * ((1.0 - self.alpha) * cosine + self.alpha)
            return ops.where(step < warmup, warming, decayed)

    def get_config(self):
        return {
            "peak": self.peak,
            "warmup_steps": self.warmup_steps,
            "decay_steps": self.decay_steps,
            "alpha": self.alpha,
            "name": self.name,
        }
