"""Test metrics of the classic text baseline and of multimodal_tf models, in one run.

What a user would otherwise pick, side by side with what this package trains, on the
same official split (selection on `val` only; only the selected model of each run sees `test`):

  baseline     TF-IDF (word 1-2-grams + char_wb 2-5-grams) + logistic regression,
               plain and class-balanced; C chosen on val macro-F1
  text         the default config, `modalities: [text]`
  image        the default config, `modalities: [image]`
  fused        the default config (a frozen ImageNet MobileNetV2 0.35 backbone whose
               weights come from the Keras cache, as a user's run finds them: install
               them first with `multimodal-tf weights install`)
  conv         the default config with the scratch `conv` image encoder on 64x64
               images (the no-weights model)

Prints accuracy, macro-F1 and weighted-F1 (mean +- sample std over `--seeds`) and train
wall time per model, then what the seeds' spread leaves out: how far each seed-mean could
move on another test sample of the same size (95% bootstrap interval over the test rows)
and each model's paired difference to the plain baseline on the same resampled rows.
Writes `<output>/accuracy_<name>.md` and `.csv`. Needs the
`bench` extra (scikit-learn). Usage:

    .venv/bin/pip install -e ".[bench]"
    .venv/bin/python benchmarks/accuracy.py --data ../shared/data/mvsa_single/manifest.csv \\
        --seeds 3 [--models baseline,text,image,fused,conv] [--config FILE] \\
        [--ensemble 3] [--reuse-runs]
"""

import argparse
import copy
import csv
import os
import statistics
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from multimodal_tf.config import load_config  # noqa: E402
from multimodal_tf.data.manifest import read_manifest, split_records  # noqa: E402
from multimodal_tf.training.metrics import (  # noqa: E402
    bootstrap_intervals,
    classification_metrics,
)

MODELS = ("baseline", "text", "image", "fused", "conv")
METRICS = ("accuracy", "macro_f1", "weighted_f1")


def tfidf_vectorizers():
    """The baseline's features: TF-IDF of word 1-2-grams and of char_wb 2-5-grams (sublinear TF)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    return [
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True),
    ]


def best_on_val(fit, x_val, y_val, class_names, grid=(0.25, 0.5, 1, 2, 4, 8, 16, 32, 64)):
    """`(model, C)`: `fit(C)` for each C of `grid`, the model with the best val macro-F1.

    The baseline's C is chosen on val only; the first of equal scores is kept.
    """
    best = None
    for c in grid:
        model = fit(c)
        score = classification_metrics(y_val, model.predict(x_val), class_names)["macro_f1"]
        if best is None or score > best[0]:
            best = (score, c, model)
    return best[2], best[1]


def baseline_rows(manifest, seeds):
    """TF-IDF + logistic regression, plain and balanced: one result per seed each.

    Returns `(rows, {variant: [test predictions per seed]}, test labels)`.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union

    splits = split_records(read_manifest(manifest))
    class_names = sorted({record.label for record in splits["train"]})
    index = {name: i for i, name in enumerate(class_names)}

    def columns(split):
        records = splits[split]
        return [r.text for r in records], [index[r.label] for r in records]

    (x_train, y_train), (x_val, y_val), (x_test, y_test) = map(columns, ("train", "val", "test"))
    rows, predictions = [], {}
    for variant, class_weight in (("tfidf+lr", None), ("tfidf+lr balanced", "balanced")):
        for seed in seeds:
            started = time.perf_counter()

            def fit(c, class_weight=class_weight, seed=seed):
                return make_pipeline(
                    make_union(*tfidf_vectorizers()),
                    LogisticRegression(
                        C=c, class_weight=class_weight, max_iter=3000, random_state=seed
                    ),
                ).fit(x_train, y_train)

            model, c = best_on_val(fit, x_val, y_val, class_names)
            seconds = time.perf_counter() - started
            predicted = model.predict(x_test)
            test = classification_metrics(y_test, predicted, class_names)
            rows.append(_row(variant, seed, test, seconds, C=c))
            predictions.setdefault(variant, []).append(predicted)
    return rows, predictions, np.array(y_test)


def model_rows(manifest, config, name, seeds, output, reuse=False):
    """multimodal_tf's `train()` with the default config changed only as `name` says.

    Returns `(rows, [test predictions per seed], test labels)`: the selected model's
    predictions of the test rows, in manifest order. With `reuse`, a finished run
    already in its folder (same config) is loaded instead of trained again.
    """
    from multimodal_tf.training.evaluate import predict_records
    from multimodal_tf.training.fit import train

    config = copy.deepcopy(config)
    if name == "text":
        config.model.modalities = ("text",)
    elif name == "image":
        config.model.modalities = ("image",)
        config.model.wide = False  # a wide path reads text, which image-only has not
    elif name == "conv":
        config.data.image_size = (64, 64)
        config.model.image_encoder = "conv"
        config.model.image_weights = ""
    test_records = split_records(read_manifest(manifest))["test"]
    rows, predictions = [], []
    for seed in seeds:
        config.training.seed = seed
        run_dir = Path(output) / "runs" / f"{name}-seed-{seed}"
        if reuse and (run_dir / "metrics.json").is_file():
            result = _finished_run(run_dir, config)
        else:
            result = train(manifest, config, run_dir, verbose=0)
        rows.append(_row(name, seed, result.metrics["test"], result.metrics["train_seconds"]))
        probabilities, targets = predict_records(result.model, test_records)
        predictions.append(probabilities.argmax(axis=-1))
        print(f"  {name} seed {seed}: macro-F1 {rows[-1]['macro_f1']:.3f}", flush=True)
    return rows, predictions, targets.argmax(axis=-1)


def _finished_run(run_dir, config):
    """The `TrainResult` a finished run left in `run_dir`; exits if its config differs."""
    import json

    import keras

    from multimodal_tf.training.fit import TrainResult

    if load_config(run_dir / "config.yaml").to_dict() != config.to_dict():
        raise SystemExit(f"{run_dir} was trained with another config; drop --reuse-runs")
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    record = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    metrics["train_seconds"] = record["train_seconds"]
    model = keras.saving.load_model(run_dir / "model.keras")
    return TrainResult(run_dir=run_dir, model=model, metrics=metrics)


def _row(model, seed, metrics, seconds, C=""):
    row = {"model": model, "seed": seed, **{m: metrics[m] for m in METRICS}, "seconds": seconds}
    return {**row, "C": C}  # the baseline's regularisation, chosen on val


def summarize(rows):
    summary = []
    for model in dict.fromkeys(row["model"] for row in rows):
        group = [row for row in rows if row["model"] == model]
        line = {"model": model, "seeds": len(group)}
        for metric in (*METRICS, "seconds"):
            values = [row[metric] for row in group]
            line[metric] = statistics.mean(values)
            line[f"{metric}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
        summary.append(line)
    return summary


def markdown(summary, command):
    lines = [
        f"Command: `{command}`",
        "",
        "| model | test accuracy | macro-F1 | weighted-F1 | train s | seeds |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for line in summary:
        cells = [f"{line[m]:.3f} ± {line[f'{m}_std']:.3f}" for m in METRICS]
        lines.append(
            f"| {line['model']} | " + " | ".join(cells) + f" | {line['seconds']:.1f} | "
            f"{line['seeds']} |"
        )
    return "\n".join(lines) + "\n"


def interval_markdown(predictions, y_test, class_names, reference="tfidf+lr"):
    """95% bootstrap intervals of each model's seed-mean over the test rows, and vs `reference`.

    Args:
        predictions: dict of model name -> list of test predictions (one per seed).
        y_test: array of int. The test labels, in the same row order.
        class_names: list of str.
        reference: str. The model the paired differences are taken against.
    """
    lines = [
        f"Test-sample uncertainty ({len(y_test)} test rows, 1000 bootstrap resamples; "
        "95% intervals of the seed-mean, and of the paired difference to "
        f"{reference} on the same resampled rows):",
        "",
        "| model | accuracy | macro-F1 | weighted-F1 | Δ macro-F1 | Δ weighted-F1 |",
        "|---|---|---|---|---|---|",
    ]
    base = predictions.get(reference)
    for model, runs in predictions.items():
        found = bootstrap_intervals(y_test, runs, class_names, reference=base)
        cells = [f"{found[m][0]:.3f}-{found[m][1]:.3f}" for m in METRICS]
        difference = found.get("difference", {})
        cells += [
            "(reference)"
            if model == reference
            else f"{difference[m][0]:+.3f} to {difference[m][1]:+.3f}"
            if difference
            else "n/a"
            for m in ("macro_f1", "weighted_f1")
        ]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="Manifest with an official split column.")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--models", default=",".join(MODELS), help=f"Subset of {MODELS}.")
    parser.add_argument("--config", help="Run config for the multimodal_tf models.")
    parser.add_argument(
        "--ensemble",
        type=int,
        help="Sets training.ensemble: each multimodal_tf result averages this many seeds.",
    )
    parser.add_argument("--output", default="benchmarks/results")
    parser.add_argument("--name", default="mvsa", help="Result files: accuracy_<name>.md/.csv.")
    parser.add_argument(
        "--reuse-runs",
        action="store_true",
        help="Load finished runs under <output>/runs (same config) instead of retraining them.",
    )
    args = parser.parse_args()
    models = args.models.split(",")
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        parser.error(f"unknown models {unknown}; choose from {MODELS}")
    config = load_config(args.config)
    if args.ensemble:
        config.training.ensemble = args.ensemble
    # An ensemble with seed s trains members s, s + 1, ...: the next one starts after them,
    # so no two results share a member.
    seeds = [1337 + k * config.training.ensemble for k in range(args.seeds)]
    rows, predictions, y_test = [], {}, None
    for name in models:
        print(f"{name} ...", flush=True)
        if name == "baseline":
            found, variants, y_test = baseline_rows(args.data, seeds)
            predictions.update(variants)
        else:
            found, predictions[name], y_test = model_rows(
                args.data,
                config,
                name,
                seeds,
                args.output,
                args.reuse_runs,
            )
        rows += found
    summary = summarize(rows)
    command = "python benchmarks/accuracy.py " + " ".join(
        f"--{k.replace('_', '-')}" + ("" if v is True else f" {v}")
        for k, v in vars(args).items()
        if v is not None and v is not False
    )
    class_names = sorted({record.label for record in read_manifest(args.data)})
    table = markdown(summary, command) + "\n" + interval_markdown(predictions, y_test, class_names)
    print(table)
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    (output / f"accuracy_{args.name}.md").write_text(table, encoding="utf-8")
    with (output / f"accuracy_{args.name}.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    main()
