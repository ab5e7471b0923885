"""A TEST DOUBLE of TF Serving's REST API for one exported version folder.

`ServingEmulator` answers `:predict`, status and metadata calls the way
`tensorflow_model_server --rest_api_port` does (same URLs, same JSON rules,
`{"error": ...}` bodies), by running the SavedModel's signature in this
process. It exists so tests and examples can exercise `RestClient` and request
bodies where the model server binary is not installed. It is not a server for
production: one version, no batching, no version policy, no model reloading,
no TLS, bound to 127.0.0.1 only.
"""

import base64
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import tensorflow as tf
from google.protobuf import json_format
from tensorflow.core.protobuf import saved_model_pb2

from multimodal_tf.serving.rest import ServingError, decode_rest_body

_URL = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)"
    r"(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
    r"(?P<verb>:predict|/metadata)?$"
)


class ServingEmulator:
    """Serves one SavedModel version over TF Serving's REST API, for tests only.

    Args:
        version_dir: str or Path. An exported version folder (`saved_models/demo/1`);
            its name is the version number it answers to.
        model_name: str. The name in `/v1/models/<model_name>`.

    Example:
    >>> with ServingEmulator("saved_models/demo/1", "demo") as server:  # doctest: +SKIP
    ...     client = RestClient(server.url, "demo")
    ...     client.predict(["a red sun"], [open("sun.png", "rb").read()])
    """

    def __init__(self, version_dir, model_name="model"):
        self.version_dir = Path(version_dir)
        if not (self.version_dir / "saved_model.pb").is_file():
            raise ValueError(f"{self.version_dir} is not a SavedModel folder (no saved_model.pb).")
        self.model_name = model_name
        self.version = self.version_dir.name
        self._loaded = None
        self._server = None
        self._thread = None

    @property
    def url(self):
        """`http://127.0.0.1:<port>`, once started."""
        if self._server is None:
            raise RuntimeError("The emulator is not running: use it as a context manager.")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self):
        """Loads the model and serves on a free port in a background thread."""
        if self._loaded is None:
            self._loaded = tf.saved_model.load(str(self.version_dir))
        handler = type("Handler", (_Handler,), {"emulator": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        """Stops serving and frees the port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
            self._server = self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

    def predict(self, body):
        """The response TF Serving gives to a predict body (dict), or a `ServingError`."""
        name = body.get("signature_name") or "serving_default"
        if name not in self._loaded.signatures:
            raise ServingError(f'Serving signature name: "{name}" not found in signature def', 400)
        signature = self._loaded.signatures[name]
        input_names = tuple(signature.structured_input_signature[1])
        columns = decode_rest_body(body, input_names)
        tensors = {
            key: tf.constant([v.encode("utf-8") if isinstance(v, str) else v for v in values])
            for key, values in columns.items()
        }
        try:
            outputs = signature(**tensors)
        except tf.errors.OpError as error:
            status = 400 if isinstance(error, tf.errors.InvalidArgumentError) else 500
            raise ServingError(_server_message(error.message), status) from None
        outputs = {key: [_json_value(key, v) for v in t.numpy()] for key, t in outputs.items()}
        if "instances" in body:
            rows = [
                dict(zip(outputs, values, strict=True))
                for values in zip(*outputs.values(), strict=True)
            ]
            if len(outputs) == 1:  # TF Serving leaves out the name of a lone output
                rows = next(iter(outputs.values()))
            return {"predictions": rows}
        return {"outputs": next(iter(outputs.values())) if len(outputs) == 1 else outputs}

    def status(self):
        """`GetModelStatusResponse` as JSON: this one version, AVAILABLE."""
        return {
            "model_version_status": [
                {
                    "version": self.version,
                    "state": "AVAILABLE",
                    "status": {"error_code": "OK", "error_message": ""},
                }
            ]
        }

    def metadata(self):
        """`GetModelMetadataResponse` as JSON, with the SavedModel's signature defs."""
        saved_model = saved_model_pb2.SavedModel()
        saved_model.ParseFromString((self.version_dir / "saved_model.pb").read_bytes())
        signature_defs = {
            key: json_format.MessageToDict(value)
            for key, value in saved_model.meta_graphs[0].signature_def.items()
        }
        return {
            "model_spec": {"name": self.model_name, "signature_name": "", "version": self.version},
            "metadata": {
                "signature_def": {
                    "signature_def": signature_defs,
                    "@type": "type.googleapis.com/tensorflow.serving.SignatureDefMap",
                }
            },
        }

    def _check_url(self, path):
        match = _URL.match(path)
        if match is None or match["name"] != self.model_name:
            raise ServingError(f"Servable not found for request: Latest({path})", 404)
        if match["label"] is not None:
            raise ServingError(f"Unrecognized servable version label: {match['label']}", 404)
        if match["version"] not in (None, self.version):
            raise ServingError(
                f"Servable not found for request: Specific({self.model_name}, {match['version']})",
                404,
            )
        return match["verb"]


def _server_message(message):
    # Eager TensorFlow wraps a graph error in a Python-side header and an "[Op:...]"
    # trailer naming this process's function; the model server sends the op's text only.
    message = re.sub(r"\s*\[Op:[^\]]*\]\s*$", "", message)
    if message.startswith("Graph execution error:"):
        message = message.split("<stack traces unavailable>\n", 1)[-1]
    return message.strip()


def _json_value(name, value):
    if isinstance(value, bytes):
        # TF Serving base64-encodes outputs named *_bytes and sends other strings as text.
        if name.endswith("_bytes"):
            return {"b64": base64.b64encode(value).decode("ascii")}
        return value.decode("utf-8", "replace")
    return value.tolist() if hasattr(value, "tolist") else value


class _Handler(BaseHTTPRequestHandler):
    emulator = None  # set on the subclass each emulator makes

    def do_GET(self):
        self._answer(lambda verb: self._get(verb))

    def do_POST(self):
        self._answer(lambda verb: self._post(verb))

    def _get(self, verb):
        if verb == ":predict":
            raise ServingError("Use POST for :predict.", 405)
        return self.emulator.metadata() if verb == "/metadata" else self.emulator.status()

    def _post(self, verb):
        if verb != ":predict":
            raise ServingError(f"POST is for :predict; received {self.path}.", 404)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        try:
            body = json.loads(body)
        except ValueError as error:
            raise ServingError(f"JSON Parse error: {error}", 400) from None
        if not isinstance(body, dict):
            raise ServingError("A predict body is a JSON object.", 400)
        return self.emulator.predict(body)

    def _answer(self, handle):
        try:
            status, payload = 200, handle(self.emulator._check_url(self.path))
        except ServingError as error:
            status, payload = error.status or 400, {"error": error.message}
        except Exception as error:  # a bug here should still answer, as TF Serving would
            status, payload = 500, {"error": f"{type(error).__name__}: {error}"}
        data = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args):  # keep test output quiet
        pass
