"""Seconds per epoch of the pretrained model's second stage: augmented, plain, cached maps.

After the wide path's first stage, `train()` fits the rest of the model. With a
frozen pretrained backbone, most of an epoch is that backbone over every image.
This script times `fit_second_stage` on the same data and model, interleaved
round by round, for `--epochs` epochs each (no early stopping), after one
untimed pass that fills the decoded-image caches, so every variant starts from
decoded images in memory:

  (a) augmented: `model.image_augmentation: true` (the default before session 15);
      the backbone runs over freshly augmented images every epoch,
  (b) plain: no augmentation (`auto` for a frozen backbone), maps recomputed
      every epoch (`data.cache_decoded_images_mb: 0` for them),
  (c) cached: no augmentation, maps computed once and kept in memory
      (`FeatureMapCache`; what `train()` does when they fit).

The cached variant's seconds include computing the maps, once, in its first
epoch. Before the epochs, it times that computation alone for both splits
(`cached_rows`), one batch at a time against several batches at once (tf.data
runs each map call on one thread), interleaved round by round. It prints each
variant's median seconds, the ratios, and the best val macro-F1 each reached
(the variants shuffle rows differently and (a) trains on other images, so
these differ by seed noise). Usage:

    .venv/bin/python benchmarks/second_stage.py \\
        --data ../shared/data/mvsa_single/manifest.csv \\
        --backbone-weights ../shared/weights/mobilenet_v2_0.35_224_no_top_imagenet_tm.weights.h5
"""

import math
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from pretrained_setup import parse_args, pretrained_setup  # noqa: E402

from multimodal_tf.training.feature_maps import (  # noqa: E402
    _to_map,
    cached_rows,
    fit_second_stage,
)
from multimodal_tf.training.run_model import build_model, learning_rate  # noqa: E402


def main(argv=None):
    args = parse_args(__doc__.split("\n")[0], argv, epochs=4)
    config, source, preprocessor, train, val = pretrained_setup(args.data, args.backbone_weights)
    data, training = config.data, config.training
    names = source.class_names
    rows = len(source.train_labels())
    print(
        f"{rows} training rows, {args.epochs} epochs per variant, {os.cpu_count()} cores, "
        f"images {data.image_size[0]} px"
    )

    cache_bytes = data.cache_decoded_images_mb * 2**20
    model = build_model(config.model, names, preprocessor, num_train=rows)
    to_map = _to_map(model)  # what FeatureMapCache keeps

    computing = {"one batch at a time": None, "in parallel (AUTOTUNE)": tf.data.AUTOTUNE}
    map_seconds = {name: [] for name in computing}
    for _ in range(args.repeats):
        for name, parallel in computing.items():
            start = time.perf_counter()
            for batches, shuffle in ((train, True), (val, False)):
                for _ in cached_rows(batches, to_map, data.batch_size, shuffle, parallel):
                    pass
            map_seconds[name].append(time.perf_counter() - start)
    print("\n| computing the maps of both splits | seconds (median) |")
    print("|---|---:|")
    for name, values in map_seconds.items():
        print(f"| {name} | {statistics.median(values):.1f} |")
    print()
    variants = {"augmented": (True, 0), "plain": (False, 0), "cached": (False, cache_bytes)}
    seconds = {name: [] for name in variants}
    scores = {name: [] for name in variants}
    steps = math.ceil(rows / data.batch_size) * args.epochs
    for repeat in range(args.repeats):
        for name, (augment, cache) in variants.items():
            keras.utils.set_random_seed(training.seed + repeat)
            config.model.image_augmentation = augment
            model = build_model(config.model, names, preprocessor, num_train=rows)
            model.compile(
                learning_rate=learning_rate(training, steps),
                weight_decay=training.weight_decay,
                label_smoothing=training.label_smoothing,
            )
            start = time.perf_counter()
            history = fit_second_stage(
                model,
                train,
                val,
                [],
                epochs=args.epochs,
                batch_size=data.batch_size,
                cache_bytes=cache,
            )
            seconds[name].append((time.perf_counter() - start) / args.epochs)
            scores[name].append(max(history.history["val_macro_f1"]))
            print(f"  round {repeat + 1} {name:9s} {seconds[name][-1]:5.1f} s/epoch", flush=True)

    print(f"\n| second stage, {args.epochs} epochs | s/epoch (median) | best val macro-F1 |")
    print("|---|---:|---|")
    for name in variants:
        values = ", ".join(f"{score:.3f}" for score in scores[name])
        print(f"| {name} | {statistics.median(seconds[name]):.1f} | {values} |")
    median = {name: statistics.median(values) for name, values in seconds.items()}
    print(
        f"\nplain is {median['augmented'] / median['plain']:.1f}x faster than augmented; "
        f"cached is {median['plain'] / median['cached']:.1f}x faster than plain and "
        f"{median['augmented'] / median['cached']:.1f}x faster than augmented"
    )


if __name__ == "__main__":
    main()
