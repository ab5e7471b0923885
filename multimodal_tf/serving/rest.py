"""A TF Serving REST client for exported models: request bodies, responses, HTTP calls.

Standard library only: a machine that only sends requests needs no TensorFlow.
The JSON rules are TF Serving's (https://www.tensorflow.org/tfx/serving/api_rest):
binary strings travel as `{"b64": <standard base64>}`, a row request
(`instances`) is answered with `predictions`, a columnar one (`inputs`) with
`outputs`, and every error is `{"error": <message>}`.
"""

import base64
import binascii
import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field

from multimodal_tf.errors import MultimodalTFError

SIGNATURE = "serving_default"
INPUTS = ("text", "image")


class ServingError(MultimodalTFError, ValueError):
    """TF Serving (or a request body) refused a request; `message` is its error text.

    Args:
        message: str. TF Serving's `error` text, or what is wrong with the body.
        status: int or None. The HTTP status, when there was an answer.
        url: str or None. The URL called.
    """

    def __init__(self, message, status=None, url=None):
        where = " ".join(str(part) for part in (f"HTTP {status}" if status else None, url) if part)
        super().__init__(f"{where}: {message}" if where else message)
        self.message = message
        self.status = status
        self.url = url


@dataclass(frozen=True)
class Prediction:
    """One served prediction: the `label` output and the probability of each class.

    Args:
        label: str. The signature's `label` output ("a|b" for a multi-label model).
        probabilities: dict. Class name (or index, without class names) -> float.
    """

    label: str
    probabilities: dict = field(default_factory=dict)


def encode_bytes(data):
    """The JSON form TF Serving reads as a binary string: `{"b64": ...}`.

    Args:
        data: bytes. E.g. an encoded JPEG.

    Example:
    >>> encode_bytes(b"\\xff\\xd8")
    {'b64': '/9g='}
    """
    return {"b64": base64.b64encode(bytes(data)).decode("ascii")}


def row_body(texts, images, signature_name=SIGNATURE):
    """A row-format ("instances") predict body: one object per sample.

    Args:
        texts: list of str. Raw texts ("" for a sample without text).
        images: list of bytes. Encoded JPEG/PNG bytes (b"" for none).
        signature_name: str. The SavedModel signature to run.

    Example:
    >>> row_body(["a red circle"], [b"\\x89PNG"])["instances"][0]
    {'text': 'a red circle', 'image': {'b64': 'iVBORw=='}}
    """
    texts, images = _check_samples(texts, images)
    instances = [
        {"text": text, "image": encode_bytes(image)}
        for text, image in zip(texts, images, strict=True)
    ]
    return {"signature_name": signature_name, "instances": instances}


def columnar_body(texts, images, signature_name=SIGNATURE):
    """A columnar ("inputs") predict body: one list per input.

    Args:
        texts: list of str. Raw texts.
        images: list of bytes. Encoded JPEG/PNG bytes.
        signature_name: str. The SavedModel signature to run.

    Example:
    >>> columnar_body(["a red circle"], [b"\\x89PNG"])["inputs"]
    {'text': ['a red circle'], 'image': [{'b64': 'iVBORw=='}]}
    """
    texts, images = _check_samples(texts, images)
    inputs = {"text": texts, "image": [encode_bytes(image) for image in images]}
    return {"signature_name": signature_name, "inputs": inputs}


def _check_samples(texts, images):
    texts, images = list(texts), list(images)
    if len(texts) != len(images):
        raise ValueError(
            f"texts and images pair up; received {len(texts)} texts and {len(images)} images."
        )
    if not texts:
        raise ValueError("A predict request needs at least one sample; received none.")
    for index, (text, image) in enumerate(zip(texts, images, strict=True)):
        if not isinstance(text, str):
            raise ValueError(f"texts[{index}] must be a str; received {type(text).__name__}.")
        if not isinstance(image, bytes | bytearray | memoryview):
            raise ValueError(
                f"images[{index}] must be encoded image bytes; received {type(image).__name__}."
            )
    return texts, images


def parse_response(body, class_names=None):
    """Predictions from a TF Serving predict response, row or columnar.

    Args:
        body: dict, str or bytes. The response JSON.
        class_names: list of str or None. Probability order
            (`assets.extra/labels.txt`); without it, classes are keyed by index.

    Returns:
        list of `Prediction`, one per sample.

    Example:
    >>> parse_response({"predictions": [{"probabilities": [0.2, 0.8], "label": "b"}]},
    ...                ["a", "b"])
    [Prediction(label='b', probabilities={'a': 0.2, 'b': 0.8})]
    """
    body = _load_json(body)
    if isinstance(body, dict) and "error" in body:
        raise ServingError(str(body["error"]))
    if isinstance(body, dict) and isinstance(body.get("predictions"), list):
        rows = body["predictions"]
        if not all(isinstance(row, dict) for row in rows):
            raise ServingError(
                "Each prediction should name its outputs (probabilities, label); "
                f"received {str(rows)[:200]}."
            )
        pairs = [(row.get("label"), row.get("probabilities")) for row in rows]
    elif isinstance(body, dict) and isinstance(body.get("outputs"), dict):
        outputs = body["outputs"]
        labels, probabilities = outputs.get("label"), outputs.get("probabilities")
        if not isinstance(labels, list) or not isinstance(probabilities, list):
            raise ServingError(f"Expected outputs label and probabilities; received {outputs}.")
        if len(labels) != len(probabilities):
            raise ServingError(
                f"{len(labels)} labels but {len(probabilities)} probability rows in the response."
            )
        pairs = list(zip(labels, probabilities, strict=True))
    else:
        raise ServingError(f"Not a predict response: {str(body)[:200]}")
    predictions = []
    for label, row in pairs:
        if not isinstance(label, str) or not isinstance(row, list):
            raise ServingError(
                "A multimodal_tf prediction has a str `label` and a list `probabilities`; "
                f"received label={label!r}, probabilities={row!r}."
            )
        names = class_names if class_names is not None else range(len(row))
        if len(names) != len(row):
            raise ServingError(
                f"{len(row)} probabilities but {len(names)} class names ({list(names)})."
            )
        predictions.append(Prediction(label, dict(zip(names, map(float, row), strict=True))))
    return predictions


def decode_rest_body(body, input_names=INPUTS):
    """The input columns TF Serving builds from a predict body, as Python values.

    Row (`instances`: a list of objects, all naming the same inputs) and
    columnar (`inputs`: an object of lists) bodies both become one list per
    input; `{"b64": ...}` values become bytes, plain strings stay str.

    Args:
        body: dict, str or bytes. The request JSON.
        input_names: tuple of str. The signature's inputs; missing or extra ones
            are errors, as in TF Serving.

    Returns:
        dict input name -> list of str or bytes.

    Example:
    >>> decode_rest_body({"instances": [{"text": "hi", "image": {"b64": "iVBORw=="}}]})
    {'text': ['hi'], 'image': [b'\\x89PNG']}
    """
    body = _load_json(body, status=400)
    if not isinstance(body, dict):
        raise ServingError(f"A predict body is a JSON object; received {str(body)[:200]}.", 400)
    if "instances" in body and "inputs" in body:
        raise ServingError("Only one of 'instances' or 'inputs' may be specified.", 400)
    if "instances" in body:
        columns = _row_columns(body["instances"])
    elif "inputs" in body:
        inputs = body["inputs"]
        if not isinstance(inputs, dict):
            raise ServingError(
                f"'inputs' must name each input ({', '.join(input_names)}); "
                f"received {str(inputs)[:200]}.",
                400,
            )
        columns = {
            name: [
                _decode_value(value, f"inputs[{name!r}][{index}]")
                for index, value in enumerate(_as_list(values, f"inputs[{name!r}]"))
            ]
            for name, values in inputs.items()
        }
    else:
        raise ServingError("Missing 'inputs' or 'instances' key.", 400)
    sent, wanted = set(columns), set(input_names)
    if sent != wanted:
        raise ServingError(
            f"input size does not match signature: {len(sent)}!={len(wanted)} "
            f"len({{{', '.join(sorted(sent))}}}) != len({{{', '.join(sorted(wanted))}}}). "
            f"Sent extra: {{{', '.join(sorted(sent - wanted))}}}. "
            f"Missing but required: {{{', '.join(sorted(wanted - sent))}}}.",
            400,
        )
    return {name: columns[name] for name in input_names}


def _row_columns(instances):
    instances = _as_list(instances, "instances")
    if not instances:
        raise ServingError("'instances' is empty: send at least one sample.", 400)
    columns = {}
    for index, instance in enumerate(instances):
        if not isinstance(instance, dict):
            raise ServingError(
                f"instances[{index}] must be an object naming the inputs; "
                f"received {str(instance)[:200]}.",
                400,
            )
        if index and set(instance) != set(columns):
            raise ServingError(
                f"instances[{index}] has inputs {sorted(instance)}, instances[0] has "
                f"{sorted(columns)}: every instance names the same inputs.",
                400,
            )
        for name, value in instance.items():
            columns.setdefault(name, []).append(
                _decode_value(value, f"instances[{index}][{name!r}]")
            )
    return columns


def _as_list(values, where):
    if not isinstance(values, list):
        raise ServingError(f"{where} must be a list; received {str(values)[:200]}.", 400)
    return values


def _decode_value(value, where):
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and set(value) == {"b64"} and isinstance(value["b64"], str):
        try:
            return base64.b64decode(value["b64"], validate=True)
        except binascii.Error as error:
            raise ServingError(f"{where}: 'b64' is not valid base64 ({error}).", 400) from None
    raise ServingError(
        f'{where} must be a string or {{"b64": <base64>}}; received {str(value)[:200]}.', 400
    )


def _load_json(body, status=None):
    if isinstance(body, bytes | bytearray | str):
        try:
            return json.loads(body)
        except ValueError as error:
            raise ServingError(f"Body is not JSON: {error}.", status) from None
    return body


class RestClient:
    """Calls one model on a TF Serving REST endpoint (`--rest_api_port`, 8501).

    Args:
        base_url: str. E.g. "http://localhost:8501".
        model: str. The served model's name (`--model_name`).
        version: int or None. Pin a version; None means the latest.
        version_label: str or None. Pin a version label ("stable"); not with `version`.
        timeout: float. Seconds per HTTP call.
        class_names: list of str or None. Probability order, as in
            `assets.extra/labels.txt`; without it, classes are keyed by index.

    Example:
    >>> client = RestClient(model="demo", class_names=["cold", "warm"])  # doctest: +SKIP
    >>> client.predict(["a red sun"], [open("sun.png", "rb").read()])  # doctest: +SKIP
    [Prediction(label='warm', probabilities={'cold': 0.1, 'warm': 0.9})]
    """

    def __init__(
        self,
        base_url="http://localhost:8501",
        model="model",
        version=None,
        version_label=None,
        timeout=10,
        class_names=None,
    ):
        if version is not None and version_label is not None:
            raise ValueError(
                f"Pass version or version_label, not both; received {version!r} and "
                f"{version_label!r}."
            )
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.version = version
        self.version_label = version_label
        self.timeout = timeout
        self.class_names = class_names

    @property
    def model_url(self):
        """`<base_url>/v1/models/<model>[/versions/<N> | /labels/<L>]`."""
        url = f"{self.base_url}/v1/models/{urllib.parse.quote(self.model)}"
        if self.version is not None:
            url += f"/versions/{int(self.version)}"
        elif self.version_label is not None:
            url += f"/labels/{urllib.parse.quote(self.version_label)}"
        return url

    def predict(self, texts, images, columnar=False):
        """Predictions for raw samples, sent as a row (default) or columnar body."""
        make_body = columnar_body if columnar else row_body
        answer = self._call(f"{self.model_url}:predict", make_body(texts, images))
        return parse_response(answer, self.class_names)

    def status(self):
        """The model's version states (`GetModelStatusResponse` as JSON)."""
        return self._call(self.model_url)

    def metadata(self):
        """The model's signatures (`GetModelMetadataResponse` as JSON)."""
        return self._call(f"{self.model_url}/metadata")

    def _call(self, url, body=None):
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(
            url,
            data=data,
            method="GET" if body is None else "POST",
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            text = error.read().decode("utf-8", "replace")
            try:
                message = json.loads(text)["error"]
            except (ValueError, KeyError, TypeError):
                message = text or error.reason
            raise ServingError(message, error.code, f"{request.method} {url}") from None
        except urllib.error.URLError as error:
            raise ServingError(
                f"Could not reach TF Serving at {url}: {error.reason}. Is the server "
                "running with --rest_api_port?"
            ) from None
