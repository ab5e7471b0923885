"""Seconds of the wide path's first stage with a pretrained backbone: streamed vs cached.

With `model.wide_image`, the first stage (`training.wide_epochs`) trains a linear
model over the TF-IDF bag and the frozen backbone's pooled image features. Those
features do not change between epochs. This script times `fit_wide_first` on
the same data, model and number of epochs, in one run and interleaved round by
round:

  (a) streamed: the backbone runs over every training and validation batch of
      every epoch (`cache_bytes=0`; what every run did before session 13),
  (b) cached: the features are computed once and kept in memory with the token
      ids (`pooled_batches`; what `train()` does when they fit in
      `data.cache_decoded_images_mb`).

Both fit exactly `--epochs` epochs (early stopping's patience is as long), after
one untimed pass that fills the decoded-image cache of the training pipeline, so
both start from decoded images in memory. It prints each variant's seconds, the
ratio, and the best val macro-F1 each reached (the cached variant shuffles its
rows with its own `tf.data` pipeline, so the two differ by the usual
seed-to-seed noise). Usage:

    .venv/bin/python benchmarks/wide_first.py \\
        --data ../shared/data/mvsa_single/manifest.csv \\
        --backbone-weights ../shared/weights/mobilenet_v2_0.35_224_no_top_imagenet_tm.weights.h5
"""

import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
from pretrained_setup import parse_args, pretrained_setup  # noqa: E402

from multimodal_tf.training.run_model import build_model  # noqa: E402
from multimodal_tf.training.wide_first import fit_wide_first  # noqa: E402


def main(argv=None):
    args = parse_args(__doc__.split("\n")[0], argv, epochs=8)
    config, source, preprocessor, train, val = pretrained_setup(args.data, args.backbone_weights)
    data, training = config.data, config.training
    names = source.class_names
    print(
        f"{len(source.train_labels())} training rows, {args.epochs} epochs, "
        f"{os.cpu_count()} cores, images {data.image_size[0]} px"
    )

    variants = {"streamed": 0, "cached": data.cache_decoded_images_mb * 2**20}
    seconds = {name: [] for name in variants}
    scores = {name: [] for name in variants}
    for repeat in range(args.repeats):
        for name, cache_bytes in variants.items():
            keras.utils.set_random_seed(training.seed + repeat)
            rows = len(source.train_labels())
            model = build_model(config.model, names, preprocessor, num_train=rows)
            start = time.perf_counter()
            best = fit_wide_first(
                model,
                train,
                val,
                epochs=args.epochs,
                patience=args.epochs,
                learning_rate=training.learning_rate,
                label_smoothing=training.label_smoothing,
                verbose=0,
                batch_size=data.batch_size,
                cache_bytes=cache_bytes,
            )
            seconds[name].append(time.perf_counter() - start)
            scores[name].append(best["val_macro_f1"])
            print(f"  round {repeat + 1} {name:8s} {seconds[name][-1]:6.1f} s", flush=True)

    print(f"\n| first stage, {args.epochs} epochs | seconds (median) | best val macro-F1 |")
    print("|---|---:|---|")
    for name in variants:
        values = ", ".join(f"{score:.3f}" for score in scores[name])
        print(f"| {name} | {statistics.median(seconds[name]):.1f} | {values} |")
    ratio = statistics.median(seconds["streamed"]) / statistics.median(seconds["cached"])
    print(f"\ncached is {ratio:.1f}x faster than streamed")


if __name__ == "__main__":
    main()
