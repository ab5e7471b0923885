"""Seconds per `tune()` trial of the pretrained model: fitting on images vs on cached maps.

`tune()` fits each trial as `train()` does (`fit_second_stage`): with a frozen
pretrained backbone and no image augmentation, over feature maps computed once
per trial. Before session 16 its trials fit the classifier on the images, the
backbone running over every image in every epoch. This script runs the same
search (same seed, so the same hyperparameters trial by trial) both ways,
interleaved round by round, and prints each trial's seconds and epochs, the
median seconds per trial and per epoch, their ratio, and each trial's val
macro-F1 (the two ways shuffle rows differently, so scores differ by seed
noise). Usage:

    .venv/bin/python benchmarks/tune_speed.py \\
        --data ../shared/data/mvsa_single/manifest.csv \\
        --backbone-weights ../shared/weights/mobilenet_v2_0.35_224_no_top_imagenet_tm.weights.h5 \\
        --trials 2 --repeats 1
"""

import csv
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pretrained_setup import parse_args, pretrained_config  # noqa: E402

from multimodal_tf.training import tune as tune_module  # noqa: E402


def _fit_on_images(self, hp, model, x, validation_data=None, callbacks=(), **kwargs):
    """What a trial's fit was before session 16: the classifier, images in."""
    return model.fit(x, validation_data=validation_data, callbacks=list(callbacks), **kwargs)


def run(manifest, config, trials, on_images):
    cached_fit = tune_module._TrialModel.fit
    if on_images:
        tune_module._TrialModel.fit = _fit_on_images
    try:
        with tempfile.TemporaryDirectory() as folder:
            started = time.perf_counter()
            result = tune_module.tune(manifest, config, trials=trials, output_dir=folder)
            seconds = time.perf_counter() - started
            with open(Path(folder) / "trials.csv", newline="") as handle:
                rows = list(csv.DictReader(handle))
    finally:
        tune_module._TrialModel.fit = cached_fit
    return seconds, result.best_score, rows


def main(argv=None):
    import argparse

    extra = argparse.ArgumentParser(add_help=False)
    extra.add_argument("--trials", type=int, default=2)
    known, rest = extra.parse_known_args(argv)
    args = parse_args(__doc__.split("\n")[0], rest, epochs=30)
    config = pretrained_config(args.backbone_weights)
    config.training.epochs = args.epochs
    print(
        f"tune(): {known.trials} trials per search, {args.repeats} round(s), "
        f"{os.cpu_count()} cores, images {config.data.image_size[0]} px"
    )
    per_trial = {"images": [], "cached maps": []}
    per_epoch = {"images": [], "cached maps": []}
    for round_index in range(args.repeats):
        for name in per_trial:
            seconds, best, rows = run(args.data, config, known.trials, name == "images")
            for row in rows:
                trial_seconds, epochs = float(row["seconds"]), int(row["epochs"])
                per_trial[name].append(trial_seconds)
                per_epoch[name].append(trial_seconds / epochs)
                print(
                    f"round {round_index + 1}, {name:11s} trial {row['trial_id']}: "
                    f"{trial_seconds:6.1f} s, {epochs:2d} epochs, val macro-F1 "
                    f"{float(row['val_macro_f1']):.4f}"
                )
            print(f"round {round_index + 1}, {name:11s} search: {seconds:6.1f} s, best {best:.4f}")
    before, after = (statistics.median(per_trial[name]) for name in per_trial)
    epoch_before, epoch_after = (statistics.median(per_epoch[name]) for name in per_epoch)
    print(
        f"median s/trial: images {before:.1f}, cached maps {after:.1f} "
        f"({before / after:.2f}x); median s/epoch (first stage included): "
        f"{epoch_before:.1f} vs {epoch_after:.1f} ({epoch_before / epoch_after:.2f}x)"
    )


if __name__ == "__main__":
    main()
