"""A run's report: figures as PNGs and one self-contained HTML page to look at."""

import html
import json
from pathlib import Path

import numpy as np

from multimodal_tf.files import write_text_atomically
from multimodal_tf.models.classifier import DEFAULT_HEAD
from multimodal_tf.training import html_page
from multimodal_tf.training.attention_maps import (
    attention_figures,
    attention_unavailable,
    choose_samples,
)
from multimodal_tf.training.callbacks import HISTORY_FILE, read_history
from multimodal_tf.training.deep_path import describe_prediction_parts
from multimodal_tf.training.evaluate import METRICS_FILE, predict_records
from multimodal_tf.training.metrics import (
    classification_metrics,
    multilabel_metrics,
    plot_confusion_matrix,
    roc_pr,
)
from multimodal_tf.training.wide_first import WIDE_HISTORY_FILE

REPORT_DIR = "report"
REPORT_FILE = "report.html"


def write_report(
    run_dir,
    model,
    records,
    split="test",
    history_csv=None,
    max_mistakes=12,
    attention_samples=4,
    batch_size=32,
    predictions=None,
):
    """Writes `run_dir/report/*.png` and one self-contained `run_dir/report.html`.

    The page shows the training curves (and, for a model whose wide path was
    trained first, that stage's curves from `wide_history.csv`), the
    confusion matrix (single-label only), per-class precision/recall/F1,
    one-vs-rest ROC and PR curves, the most confident mistakes and, for
    attention fusions, which words and image regions a few predictions
    attended to. Images are embedded as data URIs,
    so the page opens offline and can be mailed as one file. Predictions
    stream through `make_dataset`; only the images shown are read again.

    Args:
        run_dir: str or Path. The run folder; `report/` and `report.html` go there.
        model: `MultimodalClassifier`. A trained single-head model.
        records: list of `Record`. One labelled, held-out split.
        split: str. The split's name, for titles.
        history_csv: str, Path or None. A Keras `CSVLogger` file; `None`
            means `run_dir/history.csv`. A `wide_history.csv` next to it
            (the first stage of `training.wide_epochs`) is plotted too.
        max_mistakes: int. Confident mistakes shown in the gallery.
        attention_samples: int. Predictions whose attention is mapped.
        batch_size: int. Samples per prediction batch.
        predictions: `(probabilities, targets)` of `records`, in their order, as
            `predict_records` returns them (`train` passes the ones its metrics
            came from); None predicts them here.

    Returns:
        The Path of `report.html`.

    Example:
    >>> result = train("data/demo/manifest.csv", output_dir="runs/demo")  # doctest: +SKIP
    >>> test = [r for r in read_manifest("data/demo/manifest.csv") if r.split == "test"]
    >>> write_report("runs/demo", result.model, test)  # doctest: +SKIP
    PosixPath('runs/demo/report.html')
    """
    if isinstance(model.class_names, dict):
        raise ValueError(
            f"write_report takes a single-head model; received heads {model.head_names}."
        )
    if not records:
        raise ValueError(f"No records to report on in split {split!r}.")
    run_dir, names = Path(run_dir), list(model.class_names)
    figures = run_dir / REPORT_DIR
    figures.mkdir(parents=True, exist_ok=True)
    for old in figures.glob("*.png"):  # a previous report may have had more figures
        old.unlink()
    if predictions is None:
        predictions = predict_records(model, records, batch_size)
    probabilities, targets = (np.asarray(array) for array in predictions)
    if len(probabilities) != len(records) or len(targets) != len(records):
        raise ValueError(
            f"predictions hold {len(probabilities)} rows for {len(records)} records of "
            f"split {split!r}; pass the predictions of exactly these records, in order."
        )
    truth = targets > 0.5
    if model.is_multi_label():
        predicted = probabilities >= np.asarray(model.get_layer(DEFAULT_HEAD).thresholds)
        metrics = multilabel_metrics(truth, predicted, names)
        wrong = (predicted != truth).any(axis=1)
        # A mistake is as sure as its surest wrong decision; a right answer, its mean decision.
        sureness = np.where(predicted, probabilities, 1 - probabilities)
        confidence = np.where(
            wrong, np.where(predicted != truth, sureness, 0).max(axis=1), sureness.mean(axis=1)
        )
        labels = [_names(row, names) for row in truth], [_names(row, names) for row in predicted]
    else:
        predicted = probabilities.argmax(axis=1)
        metrics = classification_metrics(targets.argmax(axis=1), predicted, names)
        wrong, confidence = predicted != targets.argmax(axis=1), probabilities.max(axis=1)
        labels = [names[i] for i in targets.argmax(axis=1)], [names[i] for i in predicted]

    body = [_summary(model, metrics, split, len(records))]
    history = Path(history_csv or run_dir / HISTORY_FILE)
    wide_history = history.parent / WIDE_HISTORY_FILE
    staged = wide_history.is_file()
    body.append("<h2>Training curves</h2>")
    if staged:
        body.append(html_page.note(WIDE_NOTE + _verdict(history.parent / METRICS_FILE)))
        body.append(_curves(wide_history, figures / "wide_training_curves.png", "first stage: "))
    body.append(
        _curves(history, figures / "training_curves.png", "second stage: " if staged else "")
    )
    body.append("<h2>Confusion matrix</h2>")
    if model.is_multi_label():
        body.append(
            html_page.note(
                "Not shown: in a multi-label model a sample can carry several labels, "
                "so it has no single predicted class to count in a matrix."
            )
        )
    else:
        plot_confusion_matrix(metrics, figures / "confusion_matrix.png", title=f"{split} split")
        body.append(
            html_page.figure(
                figures / "confusion_matrix.png",
                "Rows: true class; columns: predicted class. Counts on the diagonal are right.",
            )
        )
    curves = [roc_pr(truth[:, i], probabilities[:, i]) for i in range(len(names))]
    body.append(_per_class(metrics, names, curves, figures))
    body.append(_roc_pr_section(names, curves, figures))
    body.append(_mistakes(records, wrong, confidence, labels, max_mistakes))
    body.append("<h2>What the predictions attended to</h2>")
    reason = attention_unavailable(model) or (
        None if attention_samples > 0 else "Not requested (attention_samples=0)."
    )
    if reason:
        body.append(html_page.note(f"Attention maps are not shown. {reason}"))
    else:
        chosen = choose_samples(wrong, confidence, targets.argmax(axis=1), attention_samples)
        titles = [
            f"true {labels[0][i]}, predicted {labels[1][i]} ({confidence[i]:.0%} sure, "
            f"{'wrong' if wrong[i] else 'right'})"
            for i in chosen
        ]
        body.append(html_page.note(ATTENTION_NOTE))
        for name, caption in attention_figures(
            model, [records[i] for i in chosen], titles, figures
        ):
            body.append(html_page.figure(figures / name, caption, escape=False))
    path = run_dir / REPORT_FILE
    write_text_atomically(path, html_page.page(f"{run_dir.name}: {split} split", "\n".join(body)))
    return path


ATTENTION_NOTE = (
    "The fusion layer's attention, averaged over heads and queries. The heatmap shows which "
    "regions of the image (resized as the model sees it) drew attention, the bars and the "
    "shaded words which words did; the two shares add up to 100%. A word's token also "
    "carries context from its neighbours: read the weights as where the model looked, not "
    "as a full explanation of its decision."
)


WIDE_NOTE = (
    "This model's wide path (a linear model over the TF-IDF bag of n-grams) was trained "
    "alone first (training.wide_epochs), kept at its best validation epoch and frozen; the "
    "rest of the model was then trained on top of it. Both stages' curves are shown. With "
    "training.wide_ema_epochs above 0 (the default), the first stage's validation curve "
    "scores the moving average of its weights, which is what was kept, and its training "
    "curve the weights of each step."
)


def _verdict(metrics_json):
    """The deep-path verdict and which parts predict, from metrics.json ("" if unknown)."""
    try:
        metrics = json.loads(Path(metrics_json).read_text(encoding="utf-8"))
        verdict, parts = metrics.get("deep_path"), metrics.get("predicted_by")
    except (OSError, ValueError, AttributeError):
        return ""
    said = f" {describe_prediction_parts(parts)}" if parts else ""
    if not verdict:
        return said
    scores = f"{verdict['deep']:.3f} with the rest of the model, {verdict['wide']:.3f} without"
    if verdict["kept"]:
        return f" Best validation macro-F1: {scores}, so the whole model was kept." + said
    return (
        f" Best validation macro-F1: {scores}. The rest of the model did worse than the wide "
        "path, so its logits were set to zero: this model is the wide path alone "
        "(training.drop_deep_if_worse)." + said
    )


def _curves(history_path, png, stage=""):
    columns = read_history(history_path)
    columns.pop("epoch", None)
    bases = sorted({name.removeprefix("val_") for name in columns}, key=lambda n: (n != "loss", n))
    if not bases:
        return html_page.note(f"Not shown: no training history at {history_path}.")
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    per_row = min(len(bases), 4)
    rows = -(-len(bases) // per_row)
    figure = Figure(figsize=(3.4 * per_row, 2.8 * rows))
    grid = np.atleast_1d(figure.subplots(rows, per_row, squeeze=False)).ravel()
    best = columns.get("val_macro_f1")
    for axes, base in zip(grid, bases, strict=False):
        paired = f"val_{base}" in columns
        for name, label in ((base, "train" if paired else base), (f"val_{base}", "val")):
            if name in columns:
                axes.plot(range(1, len(columns[name]) + 1), columns[name], marker=".", label=label)
        if best:
            axes.axvline(int(np.argmax(best)) + 1, color="grey", linestyle=":", linewidth=1)
        axes.set_title(f"{stage}{base}")
        axes.set_xlabel("epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.legend(fontsize="small")
    for axes in grid[len(bases) :]:
        axes.set_visible(False)
    figure.tight_layout()
    figure.savefig(png, dpi=90)
    caption = f"{stage.capitalize()}per epoch, on the training and validation splits."
    if best:
        caption += " The dotted line marks the best validation macro-F1: the epoch kept."
    return html_page.figure(png, caption)


def _per_class(metrics, names, curves, figures):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(max(5.0, 1.0 + 1.1 * len(names)), 3.2))
    axes = figure.subplots()
    positions = np.arange(len(names))
    for offset, key in zip((-0.27, 0.0, 0.27), ("precision", "recall", "f1"), strict=True):
        values = [metrics["per_class"][name][key] for name in names]
        axes.bar(positions + offset, values, width=0.27, label=key)
    axes.set_xticks(
        positions,
        names,
        rotation=30 if len(names) > 6 else 0,
        ha="right" if len(names) > 6 else "center",
    )
    axes.set_ylim(0, 1.2)  # headroom for the legend above the bars
    axes.legend(fontsize="small", ncols=3, loc="upper center")
    figure.tight_layout()
    figure.savefig(figures / "per_class.png", dpi=90)
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td>"
        + "".join(
            f"<td>{metrics['per_class'][name][key]:.3f}</td>"
            for key in ("precision", "recall", "f1")
        )
        + f"<td>{metrics['per_class'][name]['support']}</td>"
        + f"<td>{_number(curve['auc'])}</td><td>{_number(curve['ap'])}</td></tr>"
        for name, curve in zip(names, curves, strict=True)
    )
    table = (
        "<table><tr><th>class</th><th>precision</th><th>recall</th><th>F1</th><th>support</th>"
        f"<th>ROC AUC</th><th>average precision</th></tr>{rows}</table>"
    )
    caption = (
        "Precision: of the samples predicted as the class, the share that are. "
        "Recall: of the samples of the class, the share found."
    )
    return "<h2>Per class</h2>" + html_page.figure(figures / "per_class.png", caption) + table


def _roc_pr_section(names, curves, figures):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 4))
    roc_axes, pr_axes = figure.subplots(1, 2)
    for name, curve in zip(names, curves, strict=True):
        if curve["positives"]:
            roc_axes.plot(curve["fpr"], curve["tpr"], label=f"{name} (AUC {_number(curve['auc'])})")
            pr_axes.step(
                np.r_[0.0, curve["recall"]],
                np.r_[1.0, curve["precision"]],
                where="pre",
                label=f"{name} (AP {_number(curve['ap'])})",
            )
    roc_axes.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    roc_axes.set(
        title="ROC, one class vs the rest",
        xlabel="false positive rate",
        ylabel="true positive rate",
    )
    pr_axes.set(title="Precision-recall", xlabel="recall", ylabel="precision", ylim=(0, 1.05))
    for axes in (roc_axes, pr_axes):
        axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(figures / "roc_pr.png", dpi=90)
    caption = (
        "Each class against all others, over every threshold on its probability. "
        "AUC 0.5 is chance; average precision summarises the PR curve."
    )
    missing = [name for name, curve in zip(names, curves, strict=True) if not curve["positives"]]
    if missing:
        caption += f" Not drawn (no sample of the class in this split): {', '.join(missing)}."
    return "<h2>ROC and precision-recall curves</h2>" + html_page.figure(
        figures / "roc_pr.png", caption
    )


def _mistakes(records, wrong, confidence, labels, limit):
    order = [index for index in np.argsort(-confidence, kind="stable") if wrong[index]][:limit]
    section = "<h2>Most confident mistakes</h2>"
    if not order:
        return section + html_page.note("No mistakes on this split.")
    section += html_page.note(
        f"{int(wrong.sum())} of {len(records)} samples are wrong; the {len(order)} the model was "
        "surest about are shown, surest first. Repeated patterns here point at label noise "
        "or at a shortcut the model learned."
    )
    cards = "".join(
        f'<div class="card">{html_page.thumbnail(records[i].image)}'
        f"<p>true <b>{html.escape(labels[0][i])}</b>, predicted <b>{html.escape(labels[1][i])}</b>"
        f" ({confidence[i]:.0%} sure)</p><p>{html.escape(html_page.shorten(records[i].text))}</p>"
        f'<p class="id">id {html.escape(str(records[i].id))}, row {records[i].row}</p></div>'
        for i in order
    )
    return section + f'<div class="gallery">{cards}</div>'


def _summary(model, metrics, split, count):
    keys = ["accuracy", "macro_f1", "weighted_f1", "micro_f1", "hamming_loss"]
    intervals = metrics.get("intervals", {})
    cells = "".join(
        f"<tr><th>{key.replace('_', ' ')}</th><td>{metrics[key]:.3f}</td>"
        + (
            f"<td>95% interval {intervals[key][0]:.3f}-{intervals[key][1]:.3f}</td>"
            if key in intervals
            else ""
        )
        + "</tr>"
        for key in keys
        if key in metrics
    )
    parts = [
        f"{type(layer).__name__}"
        for layer in (model.text_encoder, model.image_encoder, model.fusion)
        if layer is not None
    ]
    kind = "multi-label" if model.is_multi_label() else "single-label"
    return (
        f"<p>{count} samples of the <b>{html.escape(split)}</b> split, {len(model.class_names)} "
        f"classes ({kind}); model: {html.escape(' + '.join(parts))}.</p><table>{cells}</table>"
    )


def _names(row, names):
    return ", ".join(name for name, on in zip(names, row, strict=True) if on) or "(none)"


def _number(value):
    return "n/a" if np.isnan(value) else f"{value:.3f}"


__all__ = [
    "read_history",
    "roc_pr",
    "write_report",
]
