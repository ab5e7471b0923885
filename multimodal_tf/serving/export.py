"""Export a trained classifier as a TF Serving SavedModel that takes raw input."""

import errno
import os
import shutil
import tempfile
from pathlib import Path

import keras
import tensorflow as tf

from multimodal_tf.config import MAX_TEXT_BYTES, DataConfig
from multimodal_tf.errors import DataError
from multimodal_tf.files import current_umask
from multimodal_tf.models.classifier import MultimodalClassifier
from multimodal_tf.models.folded_backbone import serving_backbones
from multimodal_tf.models.wide_model import deep_path_is_silent
from multimodal_tf.serving.request_checks import checked_batch, checked_images
from multimodal_tf.serving.warmup import default_warmup_samples, write_warmup_requests

SIGNATURE = "serving_default"
LABELS_FILE = "labels.txt"
STAGING_PREFIX = ".staging-"


def export_saved_model(
    model,
    model_dir,
    version=None,
    verbose=False,
    allow_missing=None,
    warmup_samples=None,
    max_pixels=DataConfig.max_pixels,
    max_text_bytes=MAX_TEXT_BYTES,
    check_ops=None,
):
    """Writes `model_dir/<version>/`, a SavedModel whose graph does all preprocessing.

    The `serving_default` signature takes `text` (tf.string [batch], raw UTF-8)
    and `image` (tf.string [batch], encoded JPEG/PNG/GIF/BMP bytes) and returns
    `probabilities` (float32 [batch, num_classes], in `model.class_names`
    order) and `label` (tf.string [batch]; for a multi-label head, every class
    at or above its threshold joined with "|"). A multi-head model returns
    `<head>_probabilities` and `<head>_label` for each head. Either input may
    be an empty string for a sample without text or without an image. Class
    names are also written to `assets.extra/labels.txt` (one `head: a,b` line
    per head for multi-head models), and TF Serving warm-up requests to
    `assets.extra/tf_serving_warmup_requests` (`warmup.write_warmup_requests`).
    The version folder is written beside its final place (`.staging-<pid>-*`)
    and renamed at the end, so TF Serving never sees half of it; the staging
    folders of killed exports are removed by the next export. Two exports into
    one folder at once get distinct versions (with `version` given, the one
    that finishes second fails saying so). A model whose deep path
    `training.drop_deep_if_worse` dropped serves its wide path alone (the
    same probabilities, without computing the zeroed part). A pretrained
    backbone is served with each BatchNormalization folded into the
    convolution before it (`folded_backbone.fold_batch_norms`): the same
    function up to float rounding, 1.5-2x faster on a CPU.

    Bad images are refused per request, before decoding, with an
    `InvalidArgumentError` (HTTP 400 under TF Serving) that names every bad
    instance: `image 2 of 4: not JPEG, PNG, GIF or BMP bytes (starts with
    0x6e6f74...)` or, unless `allow_missing`, `image 0 of 4: empty`. The
    signature keeps serving the next request. Bytes that start like a
    supported format but are corrupt or truncated (a JPEG cut short, a PNG
    with a bad chunk) still fail inside the shared decoder, with TensorFlow's
    own message and no instance index: no core op decodes without raising.

    Requests are bounded before any work: each image's width and height are
    read from its header (core ops: `tf.io.extract_jpeg_shape` for JPEG, the
    fixed header fields of PNG, GIF and BMP) and an image over `max_pixels`
    is refused before it is decoded (`image 1 of 2: 20000x20000 pixels, over
    the limit of 40000000`), so a small file that declares a huge image costs
    nothing. Texts are cut to their first `max_text_bytes` UTF-8 bytes before
    standardization (a character cut in half becomes U+FFFD, as any invalid
    UTF-8 does).

    Args:
        model: `MultimodalClassifier`. Carries its preprocessor.
        model_dir: str or Path. The model's folder (`saved_models/<name>`).
        version: int or None. `None` means one above the highest version present.
        verbose: bool. Let Keras print the exported variables.
        allow_missing: bool or None. Accept an empty image (scored with
            `image_present = 0`, as in training with
            `data.allow_missing_modalities`). `None` accepts it when the model
            was trained with `modality_dropout` or does not read images.
        warmup_samples: list of `(text, image bytes)` or None. Warm-up requests
            are built from them; `None` uses `warmup.default_warmup_samples()`.
        max_pixels: int. Largest width x height served; the training default
            is the same (`data.max_pixels`).
        max_text_bytes: int. UTF-8 bytes of each text that the graph reads.
        check_ops: str or None. A TF Serving release (`"2.19"`) or image tag:
            before the version is published, every op of the written graph
            must be one that release's model server has (core TensorFlow and
            the TF Text ops it links; `serving.op_check`), or the export
            fails with `UnsupportedOpsError` and publishes nothing. A model
            with a KerasHub text encoder runs TF Text ops; the others run core
            ops only.

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
    remove_abandoned_staging(model_dir)
    if version is not None and int(version) < 1:
        raise DataError(f"Versions are positive integers; received {version}.")
    if version is not None and (model_dir / str(int(version))).exists():
        raise DataError(
            f"{model_dir / str(int(version))} already exists; TF Serving versions are "
            "immutable. Pick another --version or leave it out to use the next one."
        )
    if int(max_pixels) < 1 or int(max_text_bytes) < 1:
        raise DataError(
            f"max_pixels and max_text_bytes are positive; received {max_pixels} and "
            f"{max_text_bytes}."
        )
    if allow_missing is None:
        allow_missing = model.modality_dropout > 0 or "image" not in model.modalities
    preprocessor = model.preprocessor
    heads = model.head_classes()
    single = not isinstance(model.class_names, dict)

    predictor, predictor_inputs = _predicting_part(model)

    def serve(text, image):
        text, image = checked_batch(text, image)
        image = checked_images(image, allow_empty=allow_missing, max_pixels=max_pixels)
        text = tf.strings.substr(text, 0, int(max_text_bytes))
        features = preprocessor({"text": text, "image": image})
        if predictor_inputs is not None:
            features = {name: features[name] for name in predictor_inputs}
        outputs = predictor(features, training=False)
        outputs = {next(iter(heads)): outputs} if single else outputs
        served = {}
        for name, probabilities in outputs.items():
            prefix = "" if single else f"{name}_"
            served[f"{prefix}probabilities"] = probabilities
            served[f"{prefix}label"] = _labels(
                probabilities, heads[name], model.get_layer(name), model.is_multi_label(name)
            )
        return served

    # The served backbones have their BatchNormalizations folded into their convolutions.
    with serving_backbones(model) as backbones:
        archive = keras.export.ExportArchive()
        archive.track(model)
        for backbone in backbones:
            archive.track(backbone)
        archive.add_endpoint(
            SIGNATURE,
            serve,
            input_signature=[
                tf.TensorSpec([None], tf.string, name="text"),
                tf.TensorSpec([None], tf.string, name="image"),
            ],
        )
        _trace_once(archive, SIGNATURE)
        staging = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-", dir=model_dir))
        try:
            archive.write_out(str(staging), verbose=verbose)
            if check_ops:
                from multimodal_tf.serving.op_check import assert_servable

                print(assert_servable(staging, check_ops).describe())
            (staging / "assets.extra").mkdir(exist_ok=True)
            lines = (
                [f"{head}: {','.join(names)}" for head, names in heads.items()]
                if not single
                else model.class_names
            )
            (staging / "assets.extra" / LABELS_FILE).write_text(
                "\n".join(lines) + "\n", encoding="utf-8"
            )
            # Written before the rename, so TF Serving never loads the version without it.
            samples = list(warmup_samples or default_warmup_samples())
            texts, images = [text for text, _ in samples], [image for _, image in samples]
            write_warmup_requests(staging, texts, images, model=model_dir.name)
            # mkdtemp makes it 0700; a model server running as another user must read it.
            os.chmod(staging, 0o777 & ~current_umask())
            return _publish(staging, model_dir, version)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise


def _publish(staging, model_dir, version):
    """Renames `staging` to its version folder; the next free one when `version` is None.

    Two exports into one folder at once both see the same highest version; the
    rename is atomic and fails for the one that comes second (a folder with
    files is never replaced), which then takes the next number.
    """
    while True:
        number = version
        if number is None:
            versions = [int(p.name) for p in model_dir.iterdir() if p.name.isdigit()]
            number = max(versions, default=0) + 1
        target = model_dir / str(int(number))
        try:
            if target.exists():
                raise FileExistsError(errno.EEXIST, "File exists", str(target))
            os.rename(staging, target)
            return target
        except OSError as error:
            if error.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
            if version is not None:
                raise DataError(
                    f"{target} was written by another export while this one ran; TF Serving "
                    "versions are immutable. Export again with another --version, or without "
                    "one to take the next."
                ) from None
            # Another export took this number: take the next one.


def remove_abandoned_staging(model_dir):
    """Removes the staging folders of exports that were killed (their process is gone).

    An export writes `.staging-<pid>-<random>/` beside the version folders and
    renames it at the end; a kill leaves it behind. Folders of a process that
    is still running on this machine (an export in progress) are kept.

    Args:
        model_dir: str or Path. A model's folder (`saved_models/<name>`).

    Returns:
        list of Path: the folders removed.

    Example:
    >>> remove_abandoned_staging("saved_models/demo")  # doctest: +SKIP
    []
    """
    removed = []
    for folder in Path(model_dir).glob(f"{STAGING_PREFIX}*"):
        pid = folder.name[len(STAGING_PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and not _running(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _running(pid):
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _predicting_part(model):
    """`(the part of model that makes its predictions, its input names or None)`.

    Once `training.drop_deep_if_worse` has zeroed the deep path, the model's
    probabilities are those of its wide path alone (the deep logits are exact
    zeros), so the graph serves `model.wide_model()`, which shares its layers,
    and skips the encoders and the fusion whose output is zero anyway.
    """
    if isinstance(model, MultimodalClassifier) and model.wide and deep_path_is_silent(model):
        wide = model.wide_model()
        return wide, list(wide.input)  # built from a dict of named inputs
    return model, None


def _trace_once(archive, endpoint):
    """Makes `archive.write_out` trace the endpoint's graph once, not twice.

    Keras (3.10-3.15) traces an endpoint's `tf.function` to list its variables,
    then `tf.saved_model.save` traces it again: a function's cache key includes
    whether it is traced inside a save, and a `tf.function` saved as an
    attribute is always re-traced there. Tracing the preprocessor and the model
    was 40% of an export. The endpoint becomes its one concrete function,
    which the save writes and signs as it is. A Keras without the archive's
    `_tf_trackable` exports as before (tests/serving/test_export.py notices).
    """
    trackable = getattr(archive, "_tf_trackable", None)
    function = getattr(trackable, endpoint, None)
    if isinstance(function, tf.types.experimental.PolymorphicFunction):
        setattr(trackable, endpoint, function.get_concrete_function())


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
