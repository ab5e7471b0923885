"""Classification metrics from held-out predictions, and the confusion-matrix plot."""

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
    predicted = matrix.sum(axis=0).astype(float)
    precision = np.divide(true_positives, predicted, out=np.zeros(num_classes), where=predicted > 0)
    recall = np.divide(true_positives, support, out=np.zeros(num_classes), where=support > 0)
    denominator = precision + recall
    f1 = np.divide(
        2 * precision * recall, denominator, out=np.zeros(num_classes), where=denominator > 0
    )
    total = max(int(support.sum()), 1)
    return {
        "num_samples": int(support.sum()),
        "accuracy": float(true_positives.sum() / total),
        "macro_f1": float(f1.mean()),
        "weighted_f1": float((f1 * support).sum() / total),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(class_names)
        },
        "class_names": list(class_names),
        "confusion_matrix": matrix.tolist(),
    }


def plot_confusion_matrix(metrics, path, title="Confusion matrix"):
    """Saves the confusion matrix of a `classification_metrics` result as a PNG.

    Args:
        metrics: dict. A `classification_metrics` result.
        path: str or Path. Where to write the PNG.
        title: str. Figure title.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = np.asarray(metrics["confusion_matrix"])
    names = metrics["class_names"]
    size = 2.5 + 0.6 * len(names)
    figure, axes = plt.subplots(figsize=(size, size))
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
    plt.close(figure)
