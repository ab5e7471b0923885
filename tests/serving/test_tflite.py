import json

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.lite.python.convert_phase import ConverterError

from multimodal_tf.models.preprocessor import MultimodalPreprocessor
from multimodal_tf.serving.tflite import (
    PREPROCESSOR_FILE,
    check_tflite_parity,
    export_tflite,
    load_tflite,
)
from tests.helpers import IMAGES, TEXTS, features, tiny_model


@pytest.mark.parametrize("text_encoder", ["lstm", "bag"])
def test_tflite_matches_keras_on_preprocessed_tensors(text_encoder, tmp_path):
    model = tiny_model(text_encoder=text_encoder)
    path = export_tflite(model, tmp_path / "tflite" / "model.tflite")
    batch = features(model)
    assert check_tflite_parity(model, path, batch) <= 1e-5

    runner = load_tflite(path)
    assert sorted(runner.get_input_details()) == ["image", "image_present", "token_ids"]
    assert runner.get_input_details()["token_ids"]["shape"].tolist() == [
        1,
        model.preprocessor.sequence_length,
    ]
    assert list(runner.get_output_details()) == ["probabilities"]

    # The files beside it are enough to rebuild the exact preprocessing.
    assert (path.parent / "labels.txt").read_text().splitlines() == model.class_names
    written = json.loads((path.parent / PREPROCESSOR_FILE).read_text(encoding="utf-8"))
    assert written["inputs"]["image"]["shape"] == [1, 16, 16, 3]
    rebuilt = MultimodalPreprocessor.from_config(written["preprocessor"])
    again = rebuilt({"text": tf.constant(TEXTS), "image": tf.constant(IMAGES)})
    for name, value in batch.items():
        np.testing.assert_array_equal(again[name], value)


def test_multi_head_outputs_are_named_per_head(tmp_path):
    model = tiny_model(class_names={"a": ["x", "y"], "b": ["u", "v", "w"]}, multi_label=["b"])
    path = export_tflite(model, tmp_path / "model.tflite")
    assert sorted(load_tflite(path).get_output_details()) == ["a_probabilities", "b_probabilities"]
    assert check_tflite_parity(model, path, features(model)) <= 1e-5
    assert (tmp_path / "labels.txt").read_text().splitlines() == ["a: x,y", "b: u,v,w"]


def test_calibrated_quantization_of_a_recurrent_model_is_refused(tmp_path):
    model = tiny_model(text_encoder="bilstm")
    with pytest.raises(ValueError, match="recurrent text encoders"):
        export_tflite(model, tmp_path / "model.tflite", representative=[features(model)])


def test_raw_input_serving_function_does_not_convert():
    """What the module docstring says: the preprocessing cannot run in TFLite."""
    model = tiny_model()

    @tf.function(
        input_signature=[
            tf.TensorSpec([1], tf.string, name="text"),
            tf.TensorSpec([1], tf.string, name="image"),
        ]
    )
    def serve(text, image):
        return {"probabilities": model(model.preprocessor({"text": text, "image": image}))}

    function = serve.get_concrete_function()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function], model)
    with pytest.raises(ConverterError, match="TensorListReserve' op requires element_shape"):
        converter.convert()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function], model)
    converter.target_spec.supported_ops = [
        tf.lite.OpsSet.TFLITE_BUILTINS,
        tf.lite.OpsSet.SELECT_TF_OPS,
    ]
    with pytest.raises(ConverterError, match="Custom ops: ExtractJpegShape, ResizeArea"):
        converter.convert()
