"""Can a model without a pretrained backbone get sentiment from the images at all?

Issue 5's fusion bar asks the default (scratch) fused model to beat text alone
by 2 points of macro-F1. On MVSA-Single the scratch image branch reads about
0.40 macro-F1 alone and adds nothing to the text. This script probes two cheap
kinds of image signal that need no learned features, each next to the classic
TF-IDF + logistic regression of `accuracy.py` (C chosen on val):

Each file is read once, as every dataset reads it, and decoded by the
package's `ImageDecoder` (`image_size_cv.decoded_batches`).

1. Near-duplicate images. Each image becomes a 16x16 grey thumbnail (centred,
   unit length); a val or test row whose nearest training thumbnail has cosine
   >= `--threshold` takes that training row's label in place of the text
   model's prediction. Prints how many rows have such a neighbour, how many of
   them also have the same text (retweets), and the accuracy of the
   neighbour's label and of the text model on them.
2. The image file's own metadata: log width, height, aspect, bytes and bytes
   per pixel, square / tall flags, format and colour mode. A balanced logistic
   regression over them alone, and the same features (standardized) appended
   to the TF-IDF ones.

Prints accuracy / macro-F1 / weighted-F1 on val and on test. A probe, not a
default: the project changes defaults on val only. Usage:

    .venv/bin/python benchmarks/image_shortcuts.py \\
        --data ../shared/data/mvsa_single/manifest.csv

Needs scikit-learn (a benchmark extra).
"""

import argparse
import io
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from accuracy import best_on_val, tfidf_vectorizers  # noqa: E402
from image_size_cv import SPLITS, decoded_batches  # noqa: E402
from lexicon_cv import figures  # noqa: E402
from PIL import Image  # noqa: E402

from multimodal_tf.data.manifest import read_manifest, split_records  # noqa: E402
from multimodal_tf.training.metrics import classification_metrics  # noqa: E402

FORMATS = ("JPEG", "PNG", "GIF", "BMP")
MODES = ("RGB", "RGBA", "L", "P")


def thumbnails_and_metadata(records, size=16):
    """`(thumbnails, metadata)`: one row each per record, its file read and decoded once.

    A thumbnail is the image decoded at `size` x `size`, grey, centred and of
    unit length. The metadata are the file's size, shape, format and colour
    mode, read from its header (`metadata`).
    """
    thumbnails, metadata_rows = [], []
    for batch in decoded_batches(records, size):
        grey = tf.image.rgb_to_grayscale(batch["pixels"]).numpy().reshape(len(batch["pixels"]), -1)
        grey -= grey.mean(axis=1, keepdims=True)
        thumbnails.append(grey / (np.linalg.norm(grey, axis=1, keepdims=True) + 1e-6))
        metadata_rows += [metadata(encoded) for encoded in batch["image"].numpy()]
    return np.concatenate(thumbnails), np.stack(metadata_rows)


def metadata(encoded):
    """An encoded image's byte size, shape, format and colour mode as a feature vector."""
    try:
        with Image.open(io.BytesIO(encoded)) as image:  # the header only: no decode
            (width, height), kind, mode = image.size, image.format, image.mode
    except OSError:
        (width, height), kind, mode = (1, 1), None, None
    size = max(len(encoded), 1)
    shape = [np.log(width), np.log(height), np.log(width / height), np.log(size)]
    shape += [np.log(size / (width * height)), float(width == height), float(height > 1.5 * width)]
    return np.array(shape + [kind == f for f in FORMATS] + [mode == m for m in MODES], "float32")


def logistic_regression(x_train, y_train, x_val, y_val, class_names):
    """LR over `x_train`, C chosen on val macro-F1 as the baseline's is: `(model, C)`."""
    from sklearn.linear_model import LogisticRegression

    def fit(c):
        return LogisticRegression(C=c, max_iter=3000).fit(x_train, y_train)

    return best_on_val(fit, x_val, y_val, class_names)


def main():
    import scipy.sparse as sparse
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_union
    from sklearn.preprocessing import StandardScaler

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="Manifest with an official split column.")
    parser.add_argument("--threshold", type=float, default=0.95, help="Thumbnail cosine.")
    args = parser.parse_args()

    splits = split_records(read_manifest(args.data))
    class_names = sorted({record.label for record in splits["train"]})
    index = {name: i for i, name in enumerate(class_names)}
    texts = {s: [r.text for r in splits[s]] for s in SPLITS}
    labels = {s: np.array([index[r.label] for r in splits[s]]) for s in SPLITS}
    ordered = [record for split in SPLITS for record in splits[split]]
    bounds = np.cumsum([0] + [len(splits[s]) for s in SPLITS])
    thumbs, meta = thumbnails_and_metadata(ordered)
    thumbs = {s: thumbs[bounds[i] : bounds[i + 1]] for i, s in enumerate(SPLITS)}
    meta = {s: meta[bounds[i] : bounds[i + 1]] for i, s in enumerate(SPLITS)}
    union = make_union(*tfidf_vectorizers()).fit(texts["train"])
    tfidf = {s: union.transform(texts[s]) for s in SPLITS}

    model, c = logistic_regression(
        tfidf["train"], labels["train"], tfidf["val"], labels["val"], class_names
    )
    print(f"TF-IDF + LR (C {c:g} chosen on val); figures are accuracy / macro-F1 / weighted-F1.")
    print(f"\n1. Near-duplicate images (16x16 grey thumbnails, cosine >= {args.threshold:g}):")
    for split in ("val", "test"):
        predicted, truth = model.predict(tfidf[split]), labels[split]
        similarity = thumbs[split] @ thumbs["train"].T
        nearest = similarity.argmax(1)
        close = similarity.max(1) >= args.threshold
        neighbour = labels["train"][nearest]
        same_text = sum(
            texts[split][i] == texts["train"][nearest[i]] for i in np.flatnonzero(close)
        )
        overridden = np.where(close, neighbour, predicted)
        print(
            f"  {split}: {close.sum()} of {len(truth)} rows have one ({same_text} with the same "
            f"text); on them the neighbour's label is right on "
            f"{(neighbour[close] == truth[close]).mean():.3f}, the text model on "
            f"{(predicted[close] == truth[close]).mean():.3f}. Whole split: text "
            f"{score(truth, predicted, class_names)}, neighbour's label where close "
            f"{score(truth, overridden, class_names)}"
        )

    print("\n2. The image file's metadata (size, shape, format, colour mode):")
    kinds = meta["train"][:, 7 : 7 + len(FORMATS)].any(0)
    formats = [name for name, seen in zip(FORMATS, kinds, strict=True) if seen]
    print(f"  training images' formats: {', '.join(formats) or 'none readable'}")
    scaler = StandardScaler().fit(meta["train"])
    scaled = {s: scaler.transform(meta[s]) for s in SPLITS}
    alone = LogisticRegression(max_iter=3000, class_weight="balanced")
    alone.fit(scaled["train"], labels["train"])
    both = {s: sparse.hstack([tfidf[s], scaled[s]]).tocsr() for s in SPLITS}
    with_meta, c = logistic_regression(
        both["train"], labels["train"], both["val"], labels["val"], class_names
    )
    for split in ("val", "test"):
        truth = labels[split]
        print(
            f"  {split}: metadata alone (balanced LR) "
            f"{score(truth, alone.predict(scaled[split]), class_names)}; text + metadata "
            f"(C {c:g}) {score(truth, with_meta.predict(both[split]), class_names)}"
        )


def score(labels, predicted, class_names):
    return figures(classification_metrics(labels, predicted, class_names))


if __name__ == "__main__":
    main()
