"""Test metrics of the classic text baseline and of multimodal_tf models, in one run.

What a user would otherwise pick, side by side with what this package trains, on the
same official split (selection on `val` only; each model reads `test` once):

  baseline     TF-IDF (word 1-2-grams + char_wb 2-5-grams) + logistic regression,
               plain and class-balanced; C chosen on val macro-F1
  text         the default config, `modalities: [text]`
  image        the default config, `modalities: [image]`
  fused        the default config
  pretrained   the default config with a MobileNetV2 backbone from a local file
               (`--backbone-weights`, alpha 0.35, 128x128 images)

Prints accuracy, macro-F1 and weighted-F1 (mean +- sample std over `--seeds`) and train
wall time per model, and writes `<output>/accuracy_<name>.md` and `.csv`. Needs the
`bench` extra (scikit-learn). Usage:

    .venv/bin/pip install -e ".[bench]"
    .venv/bin/python benchmarks/accuracy.py --data ../shared/data/mvsa_single/manifest.csv \\
        --seeds 3 [--models baseline,text,image,fused,pretrained] [--config FILE] \\
        [--ensemble 3]
"""

import argparse
import copy
import csv
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from multimodal_tf.config import load_config  # noqa: E402
from multimodal_tf.data.manifest import read_manifest, split_records  # noqa: E402
from multimodal_tf.training.metrics import classification_metrics  # noqa: E402

MODELS = ("baseline", "text", "image", "fused", "pretrained")
METRICS = ("accuracy", "macro_f1", "weighted_f1")
BACKBONE = Path(__file__).resolve().parents[2] / (
    "shared/weights/mobilenet_v2_0.35_224_no_top_imagenet_tm.weights.h5"
)


def baseline_rows(manifest, seeds):
    """TF-IDF + logistic regression, plain and balanced: one result per seed each."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union

    splits = split_records(read_manifest(manifest))
    class_names = sorted({record.label for record in splits["train"]})
    index = {name: i for i, name in enumerate(class_names)}

    def columns(split):
        records = splits[split]
        return [r.text for r in records], [index[r.label] for r in records]

    (x_train, y_train), (x_val, y_val), (x_test, y_test) = map(columns, ("train", "val", "test"))
    rows = []
    for variant, class_weight in (("tfidf+lr", None), ("tfidf+lr balanced", "balanced")):
        for seed in seeds:
            started = time.perf_counter()
            best = None
            for c in (0.25, 0.5, 1, 2, 4, 8, 16, 32, 64):  # chosen on val only
                model = make_pipeline(
                    make_union(
                        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1),
                        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True),
                    ),
                    LogisticRegression(
                        C=c, class_weight=class_weight, max_iter=3000, random_state=seed
                    ),
                )
                model.fit(x_train, y_train)
                val = classification_metrics(y_val, model.predict(x_val), class_names)
                if best is None or val["macro_f1"] > best[0]:
                    best = (val["macro_f1"], c, model)
            seconds = time.perf_counter() - started
            test = classification_metrics(y_test, best[2].predict(x_test), class_names)
            rows.append(_row(variant, seed, test, seconds, C=best[1]))
    return rows


def model_rows(manifest, config, name, seeds, output, backbone):
    """multimodal_tf's `train()` with the default config changed only as `name` says."""
    from multimodal_tf.training.fit import train

    config = copy.deepcopy(config)
    if name == "text":
        config.model.modalities = ("text",)
    elif name == "image":
        config.model.modalities = ("image",)
    elif name == "pretrained":
        if not Path(backbone).is_file():
            raise SystemExit(f"--backbone-weights {backbone} not found")
        config.data.image_size = (128, 128)
        config.model.image_encoder = "mobilenet_v2"
        config.model.image_weights = str(backbone)
        config.model.backbone_alpha = 0.35
    rows = []
    for seed in seeds:
        config.training.seed = seed
        run_dir = Path(output) / "runs" / f"{name}-seed-{seed}"
        result = train(manifest, config, run_dir, verbose=0)
        rows.append(_row(name, seed, result.metrics["test"], result.metrics["train_seconds"]))
        print(f"  {name} seed {seed}: macro-F1 {rows[-1]['macro_f1']:.3f}", flush=True)
    return rows


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
    parser.add_argument("--backbone-weights", default=str(BACKBONE))
    parser.add_argument("--output", default="benchmarks/results")
    parser.add_argument("--name", default="mvsa", help="Result files: accuracy_<name>.md/.csv.")
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
    rows = []
    for name in models:
        print(f"{name} ...", flush=True)
        if name == "baseline":
            rows += baseline_rows(args.data, seeds)
        else:
            rows += model_rows(args.data, config, name, seeds, args.output, args.backbone_weights)
    summary = summarize(rows)
    command = "python benchmarks/accuracy.py " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v is not None
    )
    table = markdown(summary, command)
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
