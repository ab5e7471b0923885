"""Test helpers every layer and model goes through (see STYLE.md)."""

import json
import subprocess
import sys
import textwrap

import keras
import numpy as np


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


def run_export_test(model, texts, images, tmp_path, atol=1e-5, isolated=False, **export_kwargs):
    """The exported SavedModel, given raw inputs, matches the Keras model.

    Args:
        model: a `MultimodalClassifier` with its preprocessor.
        texts: list of str. Raw texts.
        images: list of bytes. Encoded images.
        isolated: bool. Load the SavedModel in a new process where importing
            multimodal_tf raises, as TF Serving would (one test proves that;
            the others load it here, which checks the same graph faster).
        **export_kwargs: passed to `export_saved_model`.
    """
    from multimodal_tf.serving.export import export_saved_model

    version_dir = export_saved_model(model, tmp_path / "served", **export_kwargs)
    features = model.preprocessor(
        {"text": np.array(texts, dtype=object), "image": np.array(images, dtype=object)}
    )
    expected = model.predict(features, verbose=0)
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
