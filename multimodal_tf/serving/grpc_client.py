"""A TF Serving gRPC client for exported models (`--port`, 8500), via tensorflow-serving-api."""

import grpc
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from multimodal_tf.serving.rest import SIGNATURE, Prediction, ServingError


def predict_request(texts, images, model="model", signature_name=SIGNATURE, version=None):
    """A `PredictRequest` carrying raw samples as the `text` and `image` string inputs.

    Args:
        texts: list of str or bytes. Raw texts ("" for a sample without text).
        images: list of bytes. Encoded JPEG/PNG bytes (b"" for none).
        model: str. The served model's name.
        signature_name: str. The SavedModel signature to run.
        version: int or None. Pin a version; None means the latest.

    Example:
    >>> request = predict_request(["a red sun"], [b"\\x89PNG"], model="demo")
    >>> request.inputs["text"].string_val
    [b'a red sun']
    """
    texts = [text.encode("utf-8") if isinstance(text, str) else bytes(text) for text in texts]
    images = [bytes(image) for image in images]
    if len(texts) != len(images) or not texts:
        raise ValueError(
            "texts and images pair up, at least one of each; received "
            f"{len(texts)} texts and {len(images)} images."
        )
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature_name
    if version is not None:
        request.model_spec.version.value = int(version)
    for name, values in (("text", texts), ("image", images)):
        request.inputs[name].CopyFrom(
            tf.make_tensor_proto(values, dtype=tf.string, shape=[len(values)])
        )
    return request


def parse_predict_response(response, class_names=None):
    """Predictions from a `PredictResponse` (the same `Prediction`s as the REST client).

    Args:
        response: `predict_pb2.PredictResponse`.
        class_names: list of str or None. Probability order
            (`assets.extra/labels.txt`); without it, classes are keyed by index.

    Example:
    >>> parse_predict_response(stub.Predict(request), ["cold", "warm"])  # doctest: +SKIP
    [Prediction(label='warm', probabilities={'cold': 0.1, 'warm': 0.9})]
    """
    missing = {"probabilities", "label"} - set(response.outputs)
    if missing:
        raise ServingError(
            f"The response has no {', '.join(sorted(missing))} output "
            f"(outputs: {', '.join(sorted(response.outputs))}): is this a multi-task model?"
        )
    probabilities = tf.make_ndarray(response.outputs["probabilities"])
    labels = tf.make_ndarray(response.outputs["label"])
    predictions = []
    for label, row in zip(labels, probabilities, strict=True):
        names = class_names if class_names is not None else range(len(row))
        if len(names) != len(row):
            raise ServingError(
                f"{len(row)} probabilities but {len(names)} class names ({list(names)})."
            )
        predictions.append(
            Prediction(label.decode("utf-8"), dict(zip(names, map(float, row), strict=True)))
        )
    return predictions


class GrpcClient:
    """Calls one model on a TF Serving gRPC endpoint.

    Args:
        target: str. "host:port" of `tensorflow_model_server --port`.
        model: str. The served model's name (`--model_name`).
        timeout: float. Seconds per call.
        class_names: list of str or None. Probability order, as in
            `assets.extra/labels.txt`; without it, classes are keyed by index.
        version: int or None. Pin a version; None means the latest.

    Example:
    >>> with GrpcClient("localhost:8500", "demo") as client:  # doctest: +SKIP
    ...     client.predict(["a red sun"], [open("sun.png", "rb").read()])
    """

    def __init__(
        self, target="localhost:8500", model="model", timeout=10, class_names=None, version=None
    ):
        self.target = target
        self.model = model
        self.timeout = timeout
        self.class_names = class_names
        self.version = version
        self._channel = grpc.insecure_channel(target)
        self._stub = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)

    def predict(self, texts, images):
        """Predictions for raw samples; a refused call raises `ServingError`."""
        request = predict_request(texts, images, model=self.model, version=self.version)
        try:
            response = self._stub.Predict(request, timeout=self.timeout)
        except grpc.RpcError as error:
            raise ServingError(
                f"gRPC {error.code().name} from {self.target}: {error.details()}"
            ) from None
        return parse_predict_response(response, self.class_names)

    def close(self):
        """Closes the channel."""
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
