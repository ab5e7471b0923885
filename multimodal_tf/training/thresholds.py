"""Per-class decision thresholds for multi-label heads, chosen on validation data."""

import numpy as np

from multimodal_tf.models.classifier import DEFAULT_HEAD

CANDIDATES = np.round(np.arange(0.05, 0.96, 0.05), 2)


def best_thresholds(probabilities, labels, candidates=CANDIDATES):
    """The threshold per class that maximises that class's F1.

    Ties go to the candidate closest to 0.5; a class with no positive example
    keeps 0.5 (there is nothing to tune it on).

    Args:
        probabilities: array [samples, classes]. Sigmoid outputs.
        labels: array [samples, classes]. Multi-hot truth.
        candidates: array of float. Thresholds to try.

    Returns:
        float32 array [classes].

    Example:
    >>> best_thresholds(np.array([[0.3], [0.2], [0.1]]), np.array([[1], [1], [0]])).tolist()
    [0.15000000596046448]
    """
    probabilities = np.asarray(probabilities, "float32")
    labels = np.asarray(labels) > 0.5
    if probabilities.shape != labels.shape:
        raise ValueError(
            f"probabilities {probabilities.shape} and labels {labels.shape} must match."
        )
    chosen = np.full(probabilities.shape[1], 0.5, "float32")
    for index in range(probabilities.shape[1]):
        truth = labels[:, index]
        if not truth.any():
            continue
        predicted = probabilities[:, index][None, :] >= np.asarray(candidates, "float32")[:, None]
        true_positive = (predicted & truth).sum(axis=1)
        f1 = 2 * true_positive / np.maximum(predicted.sum(axis=1) + truth.sum(), 1)
        best = np.flatnonzero(np.isclose(f1, f1.max()))
        chosen[index] = candidates[best[np.argmin(np.abs(candidates[best] - 0.5))]]
    return chosen


def tune_thresholds(model, dataset):
    """Sets every multi-label head's thresholds from a labelled validation dataset.

    Args:
        model: `MultimodalClassifier`.
        dataset: `tf.data.Dataset` of `(features, labels)` batches (labels a
            dict by head name for a multi-head model), never the test split.

    Returns:
        dict of head name to the thresholds set.

    Example:
    >>> tune_thresholds(model, make_dataset(splits["val"], ...))  # doctest: +SKIP
    {'label': array([0.35, 0.5, 0.2], dtype=float32)}
    """
    heads = [name for name in model.head_names if model.is_multi_label(name)]
    if not heads:
        return {}
    outputs = {name: [] for name in heads}
    truths = {name: [] for name in heads}
    for features, labels in dataset:
        predicted = model.predict_on_batch(features)
        if not isinstance(predicted, dict):
            predicted, labels = {DEFAULT_HEAD: predicted}, {DEFAULT_HEAD: labels}
        for name in heads:
            outputs[name].append(np.asarray(predicted[name]))
            truths[name].append(np.asarray(labels[name]))
    chosen = {}
    for name in heads:
        chosen[name] = best_thresholds(np.concatenate(outputs[name]), np.concatenate(truths[name]))
        model.get_layer(name).set_thresholds(chosen[name])
    return chosen
