"""Test helpers every layer and model goes through (see STYLE.md)."""

import fcntl
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from multimodal_tf.models.classifier import MultimodalClassifier
from multimodal_tf.models.preprocessor import MultimodalPreprocessor
from tests.conftest import image_bytes


def run_serialization_test(instance):
    """config -> JSON -> from_config -> the same JSON config."""
    config = instance.get_config()
    config_json = json.dumps(keras.saving.serialize_keras_object(instance), sort_keys=True)
    restored = keras.saving.deserialize_keras_object(json.loads(config_json))
    assert type(restored) is type(instance)
    restored_json = json.dumps(keras.saving.serialize_keras_object(restored), sort_keys=True)
    assert restored_json == config_json
    # Every constructor argument comes back from get_config.
    assert json.loads(json.dumps(restored.get_config())) == json.loads(json.dumps(config))
    return restored


def run_layer_test(layer_cls, init_kwargs, input_data, expected_output_shape):
    """Builds, calls, checks the output shape, and round-trips the config."""
    layer = layer_cls(**init_kwargs)
    output = layer(input_data)
    assert tuple(output.shape) == tuple(expected_output_shape)
    run_serialization_test(layer)
    return layer, output


def run_model_saving_test(model, input_data, tmp_path):
    """`.keras` save and load give the same outputs and the same config."""
    path = tmp_path / "model.keras"
    expected = model.predict(input_data, verbose=0)
    model.save(path)
    restored = keras.saving.load_model(path)
    actual = restored.predict(input_data, verbose=0)
    if isinstance(expected, dict):  # a multi-head model
        assert set(actual) == set(expected)
        for name in expected:
            np.testing.assert_allclose(actual[name], expected[name], atol=1e-6)
    else:
        np.testing.assert_allclose(actual, expected, atol=1e-6)
    assert json.dumps(restored.get_config(), sort_keys=True) == json.dumps(
        model.get_config(), sort_keys=True
    )
    return restored


def run_export_test(
    model, texts, images, tmp_path, atol=1e-5, isolated=False, modalities=None, **export_kwargs
):
    """The exported SavedModel, given raw inputs, matches the Keras model.

    First the inputs are checked to be able to tell a wrong serving graph
    from a right one (`assert_outputs_follow_each_modality`): the Keras
    probabilities differ between them, and change, by more than `atol`, when
    only the text or only the image changes (each modality the model's
    predictions read).

    Args:
        model: a `MultimodalClassifier` with its preprocessor.
        texts: list of str. Raw texts.
        images: list of bytes. Encoded images.
        atol: float. Tolerance of the comparison with the Keras model.
        isolated: bool. Load the SavedModel in a new process where importing
            multimodal_tf raises, as TF Serving would (one test proves that;
            the others load it here, which checks the same graph faster).
        modalities: iterable of "text" and "image", or None. The modalities
            that must move the probabilities; None means those the model's
            predictions read (`modalities_read`).
        **export_kwargs: passed to `export_saved_model`.
    """
    from multimodal_tf.serving.export import export_saved_model

    # Checked before the export: it costs seconds, this a few predictions.
    expected = assert_outputs_follow_each_modality(model, texts, images, atol, modalities)
    version_dir = export_saved_model(model, tmp_path / "served", **export_kwargs)
    if not isolated:
        import tensorflow as tf

        served = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
        out = served(text=tf.constant(list(texts), tf.string), image=tf.constant(images, tf.string))
        np.save(tmp_path / "served.npy", out["probabilities"].numpy())
        np.save(tmp_path / "labels.npy", out["label"].numpy())
        return _check_served(model, expected, tmp_path, atol, version_dir)
    np.save(tmp_path / "texts.npy", np.array(texts, dtype=object), allow_pickle=True)
    np.save(tmp_path / "images.npy", np.array(images, dtype=object), allow_pickle=True)
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["multimodal_tf"] = None  # importing it now raises ImportError
        import numpy as np
        import tensorflow as tf
        texts = np.load({str(tmp_path / "texts.npy")!r}, allow_pickle=True)
        images = np.load({str(tmp_path / "images.npy")!r}, allow_pickle=True)
        served = tf.saved_model.load({str(version_dir)!r}).signatures["serving_default"]
        out = served(text=tf.constant(list(texts), tf.string),
                     image=tf.constant(list(images), tf.string))
        np.save({str(tmp_path / "served.npy")!r}, out["probabilities"].numpy())
        np.save({str(tmp_path / "labels.npy")!r}, out["label"].numpy())
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, cwd=tmp_path)
    return _check_served(model, expected, tmp_path, atol, version_dir)


def _check_served(model, expected, tmp_path, atol, version_dir):
    served = np.load(tmp_path / "served.npy")
    np.testing.assert_allclose(served, expected, atol=atol)
    labels = [label.decode() for label in np.load(tmp_path / "labels.npy", allow_pickle=True)]
    if model.is_multi_label():  # every class at or above the head's threshold, joined by "|"
        thresholds = keras.ops.convert_to_numpy(model.get_layer("label").thresholds)
        names = np.array(model.class_names)
        assert labels == ["|".join(names[row >= thresholds]) for row in expected]
    else:
        assert labels == [model.class_names[i] for i in expected.argmax(-1)]
    return version_dir


def interrupt_train_at(monkeypatch, epoch):
    """Makes `train()`'s second stage raise `RuntimeError("interrupted")` as `epoch` begins.

    As a kill would, it leaves the run's backup of the finished epochs behind.
    Returns a callable that puts `train()`'s callbacks back, for the rerun.
    """
    from multimodal_tf.training import fit

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_begin(self, index, logs=None):
            if index == epoch:
                raise RuntimeError("interrupted")

    original = fit.training_callbacks
    monkeypatch.setattr(
        fit,
        "training_callbacks",
        lambda *args, **kwargs: (original(*args, **kwargs)[0] + [Interrupt()], 0),
    )
    return lambda: monkeypatch.setattr(fit, "training_callbacks", original)


MODALITIES = ("text", "image")


def modalities_read(model):
    """The modalities that `model`'s predictions read, in `MODALITIES` order.

    Those of `model.modalities`, except for a model (or ensemble member)
    whose deep path `training.drop_deep_if_worse` zeroed: its wide path reads
    the text, and the image only with `wide_image`.

    Args:
        model: a `MultimodalClassifier` or `MultimodalEnsemble`.
    """
    from multimodal_tf.models.wide_model import deep_path_is_silent

    read = set()
    for member in getattr(model, "members", [model]):
        if getattr(member, "wide", False) and deep_path_is_silent(member):
            read.update(["text", "image"] if member.wide_image else ["text"])
        else:
            read.update(member.modalities)
    return [name for name in MODALITIES if name in read]


def assert_outputs_follow_each_modality(model, texts, images, atol, modalities=None):
    """The Keras outputs differ between the inputs and follow each modality, by more than `atol`.

    Inputs on which a parity check (served vs Keras, within `atol`) can tell
    a serving graph that reads the inputs wrongly: the probabilities are not
    the same for every row, and they change when each row gets the next
    row's image (texts unchanged) and when it gets the next row's text
    (images unchanged). A graph that read that modality wrongly (channels
    reversed, another resize, text cut short) would then be expected to give
    other probabilities too.

    Args:
        model: a `MultimodalClassifier` with its preprocessor.
        texts: list of str. Raw texts.
        images: list of bytes. Encoded images.
        atol: float. The parity check's tolerance.
        modalities: iterable of "text" and "image", or None. The modalities
            that must move the probabilities; None means `modalities_read(model)`.

    Returns:
        The Keras model's outputs on `texts` and `images`.
    """
    texts, images = list(texts), list(images)

    def predict(texts, images):
        features = model.preprocessor(
            {"text": np.array(texts, dtype=object), "image": np.array(images, dtype=object)}
        )
        return model.predict(features, verbose=0)

    def flat(outputs):  # a multi-head model's outputs side by side
        if isinstance(outputs, dict):
            return np.concatenate([outputs[name] for name in sorted(outputs)], axis=-1)
        return np.asarray(outputs)

    expected = predict(texts, images)
    probabilities = flat(expected)
    assert len(probabilities) >= 2, "give at least two inputs: outputs must differ between them"
    spread = float(np.abs(probabilities - probabilities[:1]).max())
    assert spread > atol, (
        f"the Keras model gives every input the same outputs (they differ by at most "
        f"{spread:.3g}, not more than atol={atol}): comparing the served graph with it "
        "on these inputs cannot tell a graph that ignores its inputs"
    )
    changed = {"text": (texts[1:] + texts[:1], images), "image": (texts, images[1:] + images[:1])}
    wanted = modalities_read(model) if modalities is None else list(modalities)
    for name in wanted:
        moved = float(np.abs(flat(predict(*changed[name])) - probabilities).max())
        assert moved > atol, (
            f"changing only the {name} (each row given the next row's) moves the Keras outputs "
            f"by at most {moved:.3g}, not more than atol={atol}: comparing the served graph "
            f"with the model on these inputs cannot see how the graph reads the {name}. Give "
            f"inputs with different {name}s, and a model whose predictions read it."
        )
    return expected


def served_image_features(version_dir, texts, images):
    """The image tensors that an exported model's preprocessor makes from raw inputs.

    Runs the part of the SavedModel's `serving_default` graph from its `text`
    and `image` inputs to the preprocessor's float outputs: the tensors made
    inside the preprocessor's name scope and read by the model outside it.
    That is the image decoding the served model does, request checks
    included, run from the saved graph rather than from the Python layers.

    Args:
        version_dir: str or Path. A version folder written by `export_saved_model`.
        texts: list of str. Raw texts.
        images: list of bytes. Encoded images.

    Returns:
        dict of NumPy arrays: `image` (float32 `[batch, height, width, 3]`)
        and `image_present` (float32 `[batch]`).
    """
    import tensorflow as tf

    serve = tf.saved_model.load(str(version_dir)).serving_default.graph

    def scope(op):
        return op.name.split("/", 1)[0]

    outputs = {}
    for op in serve.get_operations():
        if "preprocessor" not in scope(op):
            continue
        for tensor in op.outputs:
            read_outside = any("preprocessor" not in scope(c) for c in tensor.consumers())
            name = {4: "image", 1: "image_present"}.get(tensor.shape.rank)
            if read_outside and tensor.dtype == tf.float32 and name:
                assert name not in outputs, f"two candidates for {name}: {tensor.name}"
                outputs[name] = tensor.name
    assert set(outputs) == {"image", "image_present"}, (
        f"the served graph's preprocessor outputs read by the model are {outputs}; "
        "expected an image [batch, height, width, 3] and image_present [batch]"
    )
    graph_def = serve.as_graph_def()
    wrapped = tf.compat.v1.wrap_function(
        lambda: tf.graph_util.import_graph_def(graph_def, name=""), []
    )
    graph = wrapped.graph
    part = wrapped.prune(
        feeds=[graph.get_tensor_by_name("text:0"), graph.get_tensor_by_name("image:0")],
        fetches={name: graph.get_tensor_by_name(tensor) for name, tensor in outputs.items()},
    )
    result = part(tf.constant(list(texts), tf.string), tf.constant(list(images), tf.string))
    return {name: tensor.numpy() for name, tensor in result.items()}


# The tiny two-class model most tests build: four samples, both modalities.
TEXTS = ["warm red fire", "cold blue ice", "red hot", "blue snow"]
IMAGES = [
    image_bytes((220, 30, 30), format="JPEG"),
    image_bytes((30, 30, 220), format="PNG"),
    image_bytes((200, 60, 40), format="PNG"),
    image_bytes((40, 60, 200), format="JPEG"),
]
LABELS = np.eye(2)[[0, 1, 0, 1]]
# The tiny model's sizes (`MultimodalClassifier` arguments).
TINY_SETTINGS = dict(
    embedding_dim=4, lstm_units=4, hidden_dim=8, image_filters=(4, 8), grid_size=2, num_heads=2
)


def tiny_model(modalities=("text", "image"), class_names=("warm", "cold"), image_size=16, **kwargs):
    text_features = "ngrams" if kwargs.get("text_encoder") == "bag" else "words"
    preprocessor = MultimodalPreprocessor(
        sequence_length=4 if text_features == "words" else 64,
        image_size=(image_size, image_size),
        text_features=text_features,
    )
    preprocessor.adapt(TEXTS, min_frequency=1)
    settings = {**TINY_SETTINGS, **kwargs}
    if isinstance(class_names, tuple):
        class_names = list(class_names)
    model = MultimodalClassifier(class_names, preprocessor, modalities=modalities, **settings)
    return compiled_for_saving(model)


def compiled_for_saving(model):
    """`compile()` with the optimizer built, as after training.

    Keras saves an unbuilt optimizer with none of its slots, and loading that file
    builds one and warns that the counts differ; a trained model never does this.
    """
    model.compile()
    model.optimizer.build(model.trainable_variables)
    return model


def features(model):
    return model.preprocessor({"text": tf.constant(TEXTS), "image": tf.constant(IMAGES)})


def write_config(folder, config, changes=None, name="run.json"):
    """Writes a `RunConfig` as a JSON run config file, with some values changed.

    Args:
        folder: Path. Where to write it.
        config: `RunConfig`. Usually `make_tiny_config()` or the `tiny_config` fixture.
        changes: dict or None. `{section: {key: value}}` to change before writing.
        name: str. The file's name.

    Returns:
        The file's Path.

    Example:
    >>> write_config(tmp_path, tiny_config, {"training": {"epochs": 3}})  # doctest: +SKIP
    """
    values = config.to_dict()
    for section, entries in (changes or {}).items():
        values.setdefault(section, {}).update(entries)
    path = Path(folder) / name
    path.write_text(json.dumps(values))
    return path


def built_once(tmp_path_factory, name, build):
    """A folder that `build(folder)` fills once per test session, for every test process.

    pytest-xdist runs a module's tests on both workers, and a module-scoped
    fixture would train or export its model once on each: the first worker to
    ask builds the folder (the other waits on a lock) and both read it.

    Args:
        tmp_path_factory: pytest's fixture of that name.
        name: str. The folder's name, unique per kind of artifact.
        build: callable taking the (empty) folder to fill.
    """
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the session's folder, above each worker's own
    folder, done = root / f"built-{name}", root / f"built-{name}.done"
    with open(root / f"built-{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            done.touch()
    return folder


def tiny_export(tmp_path_factory):
    """The tiny model fit for 5 epochs, as `model.keras` and exported under `demo/1`.

    Built once per test session (`built_once`) for the serving clients' tests.
    Returns the folder holding both.
    """
    from multimodal_tf.serving.export import export_saved_model

    def build(folder):
        model = tiny_model()
        model.fit(features(model), LABELS, epochs=5, verbose=0)
        model.save(folder / "model.keras")
        export_saved_model(model, folder / "demo")

    return built_once(tmp_path_factory, "tiny-export", build)
