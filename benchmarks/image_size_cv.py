"""Which input size for a frozen backbone's pooled features? Cross-validated on the training split.

The pretrained model's linear path (`model.wide_image`) reads the backbone's
average- and max-pooled feature map next to the text's n-grams, and on
MVSA-Single that linear path is the whole model (`training.drop_deep_if_worse`
drops the rest). This script asks a logistic regression over the same
features which `data.image_size` serves it best: for each size, the images
are decoded as the model decodes them (`ImageDecoder`), run through the frozen
backbone once, pooled, standardized on the training rows and divided by the
square root of their width (as `WideImageLogits` does), and appended to the
text's TF-IDF groups (`lexicon_cv.fit_predict`). Prints 5-fold
cross-validation on the training split (stratified, `--fold-seeds` shuffles),
then the model fit on the whole training split scored on val and on test:
accuracy / macro-F1 / weighted-F1. `none` as a size is the text alone. Choose
on the cross-validation and val columns; the test column is there to report.
Usage:

    .venv/bin/python benchmarks/image_size_cv.py \\
        --data ../shared/data/mvsa_single/manifest.csv \\
        --weights ../shared/weights/mobilenet_v2_0.35_224_no_top_imagenet_tm.weights.h5 \\
        --sizes none,128,192,224 --c 2

Needs scikit-learn (a benchmark extra).
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from lexicon_cv import cross_validate, feature_strings, figures, fit_predict  # noqa: E402

from multimodal_tf.config import RunConfig  # noqa: E402
from multimodal_tf.data.dataset import read_records  # noqa: E402
from multimodal_tf.data.manifest import read_manifest, split_records  # noqa: E402
from multimodal_tf.layers.preprocessing.image_decoder import ImageDecoder  # noqa: E402
from multimodal_tf.models.backbone_image_encoder import BackboneImageEncoder  # noqa: E402
from multimodal_tf.models.wide_image_logits import WideImageLogits  # noqa: E402
from multimodal_tf.training.metrics import classification_metrics  # noqa: E402
from multimodal_tf.training.run_model import (  # noqa: E402
    adapted_preprocessor,
    run_class_weights,
)

SPLITS = ("train", "val", "test")


def pooled_features(encoder, records, size, batch_size=64):
    """The frozen encoder's pooled feature map of each record's image, at `size` x `size`.

    The images are decoded as `decoded_batches` decodes them.
    """
    pooled = [
        np.asarray(encoder.pool_feature_map(encoder.feature_map(batch["pixels"], training=False)))
        for batch in decoded_batches(records, size, batch_size)
    ]
    return np.concatenate(pooled)


def decoded_batches(records, size, batch_size=64):
    """Batches of the records' samples with `"pixels"`: each image decoded at `size` x `size`.

    The files are read as every dataset reads them (`read_records`; `"image"`
    keeps the encoded bytes) and decoded by the layer the preprocessor decodes
    with (`ImageDecoder`), once each.
    """
    decoder = ImageDecoder((size, size))
    return (
        read_records(records)
        .batch(batch_size)
        .map(lambda sample: {**sample, "pixels": decoder(sample["image"])}, num_parallel_calls=2)
        .prefetch(1)
    )


def standardized(features, train_rows):
    """The features as `WideImageLogits` reads them, its statistics set on the training rows."""
    layer = WideImageLogits(num_classes=1)
    layer.adapt([features[train_rows]])
    return np.asarray(layer.standardize(features))


def main():
    from sklearn.model_selection import StratifiedKFold

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="Manifest with an official split column.")
    parser.add_argument("--weights", required=True, help="The backbone's no-top weights file.")
    parser.add_argument("--architecture", default="mobilenet_v2")
    parser.add_argument("--alpha", type=float, default=0.35)
    parser.add_argument("--sizes", default="none,128,192,224", help="Image sizes; none: text only.")
    parser.add_argument("--c", default="2", help="Logistic regression C values.")
    parser.add_argument("--fold-seeds", default="0,1")
    parser.add_argument(
        "--class-weight",
        choices=("none", "sqrt", "balanced"),
        default="none",
        help="The LR's class weights, as training.class_weight computes them.",
    )
    args = parser.parse_args()

    splits = split_records(read_manifest(args.data))
    class_names = sorted({record.label for record in splits["train"]})
    config = RunConfig()
    config.training.class_weight = args.class_weight
    preprocessor = adapted_preprocessor(config, [r.text for r in splits["train"]])
    rows, labels, indices, ordered, start = {}, {}, {}, [], 0
    for split in SPLITS:
        records = splits[split]
        rows[split] = feature_strings(preprocessor, [record.text for record in records])
        labels[split] = np.array([class_names.index(record.label) for record in records])
        indices[split] = np.arange(start, start + len(records))
        ordered += records
        start += len(records)
    weights = run_class_weights(config, [r.label for r in splits["train"]], class_names)
    encoder = None
    print(
        f"| size | C | CV fold seed {' | CV fold seed '.join(args.fold_seeds.split(','))} "
        "| val | test |"
    )
    print("|---|---|" + "---|" * (len(args.fold_seeds.split(",")) + 2))
    for size in args.sizes.split(","):
        dense = None
        if size != "none":
            if encoder is None:
                encoder = BackboneImageEncoder(
                    args.architecture, backbone_weights=args.weights, alpha=args.alpha
                )
            began = time.perf_counter()
            dense = standardized(pooled_features(encoder, ordered, int(size)), indices["train"])
            print(
                f"({size} px: {dense.shape[1]} pooled features of {len(ordered)} images "
                f"in {time.perf_counter() - began:.1f} s)",
                flush=True,
            )
        for c in map(float, args.c.split(",")):
            cells = []
            for fold_seed in map(int, args.fold_seeds.split(",")):
                folds = StratifiedKFold(5, shuffle=True, random_state=fold_seed)
                folds = list(folds.split(rows["train"], labels["train"]))
                train_dense = None if dense is None else dense[indices["train"]]
                cells.append(
                    cross_validate(
                        rows["train"], labels["train"], class_names, c, folds, train_dense, weights
                    )
                )
            for split in ("val", "test"):
                predicted = fit_predict(
                    rows["train"],
                    labels["train"],
                    rows[split],
                    c,
                    None if dense is None else (dense[indices["train"]], dense[indices[split]]),
                    weights,
                )
                cells.append(classification_metrics(labels[split], predicted, class_names))
            print(f"| {size} | {c:g} | {' | '.join(map(figures, cells))} |", flush=True)


if __name__ == "__main__":
    main()
