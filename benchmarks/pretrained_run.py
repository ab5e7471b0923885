"""Seconds of the pretrained model's `train()`: one backbone pass for both stages, or one each.

With a frozen pretrained backbone and `model.wide_image`, the first stage reads
the backbone's pooled features and the second stage its feature maps, each
computed once. Since session 16 both come from one pass of the backbone over
the images (`FeatureMapCache`); before, each stage ran its own. This script
runs `train()` on the same data and config both ways, interleaved round by
round, and prints each run's seconds (`train_seconds`: both stages, after the
data is loaded), its val macro-F1, their medians and the ratio. Usage:

    .venv/bin/python benchmarks/pretrained_run.py \\
        --data ../shared/data/mvsa_single/manifest.csv \\
        --backbone-weights ../shared/weights/mobilenet_v2_0.35_224_no_top_imagenet_tm.weights.h5 \\
        --repeats 2
"""

import os
import statistics
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pretrained_setup import parse_args, pretrained_config  # noqa: E402

from multimodal_tf.training import fit, wide_first  # noqa: E402


def run(manifest, config, shared_pass):
    share = wide_first.share_feature_maps
    if not shared_pass:  # each stage computes its own: no cache handed on
        wide_first.share_feature_maps = lambda *args, **kwargs: None
    try:
        with tempfile.TemporaryDirectory() as folder:
            result = fit.train(manifest, config, folder, verbose=0)
    finally:
        wide_first.share_feature_maps = share
    return result.metrics["train_seconds"], result.metrics["val"]["macro_f1"]


def main(argv=None):
    args = parse_args(__doc__.split("\n")[0], argv, epochs=30)
    config = pretrained_config(args.backbone_weights)
    config.training.epochs = args.epochs
    config.training.report = False
    config.training.tensorboard = False
    print(
        f"train(): {args.repeats} round(s), {os.cpu_count()} cores, "
        f"images {config.data.image_size[0]} px, seed {config.training.seed}"
    )
    seconds = {"one pass each": [], "one shared pass": []}
    for round_index in range(args.repeats):
        for name in seconds:
            took, score = run(args.data, config, name == "one shared pass")
            seconds[name].append(took)
            print(f"round {round_index + 1}, {name:15s}: {took:6.1f} s, val macro-F1 {score:.4f}")
    before, after = (statistics.median(values) for values in seconds.values())
    print(
        f"median seconds: one pass each {before:.1f}, one shared pass {after:.1f} "
        f"({before / after:.2f}x, {before - after:.1f} s saved)"
    )


if __name__ == "__main__":
    main()
