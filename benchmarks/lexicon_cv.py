"""Does `data.lexicon` (or another text option) help? Cross-validated on the training split.

MVSA-Single's val split has 450 rows, too few to see a 1-2 point change (one
seed's macro-F1 moves by several points). This script asks the 3,611 training
rows instead, and never reads val or test: 5-fold cross-validation (stratified,
`--fold-seeds` shuffles) of a logistic regression over the package's own text
features, with and without the lexicon's valence tokens. The features are what
the model's wide path reads: `MultimodalPreprocessor.features()` (standardized
words, valence tokens, bigrams and `~` character n-grams), TF-IDF weighted with
raw counts as the bag counts them, words and characters L2-normalised apart.
The preprocessor is adapted on the training split (its vocabulary is not used
here: each fold's vectorizer fits its own training folds). Prints accuracy /
macro-F1 / weighted-F1 for each C. `--compare` asks the same of another `data`
option that changes the text features, in place of the lexicon. Usage:

    .venv/bin/python benchmarks/lexicon_cv.py \\
        --data ../shared/data/mvsa_single/manifest.csv --lexicon vader
    .venv/bin/python benchmarks/lexicon_cv.py \\
        --data ../shared/data/mvsa_single/manifest.csv --compare emoticons=false,true

Needs scikit-learn (a benchmark extra).
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from multimodal_tf.config import RunConfig  # noqa: E402
from multimodal_tf.data.manifest import read_manifest, split_records  # noqa: E402
from multimodal_tf.models.preprocessor import CHAR_PREFIX  # noqa: E402
from multimodal_tf.training.metrics import classification_metrics  # noqa: E402
from multimodal_tf.training.run_model import adapted_preprocessor  # noqa: E402


def figures(metrics):
    """`accuracy / macro-F1 / weighted-F1` of a `classification_metrics` result, 3 decimals."""
    return "{accuracy:.3f} / {macro_f1:.3f} / {weighted_f1:.3f}".format(**metrics)


def feature_lists(config, texts):
    """Each text's feature strings, from the run config's preprocessor adapted on `texts`."""
    return feature_strings(adapted_preprocessor(config, texts), texts)


def feature_strings(preprocessor, texts):
    """Each text's feature strings (words, valence tokens, n-grams) from `preprocessor`."""
    rows = preprocessor.features(tf.constant(texts)).to_list()
    return [[feature.decode("utf-8") for feature in row] for row in rows]


def fit_predict(train_rows, train_labels, held_rows, c, dense=None, class_weight=None):
    """LR(C=c) over word and character TF-IDF groups of `train_rows`; labels of `held_rows`.

    `dense`, if given, is a pair of arrays (training rows, held-out rows) of
    more features appended to the TF-IDF groups as they are (e.g. an image's
    standardized pooled features). `class_weight` is scikit-learn's.
    """
    import scipy.sparse as sparse
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    def group(chars):
        return lambda row: [f for f in row if f.startswith(CHAR_PREFIX) == chars]

    vectorizers = [
        TfidfVectorizer(analyzer=group(chars), lowercase=False) for chars in (False, True)
    ]
    x_train = [v.fit_transform(train_rows) for v in vectorizers]
    x_held = [v.transform(held_rows) for v in vectorizers]
    if dense is not None:
        x_train.append(sparse.csr_matrix(dense[0]))
        x_held.append(sparse.csr_matrix(dense[1]))
    model = LogisticRegression(C=c, max_iter=3000, class_weight=class_weight)
    model.fit(sparse.hstack(x_train).tocsr(), train_labels)
    return model.predict(sparse.hstack(x_held).tocsr())


def cross_validate(rows, labels, class_names, c, folds, dense=None, class_weight=None):
    """Out-of-fold predictions of `fit_predict`, scored; `dense`: one array for all rows."""
    predicted = np.zeros_like(labels)
    for train, held_out in folds:
        predicted[held_out] = fit_predict(
            [rows[i] for i in train],
            labels[train],
            [rows[i] for i in held_out],
            c,
            None if dense is None else (dense[train], dense[held_out]),
            class_weight,
        )
    return classification_metrics(labels, predicted, class_names)


def main():
    from sklearn.model_selection import StratifiedKFold

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="Manifest with an official split column.")
    parser.add_argument("--lexicon", default="vader", help="data.lexicon to compare with none.")
    parser.add_argument("--c", default="2,4,8", help="Logistic regression C values.")
    parser.add_argument("--fold-seeds", default="0,1")
    parser.add_argument(
        "--compare",
        help="OPTION=A,B: compare two values of a data option (e.g. emoticons=false,true) "
        "instead of the lexicon; the other options keep their defaults.",
    )
    args = parser.parse_args()
    option, values = "lexicon", ["none", args.lexicon]
    if args.compare:
        option, _, listed = args.compare.partition("=")
        values = listed.split(",")
        if not hasattr(RunConfig().data, option) or len(values) != 2:
            parser.error(f"--compare {args.compare!r}: expected a data option=A,B")

    train = split_records(read_manifest(args.data))["train"]
    texts = [record.text for record in train]
    class_names = sorted({record.label for record in train})
    labels = np.array([class_names.index(record.label) for record in train])
    features = {}
    for value in values:
        config = RunConfig()
        default = getattr(config.data, option)
        parsed = value.lower() == "true" if isinstance(default, bool) else type(default)(value)
        setattr(config.data, option, parsed)
        features[value] = feature_lists(config, texts)
        tagged = np.mean([any(f.startswith("^lex") for f in row) for row in features[value]])
        print(f"{option} {value}: {tagged:.1%} of {len(texts)} training rows hold a valence token")
    print(f"| fold seed | C | {option} {values[0]} | {option} {values[1]} |")
    print("|---|---|---|---|")
    for fold_seed in map(int, args.fold_seeds.split(",")):
        splitter = StratifiedKFold(5, shuffle=True, random_state=fold_seed)
        folds = list(splitter.split(texts, labels))
        for c in map(float, args.c.split(",")):
            cells = []
            for value in values:
                m = cross_validate(features[value], labels, class_names, c, folds)
                cells.append(figures(m))
            print(f"| {fold_seed} | {c:g} | {cells[0]} | {cells[1]} |", flush=True)


if __name__ == "__main__":
    main()
