"""Can a model without a pretrained backbone get sentiment from the images at all?

Issue 5's fusion bar asks the default (scratch) fused model to beat text alone
by 2 points of macro-F1. On MVSA-Single the scratch image branch reads about
0.40 macro-F1 alone and adds nothing to the text. This script probes two cheap
kinds of image signal that need no learned features, each next to the classic
TF-IDF + logistic regression of `accuracy.py` (C chosen on val):

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
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from multimodal_tf.data.manifest import read_manifest, split_records  # noqa: E402
from multimodal_tf.training.metrics import classification_metrics  # noqa: E402

FORMATS = ("JPEG", "PNG", "GIF", "BMP")
MODES = ("RGB", "RGBA", "L", "P")


def thumbnail(path, size=16):
    """A centred, unit-length grey thumbnail of the image at `path` (zeros if unreadable)."""
    try:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("L").resize((size, size), Image.BILINEAR), "float32")
    except OSError:
        return np.zeros(size * size, "float32")
    pixels = pixels.ravel() - pixels.mean()
    return pixels / (np.linalg.norm(pixels) + 1e-6)


def metadata(path):
    """The file's size, shape, format and colour mode as a feature vector."""
    size = os.path.getsize(path)
    try:
        with Image.open(path) as image:
            (width, height), kind, mode = image.size, image.format, image.mode
    except OSError:
        (width, height), kind, mode = (1, 1), None, None
    shape = [np.log(width), np.log(height), np.log(width / height), np.log(size)]
    shape += [np.log(size / (width * height)), float(width == height), float(height > 1.5 * width)]
    return np.array(shape + [kind == f for f in FORMATS] + [mode == m for m in MODES], "float32")


def figures(labels, predicted, class_names):
    metrics = classification_metrics(labels, predicted, class_names)
    return "{accuracy:.3f} / {macro_f1:.3f} / {weighted_f1:.3f}".format(**metrics)


def text_model(texts, labels, val_texts, val_labels, class_names, dense=None):
    """The baseline's TF-IDF + LR, C chosen on val macro-F1; `dense` (train, val) appended."""
    import scipy.sparse as sparse
    from accuracy import tfidf_vectorizers
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_union

    union = make_union(*tfidf_vectorizers()).fit(texts)

    def features(rows, extra):
        matrix = union.transform(rows)
        return matrix if extra is None else sparse.hstack([matrix, extra]).tocsr()

    train = features(texts, None if dense is None else dense[0])
    val = features(val_texts, None if dense is None else dense[1])
    best = None
    for c in (0.25, 0.5, 1, 2, 4, 8, 16, 32, 64):
        model = LogisticRegression(C=c, max_iter=3000).fit(train, labels)
        score = classification_metrics(val_labels, model.predict(val), class_names)["macro_f1"]
        if best is None or score > best[0]:
            best = (score, c, model)
    return best[2], best[1], features


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="Manifest with an official split column.")
    parser.add_argument("--threshold", type=float, default=0.95, help="Thumbnail cosine.")
    args = parser.parse_args()

    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    splits = split_records(read_manifest(args.data))
    class_names = sorted({record.label for record in splits["train"]})
    index = {name: i for i, name in enumerate(class_names)}
    texts = {s: [r.text for r in splits[s]] for s in ("train", "val", "test")}
    labels = {s: np.array([index[r.label] for r in splits[s]]) for s in ("train", "val", "test")}
    thumbs = {s: np.stack([thumbnail(r.image) for r in splits[s]]) for s in splits}
    meta = {s: np.stack([metadata(r.image) for r in splits[s]]) for s in splits}

    model, c, features = text_model(
        texts["train"], labels["train"], texts["val"], labels["val"], class_names
    )
    print(f"TF-IDF + LR (C {c} chosen on val); figures are accuracy / macro-F1 / weighted-F1.")
    print(f"\n1. Near-duplicate images (16x16 grey thumbnails, cosine >= {args.threshold:g}):")
    for split in ("val", "test"):
        predicted = model.predict(features(texts[split], None))
        similarity = thumbs[split] @ thumbs["train"].T
        nearest, best = similarity.argmax(1), similarity.max(1)
        close = best >= args.threshold
        neighbour = labels["train"][nearest]
        same_text = sum(
            texts[split][i] == texts["train"][nearest[i]] for i in np.flatnonzero(close)
        )
        overridden = np.where(close, neighbour, predicted)
        truth = labels[split]
        print(
            f"  {split}: {close.sum()} of {len(truth)} rows have one ({same_text} with the same "
            f"text); on them the neighbour's label is right on "
            f"{(neighbour[close] == truth[close]).mean():.3f}, the text model on "
            f"{(predicted[close] == truth[close]).mean():.3f}. Whole split: text "
            f"{figures(truth, predicted, class_names)}, neighbour's label where close "
            f"{figures(truth, overridden, class_names)}"
        )

    print("\n2. The image file's metadata (size, shape, format, colour mode):")
    formats = sorted({f for f, i in zip(FORMATS, meta["train"][:, 7:11].any(0), strict=True) if i})
    print(f"  training images' formats: {', '.join(formats) or 'none readable'}")
    scaler = StandardScaler().fit(meta["train"])
    scaled = {s: scaler.transform(meta[s]) for s in meta}
    alone = LogisticRegression(max_iter=3000, class_weight="balanced")
    alone.fit(scaled["train"], labels["train"])
    both, c, both_features = text_model(
        texts["train"],
        labels["train"],
        texts["val"],
        labels["val"],
        class_names,
        dense=(scaled["train"], scaled["val"]),
    )
    for split in ("val", "test"):
        truth = labels[split]
        with_meta = both.predict(both_features(texts[split], scaled[split]))
        print(
            f"  {split}: metadata alone (balanced LR) "
            f"{figures(truth, alone.predict(scaled[split]), class_names)}; text + metadata "
            f"(C {c}) {figures(truth, with_meta, class_names)}"
        )


if __name__ == "__main__":
    main()
