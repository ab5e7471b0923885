"""Export a trained classifier as a TF Serving SavedModel that takes raw input."""

import os
import shutil
import tempfile
from pathlib import Path

import keras
import tensorflow as tf

from multimodal_tf.errors import DataError

SIGNATURE = "serving_default"
LABELS_FILE = "labels.txt"


def export_saved_model(model, model_dir, version=None, verbose=False):
    """Writes `model_dir/<version>/`, a SavedModel whose graph does all preprocessing.

    The `serving_default` signature takes `text` (tf.string [batch], raw UTF-8)
    and `image` (tf.string [batch], encoded JPEG/PNG/GIF/BMP bytes) and returns
    `probabilities` (float32 [batch, num_classes], in `model.class_names`
    order) and `label` (tf.string [batch]; for a multi-label head, every class
    at or above its threshold joined with "|"). A multi-head model returns
    `<head>_probabilities` and `<head>_label` for each head. Either input may
    be an empty string for a sample without text or without an image. Class
    names are also written to `assets.extra/labels.txt` (one `head: a,b` line
    per head for multi-head models). The version folder is written beside its final
    place and renamed at the end, so TF Serving never sees half of it.

    Args:
        model: `MultimodalClassifier`. Carries its preprocessor.
        model_dir: str or Path. The model's folder (`saved_models/<name>`).
        version: int or None. `None` means one above the highest version present.
        verbose: bool. Let Keras print the exported variables.

    Returns:
        Path of the version folder.

    Example:
    >>> path = export_saved_model(model, "saved_models/demo")  # doctest: +SKIP
    >>> loaded = tf.saved_model.load(str(path))  # doctest: +SKIP
    >>> loaded.signatures["serving_default"](text=tf.constant(["a red circle"]),
    ...     image=tf.constant([open("circle.png", "rb").read()]))  # doctest: +SKIP
    """
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    if version is None:
        versions = [int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()]
        version = max(versions, default=0) + 1
    if int(version) < 1:
        raise DataError(f"Versions are positive integers; received {version}.")
    target = model_dir / str(int(version))
    if target.exists():
        raise DataError(
            f"{target} already exists; TF Serving versions are immutable. "
            "Pick another --version or leave it out to use the next one."
        )
    preprocessor = model.preprocessor
    heads = model.head_classes()
    single = not isinstance(model.class_names, dict)

    def serve(text, image):
        features = preprocessor({"text": text, "image": image})
        outputs = model(features, training=False)
        outputs = {next(iter(heads)): outputs} if single else outputs
        served = {}
        for name, probabilities in outputs.items():
            prefix = "" if single else f"{name}_"
            served[f"{prefix}probabilities"] = probabilities
            served[f"{prefix}label"] = _labels(
                probabilities, heads[name], model.get_layer(name), model.is_multi_label(name)
            )
        return served

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        SIGNATURE,
        serve,
        input_signature=[
            tf.TensorSpec([None], tf.string, name="text"),
            tf.TensorSpec([None], tf.string, name="image"),
        ],
    )
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=model_dir))
    try:
        archive.write_out(str(staging), verbose=verbose)
        (staging / "assets.extra").mkdir(exist_ok=True)
        lines = (
            [f"{head}: {','.join(names)}" for head, names in heads.items()]
            if not single
            else model.class_names
        )
        (staging / "assets.extra" / LABELS_FILE).write_text(
            "\n".join(lines) + "\n", encoding="utf-8"
        )
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _labels(probabilities, class_names, head, multi_label):
    names = tf.constant(class_names)
    if not multi_label:
        return tf.gather(names, tf.argmax(probabilities, axis=-1))
    # Every class at or above its threshold (chosen on validation data and
    # stored in the head), joined with "|" as in multi-label manifests.
    chosen = probabilities >= tf.convert_to_tensor(head.thresholds)
    selected = tf.ragged.boolean_mask(tf.broadcast_to(names, tf.shape(chosen)), chosen)
    return tf.strings.reduce_join(selected, axis=-1, separator="|")


def read_labels(saved_model_dir):
    """Class names of an exported model, in probability order."""
    path = Path(saved_model_dir) / "assets.extra" / LABELS_FILE
    if not path.is_file():
        raise DataError(f"{path} not found: is {saved_model_dir} a multimodal_tf export?")
    return path.read_text(encoding="utf-8").splitlines()
