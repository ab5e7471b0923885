"""How much the text vocabulary's size matters, measured with a linear model in one run.

Logistic regression (C chosen on val macro-F1) on TF-IDF vectors of the features the
package's own preprocessor makes in-graph (standardized words, bigrams and char_wb
2-5-grams, words and chars normalised apart, as the bag encoder pools them), with the
vocabulary built as `adapt()` builds it for each `(max_vocabulary_size, min_frequency)`
setting, next to scikit-learn's TF-IDF on the raw text (`accuracy.py`'s baseline).
The ids are the preprocessor's own output (its lookup, and its sequence length chosen by
`adapt()`). A linear model trains in seconds and has no seed, so the effect of the vocabulary
alone shows without the neural model's seed spread. Needs the `bench` extra
(scikit-learn). Usage:

    .venv/bin/python benchmarks/vocabulary.py --data ../shared/data/mvsa_single/manifest.csv \\
        [--settings 20000:2 200000:1]
"""

import argparse
import os

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from multimodal_tf.data.manifest import read_manifest, split_records  # noqa: E402
from multimodal_tf.training.metrics import classification_metrics  # noqa: E402

C_GRID = (0.5, 1, 2, 4, 8, 16, 32, 64)
SPLITS = ("train", "val", "test")


def fit_and_score(matrices, labels, class_names):
    """Fits LR for each C, keeps the best on val macro-F1; returns `(C, val, test)` metrics."""
    from sklearn.linear_model import LogisticRegression

    best = None
    for c in C_GRID:
        model = LogisticRegression(C=c, max_iter=3000).fit(matrices["train"], labels["train"])
        val = classification_metrics(labels["val"], model.predict(matrices["val"]), class_names)
        if best is None or val["macro_f1"] > best[1]["macro_f1"]:
            best = (c, val, model)
    c, val, model = best
    test = classification_metrics(labels["test"], model.predict(matrices["test"]), class_names)
    return c, val, test


def tf_idf(vectorizers, texts):
    """Each split's TF-IDF rows (one block per vectorizer, fitted on train), side by side."""
    import scipy.sparse

    return {
        split: scipy.sparse.hstack(
            [
                (v.fit_transform if split == "train" else v.transform)(texts[split])
                for v in vectorizers
            ]
        ).tocsr()
        for split in SPLITS
    }


def main():
    import tensorflow as tf
    from accuracy import tfidf_vectorizers
    from sklearn.feature_extraction.text import TfidfVectorizer

    from multimodal_tf.models.preprocessor import MultimodalPreprocessor

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="Manifest with an official split column.")
    parser.add_argument(
        "--settings",
        nargs="+",
        default=["20000:2", "200000:1"],
        help="max_vocabulary_size:min_frequency pairs to compare.",
    )
    args = parser.parse_args()

    splits = split_records(read_manifest(args.data))
    class_names = sorted({record.label for record in splits["train"]})
    texts = {split: [record.text for record in splits[split]] for split in SPLITS}
    labels = {
        split: np.array([class_names.index(record.label) for record in splits[split]])
        for split in SPLITS
    }
    rows = []
    raw = tf_idf(tfidf_vectorizers(), texts)
    rows.append(("scikit-learn TF-IDF on the raw text", raw["train"].shape[1], raw))
    for setting in args.settings:
        size, min_frequency = (int(part) for part in setting.split(":"))
        preprocessor = MultimodalPreprocessor(
            sequence_length=None,
            max_vocabulary_size=size,
            min_frequency=min_frequency,
            text_features="ngrams",
        )
        preprocessor.adapt(texts["train"], spacy_norms=True)
        # The ids the model itself gets: the preprocessor's own lookup and truncation.
        token_ids = {
            split: preprocessor({"text": tf.constant(texts[split])})["token_ids"].numpy()
            for split in SPLITS
        }
        first_char = 2 + preprocessor.num_word_features

        def words(row, first_char=first_char):
            return [int(i) for i in row if 2 <= i < first_char]

        def chars(row, first_char=first_char):
            return [int(i) for i in row if i >= first_char]

        vectorizers = [
            TfidfVectorizer(analyzer=words, sublinear_tf=True),
            TfidfVectorizer(analyzer=chars, sublinear_tf=True),
        ]
        matrices = tf_idf(vectorizers, token_ids)
        name = f"in-graph features, max_vocabulary_size {size}, min_frequency {min_frequency}"
        rows.append((name, len(preprocessor.vocabulary), matrices))

    print("| features | vocabulary | C | val acc / macro-F1 / weighted-F1 | test |")
    print("|---|---:|---:|---|---|")
    for name, vocabulary, matrices in rows:
        c, val, test = fit_and_score(matrices, labels, class_names)
        print(f"| {name} | {vocabulary:,} | {c} | {_triple(val)} | {_triple(test)} |", flush=True)


def _triple(metrics):
    return " / ".join(f"{metrics[key]:.3f}" for key in ("accuracy", "macro_f1", "weighted_f1"))


if __name__ == "__main__":
    main()
