"""Classification metrics and ROC/PR curves from held-out predictions; the confusion-matrix plot."""

import numpy as np


def classification_metrics(y_true, y_pred, class_names):
    """Accuracy, macro/weighted F1, per-class precision/recall/F1 and the confusion matrix.

    Args:
        y_true: array of int. True class ids.
        y_pred: array of int. Predicted class ids.
        class_names: list of str. Names of the class ids, in order.

    Returns:
        A JSON-ready dict: `accuracy`, `macro_f1`, `weighted_f1`, `per_class`
        (`{name: {precision, recall, f1, support}}`), `confusion_matrix`
        (rows: true class, columns: predicted class), `class_names`,
        `num_samples`.

    Example:
    >>> classification_metrics([0, 1, 1], [0, 1, 0], ["a", "b"])["accuracy"]
    0.6666666666666666
    """
    y_true = np.asarray(y_true, dtype=int)
    y_pred = np.asarray(y_pred, dtype=int)
    num_classes = len(class_names)
    matrix = np.zeros((num_classes, num_classes), dtype=int)
    np.add.at(matrix, (y_true, y_pred), 1)
    true_positives = np.diag(matrix).astype(float)
    support = matrix.sum(axis=1).astype(float)
    f1, per_class = _per_class(true_positives, matrix.sum(axis=0), support, class_names)
    total = max(int(support.sum()), 1)
    return {
        "num_samples": int(support.sum()),
        "accuracy": float(true_positives.sum() / total),
        "macro_f1": float(f1.mean()),
        "weighted_f1": float((f1 * support).sum() / total),
        "per_class": per_class,
        "class_names": list(class_names),
        "confusion_matrix": matrix.tolist(),
    }


def multilabel_metrics(y_true, y_pred, class_names):
    """Multi-label metrics: per-class and averaged F1, subset accuracy and Hamming loss.

    Args:
        y_true: array [samples, classes] of 0/1. True label sets (multi-hot).
        y_pred: array [samples, classes] of 0/1. Predicted sets (probabilities
            at or above each class's threshold).
        class_names: list of str. Names of the columns, in order.

    Returns:
        A JSON-ready dict with the keys of `classification_metrics` that apply:
        `accuracy` (subset accuracy: the whole set right), `macro_f1`,
        `weighted_f1` (by support), `per_class` (`{name: {precision, recall,
        f1, support}}`), `class_names`, `num_samples`; and `micro_f1` (over
        every sample-class decision) and `hamming_loss` (share of wrong
        decisions).

    Example:
    >>> multilabel_metrics([[1, 0], [1, 1]], [[1, 0], [1, 0]], ["a", "b"])["accuracy"]
    0.5
    """
    y_true = np.asarray(y_true) > 0.5
    y_pred = np.asarray(y_pred) > 0.5
    if y_true.shape != y_pred.shape or y_true.ndim != 2 or y_true.shape[1] != len(class_names):
        raise ValueError(
            f"y_true {y_true.shape} and y_pred {y_pred.shape} must both be "
            f"[samples, {len(class_names)}] (one column per class name)."
        )
    true_positives = (y_true & y_pred).sum(axis=0).astype(float)
    support = y_true.sum(axis=0).astype(float)
    predicted = y_pred.sum(axis=0).astype(float)
    f1, per_class = _per_class(true_positives, predicted, support, class_names)
    # Micro-F1 is 2 TP / (2 TP + FP + FN) over all classes, and predicted + true = 2 TP + FP + FN.
    micro_denominator = predicted.sum() + support.sum()
    micro_f1 = 2 * true_positives.sum() / micro_denominator if micro_denominator else 0.0
    num_samples = y_true.shape[0]
    return {
        "num_samples": int(num_samples),
        "accuracy": float((y_true == y_pred).all(axis=1).mean()) if num_samples else 0.0,
        "macro_f1": float(f1.mean()),
        "micro_f1": float(micro_f1),
        "weighted_f1": float((f1 * support).sum() / max(support.sum(), 1)),
        "hamming_loss": float((y_true != y_pred).mean()) if num_samples else 0.0,
        "per_class": per_class,
        "class_names": list(class_names),
    }


INTERVAL_METRICS = ("accuracy", "macro_f1", "weighted_f1")


def bootstrap_intervals(
    y_true,
    y_pred,
    class_names,
    reference=None,
    multi_label=False,
    samples=1000,
    level=0.95,
    seed=0,
):
    """Percentile-bootstrap intervals of accuracy, macro-F1 and weighted-F1 over the rows.

    A test split of a few hundred rows gives each metric an uncertainty of
    several points; this says how many. Each of `samples` resamples draws the
    rows with replacement and scores them again. With `reference` (another
    model's predictions of the same rows) it also gives the interval of the
    difference `y_pred - reference`, paired: both are scored on the same
    resampled rows, which is narrower than comparing two separate intervals.

    Args:
        y_true: array of int (or multi-hot `[rows, classes]` when `multi_label`).
        y_pred: predictions in the same form, or a list of them (e.g. one per
            seed): each resample then scores the mean over the list.
        class_names: list of str. Names of the classes, in order.
        reference: None, or predictions in the same forms as `y_pred`.
        multi_label: bool. Score with `multilabel_metrics`.
        samples: int. Number of resamples.
        level: float. Coverage of the interval, e.g. 0.95.
        seed: int. Seed of the resampling, so that reports repeat.

    Returns:
        `{metric: [low, high]}` for accuracy, macro-F1 and weighted-F1, plus
        `"difference": {metric: [low, high]}` when `reference` is given; `{}`
        for no rows.

    Example:
    >>> y = np.array([0, 1] * 50)
    >>> low, high = bootstrap_intervals(y, y, ["a", "b"])["accuracy"]
    >>> (low, high)
    (1.0, 1.0)
    """
    y_true = np.asarray(y_true)
    runs = _runs(y_pred, y_true)
    references = None if reference is None else _runs(reference, y_true)
    if not len(y_true):
        return {}
    score = multilabel_metrics if multi_label else classification_metrics
    rng = np.random.default_rng(seed)

    def mean_scores(predictions, rows):
        values = [score(y_true[rows], run[rows], class_names) for run in predictions]
        return np.array([[v[key] for key in INTERVAL_METRICS] for v in values]).mean(axis=0)

    draws, differences = [], []
    for _ in range(samples):
        rows = rng.integers(0, len(y_true), len(y_true))
        draws.append(mean_scores(runs, rows))
        if references is not None:
            differences.append(draws[-1] - mean_scores(references, rows))
    tail = 100 * (1 - level) / 2

    def bounds(values):
        low, high = np.percentile(np.asarray(values), [tail, 100 - tail], axis=0)
        return {key: [float(low[i]), float(high[i])] for i, key in enumerate(INTERVAL_METRICS)}

    intervals = bounds(draws)
    if references is not None:
        intervals["difference"] = bounds(differences)
    return intervals


def _runs(predictions, y_true):
    """One prediction array or a list of them -> a list of arrays shaped like `y_true`."""
    predictions = np.asarray(predictions)
    if predictions.shape == y_true.shape:
        return [predictions]
    if predictions.shape[1:] != y_true.shape:
        raise ValueError(
            f"Predictions of shape {predictions.shape} match neither the labels' shape "
            f"{y_true.shape} nor a list of such arrays."
        )
    return list(predictions)


def _per_class(true_positives, predicted, support, class_names):
    """Per-class F1 (an array) and `{name: {precision, recall, f1, support}}`; 0 if undefined."""
    true_positives, predicted, support = (
        np.asarray(values, dtype=float) for values in (true_positives, predicted, support)
    )
    zeros = np.zeros(len(class_names))
    precision = np.divide(true_positives, predicted, out=zeros.copy(), where=predicted > 0)
    recall = np.divide(true_positives, support, out=zeros.copy(), where=support > 0)
    denominator = precision + recall
    f1 = np.divide(2 * precision * recall, denominator, out=zeros.copy(), where=denominator > 0)
    per_class = {
        name: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(class_names)
    }
    return f1, per_class


def plot_confusion_matrix(metrics, path, title="Confusion matrix"):
    """Saves the confusion matrix of a `classification_metrics` result as a PNG.

    Args:
        metrics: dict. A `classification_metrics` result.
        path: str or Path. Where to write the PNG.
        title: str. Figure title.
    """
    # A bare Figure, not pyplot: no backend switch and no global figure
    # state, so a notebook that calls train() still shows its own plots.
    from matplotlib.figure import Figure

    matrix = np.asarray(metrics["confusion_matrix"])
    names = metrics["class_names"]
    size = 2.5 + 0.6 * len(names)
    figure = Figure(figsize=(size, size))
    axes = figure.subplots()
    axes.imshow(matrix, cmap="Blues")
    axes.set_xticks(range(len(names)), names, rotation=45, ha="right")
    axes.set_yticks(range(len(names)), names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(
        f"{title}\naccuracy {metrics['accuracy']:.3f}, macro-F1 {metrics['macro_f1']:.3f}"
    )
    threshold = matrix.max() / 2 if matrix.size else 0
    for (row, column), count in np.ndenumerate(matrix):
        axes.text(
            column,
            row,
            str(count),
            ha="center",
            va="center",
            color="white" if count > threshold else "black",
        )
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def roc_pr(y_true, scores):
    """One-vs-rest ROC and precision-recall curves of one class, with ROC AUC and AP.

    Tied scores form one threshold. Average precision is
    `sum_n (R_n - R_(n-1)) P_n`, as scikit-learn defines it.

    Args:
        y_true: array of bool. Whether each sample belongs to the class.
        scores: array of float. The class's predicted probability.

    Returns:
        A dict: `fpr`, `tpr`, `recall`, `precision` (arrays), `auc`, `ap`
        (floats, NaN when undefined: no positives, or for `auc` no negatives)
        and `positives` (int).

    Example:
    >>> round(roc_pr(np.array([1, 0, 1, 0]), np.array([0.9, 0.8, 0.7, 0.1]))["auc"], 2)
    0.75
    """
    y_true, scores = np.asarray(y_true, dtype=float), np.asarray(scores, dtype=float)
    order = np.argsort(-scores, kind="mergesort")
    ends = np.r_[np.flatnonzero(np.diff(scores[order])), len(order) - 1]
    true_positives = np.cumsum(y_true[order])[ends]
    false_positives = ends + 1 - true_positives
    positives, negatives = float(y_true.sum()), float(len(y_true) - y_true.sum())
    curves = {"positives": int(positives), "auc": float("nan"), "ap": float("nan")}
    if positives == 0:
        return {**curves, **{key: np.zeros(0) for key in ("fpr", "tpr", "recall", "precision")}}
    curves["tpr"] = np.r_[0.0, true_positives / positives]
    curves["fpr"] = np.r_[0.0, false_positives / max(negatives, 1.0)]
    if negatives:
        curves["auc"] = float(
            np.sum(np.diff(curves["fpr"]) * (curves["tpr"][1:] + curves["tpr"][:-1]) / 2)
        )
    curves["precision"] = true_positives / (true_positives + false_positives)
    curves["recall"] = true_positives / positives
    curves["ap"] = float(np.sum(np.diff(np.r_[0.0, curves["recall"]]) * curves["precision"]))
    return curves
