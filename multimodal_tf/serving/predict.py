"""Batch prediction with an exported SavedModel on a manifest of raw files."""

import csv
import sys
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from multimodal_tf.data.dataset import read_records
from multimodal_tf.data.labels import split_labels
from multimodal_tf.data.manifest import read_manifest
from multimodal_tf.data.validate import check_images
from multimodal_tf.errors import DataError
from multimodal_tf.serving.export import SIGNATURE, read_labels


def predict_manifest(
    model_dir, manifest, output, batch_size=64, allow_missing=False, progress=True, stream=None
):
    """Runs an exported model's `serving_default` signature over a manifest.

    Image files are read as raw bytes and texts passed as they are: decoding
    and standardization happen inside the SavedModel, exactly as under TF
    Serving. Rows stream through `tf.data`; a label column is optional.
    For a multi-label model, `predicted_label` holds every class at or above
    its threshold joined with "|" (as the SavedModel's `label` output does),
    and `accuracy` counts rows whose whole label set is right.

    Args:
        model_dir: str or Path. A version folder (`saved_models/<name>/<version>`).
        manifest: str or Path. A CSV or JSONL manifest.
        output: str or Path. CSV to write: `id`, `predicted_label`, one
            `probability_<class>` column per class, and `label` if known.
        batch_size: int. Rows per call of the signature.
        allow_missing: bool. Rows may leave `text` or `image` empty (not
            both); the SavedModel takes an empty string for either.
        progress: bool. Show rows done / total, rows/s and the time left on
            one line of `stream`, redrawn at most 4 times a second on a
            terminal and every 5 s (one line each) otherwise.
        stream: file or None. Where progress goes; `None` is `sys.stderr`.

    Returns:
        dict with `num_rows` and, when the manifest has labels, `accuracy`.

    Example:
    >>> predict_manifest("saved_models/demo/1", "data/demo/manifest.csv",  # doctest: +SKIP
    ...                  "predictions.csv")
    """
    model_dir = Path(model_dir)
    if not (model_dir / "saved_model.pb").is_file():
        raise DataError(f"{model_dir} is not a SavedModel folder (no saved_model.pb).")
    class_names = read_labels(model_dir)
    try:
        signature = tf.saved_model.load(str(model_dir)).signatures[SIGNATURE]
    except (OSError, ValueError, KeyError, tf.errors.OpError) as error:
        raise DataError(
            f"{model_dir} cannot be loaded as a SavedModel with a {SIGNATURE!r} signature "
            f"(truncated, or not a multimodal_tf export): {type(error).__name__}: "
            f"{str(error).strip()[:300]}"
        ) from error
    if "probabilities" not in signature.structured_outputs:
        raise DataError(
            f"{model_dir} is a multi-task export (outputs "
            f"{', '.join(sorted(signature.structured_outputs))}); predict scores single-task "
            "models. Call its serving_default signature directly."
        )
    records = read_manifest(manifest, require_labels=False, allow_missing=allow_missing)
    check_images(records, manifest=Path(manifest).name)
    dataset = read_records(records).batch(batch_size).prefetch(tf.data.AUTOTUNE)
    has_labels = all(record.label is not None for record in records)
    correct = 0
    meter = Progress(len(records), stream) if progress else None
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with output.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        header = ["id", "predicted_label"] + [f"probability_{name}" for name in class_names]
        writer.writerow(header + (["label"] if has_labels else []))
        start = 0
        for batch in dataset:
            result = signature(text=batch["text"], image=batch["image"])
            probabilities = result["probabilities"].numpy()
            labels = [label.decode("utf-8") for label in result["label"].numpy()]
            for offset, (label, row) in enumerate(zip(labels, probabilities, strict=True)):
                record = records[start + offset]
                values = [record.id, label] + [f"{p:.6f}" for p in np.asarray(row)]
                if has_labels:
                    values.append(record.label)
                    # As sets, so "surprise|joy" matches a multi-label "joy|surprise";
                    # a single class name is a set of one.
                    correct += split_labels(label) == split_labels(record.label)
                writer.writerow(values)
            start += len(labels)
            if meter:
                meter.update(start)
    if meter:
        meter.close()
    summary = {"num_rows": len(records), "output": str(output)}
    if has_labels:
        summary["accuracy"] = correct / len(records)
    return summary


class Progress:
    """One progress line (`rows done/total (percent) rows/s ETA`) on a stream, rate-limited.

    Args:
        total: int. Rows to do.
        stream: file or None. `None` is `sys.stderr`.
        interval: float or None. Seconds between redraws; `None` is 0.25 on a
            terminal (redrawn in place) and 5 elsewhere (one line each).

    Example:
    >>> import io
    >>> meter = Progress(10, io.StringIO(), interval=0)
    >>> meter.update(5); meter.close()
    >>> meter.stream.getvalue().splitlines()[-1].startswith("predict: 10/10 rows (100.0%)")
    True
    """

    def __init__(self, total, stream=None, interval=None):
        self.total = int(total)
        self.stream = stream or sys.stderr
        self.in_place = getattr(self.stream, "isatty", lambda: False)()
        self.interval = (0.25 if self.in_place else 5.0) if interval is None else interval
        self.start = self.last = time.monotonic()
        self.done = 0

    def update(self, done):
        self.done = int(done)
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            self._draw(now)

    def close(self):
        self.done = self.total
        self._draw(time.monotonic())
        if self.in_place:
            self.stream.write("\n")
        self.stream.flush()

    def _draw(self, now):
        elapsed = max(now - self.start, 1e-9)
        rate = self.done / elapsed
        left = (self.total - self.done) / rate if rate > 0 else float("nan")
        eta = (
            "?"
            if left != left
            else f"{int(left // 3600)}:{int(left // 60 % 60):02d}:{int(left % 60):02d}"
        )
        percent = 100 * self.done / max(self.total, 1)
        line = (
            f"predict: {self.done}/{self.total} rows ({percent:.1f}%)  {rate:.1f} rows/s  ETA {eta}"
        )
        self.stream.write(f"\r{line}\033[K" if self.in_place else line + "\n")
        self.stream.flush()
