"""What averaging trained runs' probabilities gives, on val and test (no retraining).

Reads the run folders `benchmarks/accuracy.py` leaves in `<output>/runs`
(`<model>-seed-<seed>/model.keras`), predicts the manifest's `val` and `test` splits with
each model once, and prints accuracy / macro-F1 / weighted-F1 of:

  - each model kind averaged over its seeds (e.g. `fused x3`),
  - every pair of kinds averaged over all their seeds (e.g. `fused + pretrained`).

The combination to report is the one with the best **val** macro-F1 (marked `<- val`);
picking the best test row would be selection on test. This is a probe of whether an
ensemble is worth building into the package, not a feature. Usage:

    .venv/bin/python benchmarks/ensemble.py --runs /tmp/acc/runs \\
        --data ../shared/data/mvsa_single/manifest.csv
"""

import argparse
import itertools
import os
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from multimodal_tf.data.manifest import read_manifest, split_records  # noqa: E402
from multimodal_tf.training.evaluate import predict_records  # noqa: E402
from multimodal_tf.training.metrics import classification_metrics  # noqa: E402

SPLITS = ("val", "test")
METRICS = ("accuracy", "macro_f1", "weighted_f1")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", required=True, help="accuracy.py's <output>/runs folder.")
    parser.add_argument("--data", required=True, help="Manifest with an official split column.")
    args = parser.parse_args()

    splits = split_records(read_manifest(args.data))
    probabilities = defaultdict(list)  # (kind, split) -> one array per seed
    truth, class_names = {}, None
    for run in sorted(Path(args.runs).glob("*-seed-*")):
        model = keras.saving.load_model(run / "model.keras")
        if class_names not in (None, model.class_names):
            raise SystemExit(f"{run}: class names differ from the other runs'.")
        class_names = model.class_names
        kind = run.name.split("-seed-")[0]
        for split in SPLITS:
            scores, targets = predict_records(model, splits[split])
            probabilities[kind, split].append(scores)
            truth[split] = targets.argmax(-1)
    kinds = sorted({kind for kind, _ in probabilities})
    groups = [(kind,) for kind in kinds] + list(itertools.combinations(kinds, 2))

    rows = []
    for group in groups:
        row = {"group": " + ".join(f"{kind} x{len(probabilities[kind, 'val'])}" for kind in group)}
        for split in SPLITS:
            mean = np.mean([p for kind in group for p in probabilities[kind, split]], axis=0)
            row[split] = classification_metrics(truth[split], mean.argmax(-1), class_names)
        rows.append(row)
    chosen = max(rows, key=lambda row: row["val"]["macro_f1"])
    print("| probabilities averaged over | val acc / macro-F1 / weighted-F1 | test |")
    print("|---|---|---|")
    for row in rows:
        cells = [" / ".join(f"{row[split][name]:.3f}" for name in METRICS) for split in SPLITS]
        mark = " <- val" if row is chosen else ""
        print(f"| {row['group']}{mark} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
