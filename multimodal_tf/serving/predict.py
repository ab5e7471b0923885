"""Batch prediction with an exported SavedModel on a manifest of raw files."""

import csv
from pathlib import Path

import numpy as np
import tensorflow as tf

from multimodal_tf.data.dataset import read_records
from multimodal_tf.data.labels import split_labels
from multimodal_tf.data.manifest import read_manifest
from multimodal_tf.data.validate import check_images
from multimodal_tf.errors import DataError
from multimodal_tf.serving.export import SIGNATURE, read_labels


def predict_manifest(model_dir, manifest, output, batch_size=64, allow_missing=False):
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
    signature = tf.saved_model.load(str(model_dir)).signatures[SIGNATURE]
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
    summary = {"num_rows": len(records), "output": str(output)}
    if has_labels:
        summary["accuracy"] = correct / len(records)
    return summary
