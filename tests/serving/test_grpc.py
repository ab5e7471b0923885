from concurrent import futures

import grpc
import keras
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from multimodal_tf.serving.export import read_labels
from multimodal_tf.serving.grpc_client import GrpcClient, parse_predict_response, predict_request
from multimodal_tf.serving.rest import ServingError
from tests.helpers import IMAGES, TEXTS, features, tiny_export


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tiny_export(tmp_path_factory)
    model = keras.saving.load_model(folder / "model.keras")
    expected = model.predict(features(model), verbose=0)
    labels = [model.class_names[i] for i in expected.argmax(-1)]
    version_dir = folder / "demo" / "1"
    signature = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    return version_dir, signature, labels


class SignatureServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """What tensorflow_model_server does for Predict, with the loaded signature."""

    def __init__(self, signature):
        self.signature = signature

    def Predict(self, request, context):  # noqa: N802 (the gRPC method name)
        inputs = {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}
        try:
            outputs = self.signature(**{name: tf.constant(v) for name, v in inputs.items()})
        except tf.errors.InvalidArgumentError as error:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, error.message)
        response = predict_pb2.PredictResponse()
        response.model_spec.CopyFrom(request.model_spec)
        for name, tensor in outputs.items():
            response.outputs[name].CopyFrom(tf.make_tensor_proto(tensor.numpy()))
        return response


@pytest.fixture(scope="module")
def target(exported):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        SignatureServicer(exported[1]), server
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(grace=None)


def test_predict_request_feeds_the_signature_like_the_keras_model(exported):
    _, signature, labels = exported
    request = predict_request(TEXTS, IMAGES, model="demo", version=3)
    assert (request.model_spec.name, request.model_spec.signature_name) == (
        "demo",
        "serving_default",
    )
    assert request.model_spec.version.value == 3
    assert set(request.inputs) == {"text", "image"}
    for name in ("text", "image"):
        assert request.inputs[name].dtype == tf.string.as_datatype_enum
        assert [d.size for d in request.inputs[name].tensor_shape.dim] == [len(TEXTS)]
    assert list(tf.make_ndarray(request.inputs["image"])) == IMAGES
    outputs = signature(
        **{name: tf.constant(tf.make_ndarray(proto)) for name, proto in request.inputs.items()}
    )
    assert [label.decode() for label in outputs["label"].numpy()] == labels
    with pytest.raises(ValueError, match="2 texts and 1 images"):
        predict_request(TEXTS[:2], IMAGES[:1])


def test_grpc_client_against_an_in_process_prediction_service(exported, target):
    version_dir, _, labels = exported
    class_names = read_labels(version_dir)
    with GrpcClient(target, model="demo", class_names=class_names) as client:
        predictions = client.predict(TEXTS, IMAGES)
        assert [p.label for p in predictions] == labels
        for prediction in predictions:
            assert list(prediction.probabilities) == class_names
            assert sum(prediction.probabilities.values()) == pytest.approx(1, abs=1e-5)
        with pytest.raises(ServingError, match="INVALID_ARGUMENT") as caught:
            client.predict(["a"], [b"not an image"])
        assert "image" in str(caught.value)


def test_parse_predict_response_names_missing_outputs():
    response = predict_pb2.PredictResponse()
    response.outputs["emotion_label"].CopyFrom(tf.make_tensor_proto([b"joy"]))
    with pytest.raises(ServingError, match="no label, probabilities output"):
        parse_predict_response(response)
