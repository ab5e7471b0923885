"""A TEST DOUBLE of TF Serving's REST API for one exported version folder.

`ServingEmulator` answers `:predict`, status and metadata calls the way
`tensorflow_model_server --rest_api_port` does (same URLs, same JSON rules,
`{"error": ...}` bodies), by running the SavedModel's signature in this
process. It exists so tests and examples can exercise `RestClient` and request
bodies where the model server binary is not installed. It is not a server for
production: one version, no batching, no version policy, no model reloading,
no TLS, bound to 127.0.0.1 only.

It reads request bodies with its own code, written from TF Serving's documented
REST JSON (`instances` or `inputs`, binary values as `{"b64": ...}`), not with
`rest.py`'s: a `RestClient` whose JSON strays from TF Serving's is refused here
as the model server would refuse it.

So that a test or notebook cannot hang or crash it, it has a listen backlog
of 1024 and a daemon thread per connection (200 clients at once are all
answered), a read timeout (5 s by default) after which a stalled connection is
closed, a body size limit (64 MB by default; a larger Content-Length is
answered 413 without the body being read), and a 400 with an `{"error": ...}`
body for every malformed request; 500 means a fault of the emulator itself.
Each connection carries one request (HTTP/1.0, no keep-alive).
"""

import base64
import binascii
import json
import os
import re
import socket
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import tensorflow as tf
from google.protobuf import json_format
from tensorflow.core.protobuf import saved_model_pb2

from multimodal_tf.serving.rest import ServingError

_URL = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)"
    r"(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
    r"(?P<verb>:predict|/metadata)?$"
)
_CONTENT_LENGTH = re.compile(r"[0-9]+")
# TF Serving's REST JSON (tensorflow_serving/g3doc/api_rest.md): a row body lists one
# object per sample under "instances", a columnar body one list per input under
# "inputs", and a binary string travels as an object whose only key is "b64", holding
# standard Base64 ("Encoding binary values"). The same key marks binary outputs.
_ROWS = "instances"
_COLUMNS = "inputs"
_BASE64 = "b64"
_DEEP_JSON = (
    "JSON Parse error: the body nests arrays and objects too deeply for Python's JSON reader."
)


class ServingEmulator:
    """Serves one SavedModel version over TF Serving's REST API, for tests only.

    Each connection gets its own daemon thread (one request per connection, as
    HTTP/1.0); up to `max_concurrent_predictions` of them run the signature at
    once and the others wait their turn.

    Args:
        version_dir: str or Path. An exported version folder (`saved_models/demo/1`);
            its name is the version number it answers to.
        model_name: str. The name in `/v1/models/<model_name>`.
        read_timeout: float. Seconds a connection may wait for the client's next
            bytes. A request whose headers stall is closed unanswered; a body
            that stalls (shorter than its Content-Length, say) is answered 408.
            Either way the connection's thread is freed.
        max_body_bytes: int. The largest predict body accepted (64 MB by default).
            A larger Content-Length is answered 413 without the body being read.
        max_concurrent_predictions: int or None. How many requests run the
            signature at the same time; None means one per CPU core this
            process may use. Hundreds of concurrent signature calls are
            slower in total than a few at a time.

    Example:
    >>> with ServingEmulator("saved_models/demo/1", "demo") as server:  # doctest: +SKIP
    ...     client = RestClient(server.url, "demo")
    ...     client.predict(["a red sun"], [open("sun.png", "rb").read()])
    >>> strict = ServingEmulator(  # doctest: +SKIP
    ...     "saved_models/demo/1", "demo", read_timeout=0.5, max_body_bytes=4096
    ... )
    """

    def __init__(
        self,
        version_dir,
        model_name="model",
        read_timeout=5.0,
        max_body_bytes=64 * 1024 * 1024,
        max_concurrent_predictions=None,
    ):
        self.version_dir = Path(version_dir)
        if not (self.version_dir / "saved_model.pb").is_file():
            raise ValueError(f"{self.version_dir} is not a SavedModel folder (no saved_model.pb).")
        if isinstance(read_timeout, bool) or not isinstance(read_timeout, int | float):
            raise ValueError(f"read_timeout is in seconds; received {read_timeout!r}.")
        if not 0 < read_timeout < float("inf"):
            raise ValueError(f"read_timeout must be a positive number; received {read_timeout}.")
        if isinstance(max_body_bytes, bool) or not isinstance(max_body_bytes, int):
            raise ValueError(f"max_body_bytes must be an int; received {max_body_bytes!r}.")
        if max_body_bytes < 1:
            raise ValueError(f"max_body_bytes must be positive; received {max_body_bytes}.")
        if max_concurrent_predictions is None:
            max_concurrent_predictions = _usable_cores()
        if (
            isinstance(max_concurrent_predictions, bool)
            or not isinstance(max_concurrent_predictions, int)
            or max_concurrent_predictions < 1
        ):
            raise ValueError(
                "max_concurrent_predictions must be a positive int or None; "
                f"received {max_concurrent_predictions!r}."
            )
        self.model_name = model_name
        self.version = self.version_dir.name
        self.read_timeout = float(read_timeout)
        self.max_body_bytes = max_body_bytes
        self.max_concurrent_predictions = max_concurrent_predictions
        self._predicting = threading.BoundedSemaphore(max_concurrent_predictions)
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
        handler = type("Handler", (_Handler,), {"emulator": self, "timeout": self.read_timeout})
        self._server = _Server(("127.0.0.1", 0), handler)
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
        """The response TF Serving gives to a predict body, or a `ServingError`.

        Args:
            body: dict. The request JSON, parsed. A body TF Serving would refuse
                (not an object, a `signature_name` that is not a string or names
                no signature, `instances`/`inputs` of the wrong shape, inputs the
                signature rejects) raises `ServingError` with status 400.

        Returns:
            dict: `{"predictions": [...]}` for a row body, `{"outputs": ...}`
            for a columnar one.

        Example:
        >>> from multimodal_tf.serving.rest import row_body
        >>> with ServingEmulator("saved_models/demo/1", "demo") as server:  # doctest: +SKIP
        ...     server.predict(row_body(["a red sun"], [open("sun.png", "rb").read()]))
        {'predictions': [{'probabilities': [0.1, 0.9], 'label': 'warm'}]}
        """
        if self._loaded is None:
            raise RuntimeError("The emulator is not running: use it as a context manager.")
        if not isinstance(body, dict):
            raise ServingError(
                f"A predict body is a JSON object; received {type(body).__name__}.", 400
            )
        name = body.get("signature_name", "")
        if not isinstance(name, str):
            raise ServingError(
                f"JSON Value: {_json_excerpt(name)} not formatted correctly. "
                "'signature_name' key must be a string value.",
                400,
            )
        name = name or "serving_default"
        if name not in self._loaded.signatures:
            raise ServingError(f'Serving signature name: "{name}" not found in signature def', 400)
        signature = self._loaded.signatures[name]
        input_names = tuple(signature.structured_input_signature[1])
        columns = _request_inputs(body, input_names)
        tensors = {key: tf.constant(values) for key, values in columns.items()}
        try:
            with self._predicting:
                outputs = signature(**tensors)
        except tf.errors.OpError as error:
            status = 400 if isinstance(error, tf.errors.InvalidArgumentError) else 500
            raise ServingError(_server_message(error.message), status) from None
        outputs = {key: [_json_value(key, v) for v in t.numpy()] for key, t in outputs.items()}
        if _ROWS in body:
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


def _usable_cores():
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _json_excerpt(value):
    try:
        return json.dumps(value)[:200]
    except RecursionError:
        return f"<{type(value).__name__} nested too deeply to show>"


def _request_inputs(body, input_names):
    # The signature's inputs in a predict body, read by TF Serving's REST rules (the
    # comment at _ROWS) on their own, not by the client's code: a client whose JSON
    # strays from them is refused here as by the model server. Returns input name ->
    # list of bytes (a plain JSON string is its UTF-8 bytes), in input_names order.
    if _ROWS in body and _COLUMNS in body:
        raise ServingError("Only one of 'instances' or 'inputs' may be specified.", 400)
    if _ROWS in body:
        instances = _json_list(body[_ROWS], _ROWS)
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
            if index == 0:
                columns = {name: [] for name in instance}
            elif instance.keys() != columns.keys():
                raise ServingError(
                    f"instances[{index}] has inputs {sorted(instance)}, instances[0] has "
                    f"{sorted(columns)}: every instance names the same inputs.",
                    400,
                )
            for name, value in instance.items():
                columns[name].append(_string_tensor_value(value, f"instances[{index}][{name!r}]"))
    elif _COLUMNS in body:
        inputs = body[_COLUMNS]
        if not isinstance(inputs, dict):
            raise ServingError(
                f"'inputs' must name each input ({', '.join(input_names)}); "
                f"received {str(inputs)[:200]}.",
                400,
            )
        columns = {}
        for name, values in inputs.items():
            where = f"inputs[{name!r}]"
            columns[name] = [
                _string_tensor_value(value, f"{where}[{index}]")
                for index, value in enumerate(_json_list(values, where))
            ]
    else:
        raise ServingError("Missing 'inputs' or 'instances' key.", 400)
    extra = sorted(set(columns) - set(input_names))
    missing = sorted(set(input_names) - set(columns))
    if extra or missing:
        raise ServingError(
            f"input size does not match signature: {len(columns)}!={len(input_names)} "
            f"len({{{', '.join(sorted(columns))}}}) != len({{{', '.join(sorted(input_names))}}}). "
            f"Sent extra: {{{', '.join(extra)}}}. "
            f"Missing but required: {{{', '.join(missing)}}}.",
            400,
        )
    return {name: columns[name] for name in input_names}


def _json_list(value, where):
    if not isinstance(value, list):
        raise ServingError(f"{where} must be a list; received {str(value)[:200]}.", 400)
    return value


def _string_tensor_value(value, where):
    # One element of a DT_STRING input: a JSON string is its UTF-8 bytes; binary
    # data is {"b64": "<standard Base64>"}, an object with that one key.
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, dict) and list(value) == [_BASE64] and isinstance(value[_BASE64], str):
        try:
            return base64.b64decode(value[_BASE64], validate=True)
        except binascii.Error as error:
            raise ServingError(
                f"{where}: '{_BASE64}' is not valid base64 ({error}).", 400
            ) from None
    raise ServingError(
        f'{where} must be a string or {{"{_BASE64}": <base64>}}; received {str(value)[:200]}.',
        400,
    )


def _json_value(name, value):
    if isinstance(value, bytes):
        # TF Serving base64-encodes outputs named *_bytes and sends other strings as text.
        if name.endswith("_bytes"):
            return {_BASE64: base64.b64encode(value).decode("ascii")}
        return value.decode("utf-8", "replace")
    return value.tolist() if hasattr(value, "tolist") else value


class _Server(ThreadingHTTPServer):
    """A thread per connection, daemon threads, and a listen backlog for many clients."""

    request_queue_size = 1024  # the kernel caps it at net.core.somaxconn
    daemon_threads = True
    block_on_close = False  # stop() does not wait on a client that stalls

    def handle_error(self, request, client_address):
        # A client that resets or drops its connection mid-answer is not a fault of
        # the emulator; anything else still gets socketserver's traceback on stderr.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    emulator = None  # set on the subclass each emulator makes
    timeout = None  # set to the emulator's read_timeout: socket timeout per read or write
    disable_nagle_algorithm = True  # headers and body go out as separate writes
    # A request line too broken to name its HTTP version still gets a status line and
    # headers with its error (the standard library would answer it as HTTP/0.9: body only).
    default_request_version = "HTTP/1.0"
    _unread_body = False  # the client may still be sending a body nobody will read

    def do_GET(self):
        self._answer(lambda verb: self._get(verb))

    def do_POST(self):
        self._unread_body = True
        self._answer(lambda verb: self._post(verb))

    def _get(self, verb):
        if verb == ":predict":
            raise ServingError("Use POST for :predict.", 405)
        return self.emulator.metadata() if verb == "/metadata" else self.emulator.status()

    def _post(self, verb):
        if verb != ":predict":
            raise ServingError(f"POST is for :predict; received {self.path}.", 404)
        data = self._read_body(self._content_length())
        try:
            body = json.loads(data)
        except RecursionError:
            raise ServingError(_DEEP_JSON, 400) from None
        except ValueError as error:
            raise ServingError(f"JSON Parse error: {error}", 400) from None
        try:
            return self.emulator.predict(body)
        except RecursionError:  # e.g. showing a deeply nested value in an error message
            raise ServingError(_DEEP_JSON, 400) from None

    def _content_length(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raise ServingError(
                "Transfer-Encoding: chunked is not supported: send a Content-Length header.", 400
            )
        values = [value.strip() for value in self.headers.get_all("Content-Length", [])]
        if not values:
            raise ServingError("A predict request needs a Content-Length header.", 400)
        if len(set(values)) > 1:
            raise ServingError(f"Conflicting Content-Length headers: {', '.join(values)}.", 400)
        if not _CONTENT_LENGTH.fullmatch(values[0]):
            raise ServingError(
                f"Content-Length must be a non-negative integer; received {values[0][:40]!r}.",
                400,
            )
        length = int(values[0])
        if length > self.emulator.max_body_bytes:
            raise ServingError(
                f"The body is {length} bytes (its Content-Length); this server accepts at "
                f"most {self.emulator.max_body_bytes} (max_body_bytes).",
                413,
            )
        return length

    def _read_body(self, length):
        try:
            data = self.rfile.read(length)
        except TimeoutError:
            self._unread_body = False  # the client stopped sending: nothing to wait for
            raise ServingError(
                f"The body did not arrive: no bytes for {self.timeout:g} s (read_timeout) "
                f"before the {length} bytes its Content-Length declared.",
                408,
            ) from None
        self._unread_body = False
        if len(data) < length:
            raise ServingError(
                f"The body ended after {len(data)} of the {length} bytes its Content-Length "
                "declared.",
                400,
            )
        return data

    def _answer(self, handle):
        try:
            status, payload = 200, handle(self.emulator._check_url(self.path))
        except ServingError as error:
            status, payload = error.status or 400, {"error": error.message}
        except Exception as error:  # a bug here should still answer, as TF Serving would
            status, payload = 500, {"error": f"{type(error).__name__}: {error}"}
        self._send_json(status, payload)

    def _send_json(self, status, payload):
        data = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def send_error(self, code, message=None, explain=None):
        """The standard library's refusals (bad request line, headers, method) as JSON."""
        try:
            text = message or HTTPStatus(code).phrase
        except ValueError:
            text = f"HTTP {code}"
        if explain:
            text = f"{text}: {explain}"
        self.close_connection = True
        self._send_json(code, {"error": text})

    def finish(self):
        super().finish()
        if self._unread_body:
            self._discard_input()

    def _discard_input(self):
        # The answer went out before the body was read (413, a bad Content-Length, a
        # wrong URL). Closing with unread input would make the kernel reset the
        # connection, and the client could lose the answer: say the answer is
        # complete, then read and drop what the client still sends, for at most
        # read_timeout seconds.
        try:
            self.connection.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + self.timeout
            buffer = bytearray(65536)
            while (left := deadline - time.monotonic()) > 0:
                self.connection.settimeout(left)
                if not self.connection.recv_into(buffer):
                    break
        except OSError:
            pass

    def log_message(self, format, *args):  # keep test output quiet
        pass
