"""`ServingEmulator` under load and under malformed or stalled requests.

Every client here is a loopback socket of this process: many at once, ones that
lie about their body's length, ones that stop sending, and bodies too large or
too deeply nested. The emulator should answer each with TF Serving's
`{"error": ...}` shape (or close a stalled connection), and keep serving.
"""

import http.client
import json
import socket
import threading
import time

import numpy as np
import pytest
import tensorflow as tf

from multimodal_tf.serving.emulator import ServingEmulator
from multimodal_tf.serving.export import export_saved_model
from multimodal_tf.serving.rest import RestClient, row_body
from tests.helpers import tiny_model
from tests.serving.test_rest import IMAGES, TEXTS

PATH = "/v1/models/demo:predict"
CLIENTS = 200
REQUESTS_PER_CLIENT = 3
READ_TIMEOUT = 0.5  # seconds; the strict emulator's, so stalled clients cost the test little
MAX_BODY = 4096  # bytes; the strict emulator's
# How long a raw client waits for an answer before calling the server stuck: the
# read timeout plus room for 2 busy cores.
PATIENCE = READ_TIMEOUT + 10


@pytest.fixture(scope="module")
def version_dir(tmp_path_factory):
    # Untrained: these tests compare the emulator with the signature, not with labels.
    return export_saved_model(tiny_model(), tmp_path_factory.mktemp("served") / "demo")


@pytest.fixture(scope="module")
def server(version_dir):
    """An emulator with its default settings."""
    with ServingEmulator(version_dir, model_name="demo") as server:
        yield server


@pytest.fixture(scope="module")
def strict_server(version_dir):
    """An emulator with a short read timeout and a small body limit."""
    with ServingEmulator(
        version_dir, model_name="demo", read_timeout=READ_TIMEOUT, max_body_bytes=MAX_BODY
    ) as server:
        yield server


def _port(server):
    return int(server.url.rsplit(":", 1)[1])


def _exchange(server, data, patience=PATIENCE):
    """Sends raw bytes and reads until the server closes: (status or None, JSON or None, s).

    The status is None when the server closed the connection without an answer.
    """
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", _port(server)), timeout=patience) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except TimeoutError:
            pytest.fail(f"no answer and no close within {patience} s to {data[:80]!r}")
    elapsed = time.monotonic() - started
    answer = b"".join(chunks)
    if not answer:
        return None, None, elapsed
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body), elapsed


def _request(body, content_length=None, extra_headers=b""):
    body = body.encode() if isinstance(body, str) else body
    length = str(len(body)) if content_length is None else content_length
    return (
        (
            f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\n"
        ).encode()
        + extra_headers
        + b"\r\n"
        + body
    )


def _assert_still_serving(server):
    predictions = RestClient(server.url, "demo", timeout=PATIENCE).predict(TEXTS[:1], IMAGES[:1])
    assert len(predictions) == 1


def _handler_threads():
    return [t for t in threading.enumerate() if "process_request_thread" in t.name]


def test_200_concurrent_clients_all_get_the_signatures_answer(version_dir, server):
    signature = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    expected = [
        signature(text=tf.constant([text]), image=tf.constant([image]))["probabilities"].numpy()[0]
        for text, image in zip(TEXTS, IMAGES, strict=True)
    ]
    bodies = [json.dumps(row_body([t], [i])) for t, i in zip(TEXTS, IMAGES, strict=True)]
    start = threading.Barrier(CLIENTS)
    failures, answers = [], []

    def client(index):
        sample = index % len(bodies)
        connection = http.client.HTTPConnection("127.0.0.1", _port(server), timeout=60)
        try:
            start.wait()
            for _ in range(REQUESTS_PER_CLIENT):
                connection.request(
                    "POST", PATH, bodies[sample], {"Content-Type": "application/json"}
                )
                response = connection.getresponse()
                answers.append((sample, response.status, json.loads(response.read())))
        except Exception as error:  # recorded, so every client's failure is reported
            failures.append(f"client {index}: {type(error).__name__}: {error}")
        finally:
            connection.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(CLIENTS)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    elapsed = time.monotonic() - started
    resets = [f for f in failures if "Reset" in f or "RemoteDisconnected" in f or "Pipe" in f]
    assert not failures, f"{len(failures)} failures ({len(resets)} resets), e.g. {failures[:3]}"
    assert len(answers) == CLIENTS * REQUESTS_PER_CLIENT, f"{len(answers)} answers in {elapsed} s"
    for sample, status, answer in answers:
        assert status == 200, answer
        np.testing.assert_allclose(
            answer["predictions"][0]["probabilities"], expected[sample], atol=1e-6
        )


@pytest.mark.parametrize(
    "data, statuses",
    [
        (_request("{}", content_length="-1"), {400}),
        (_request("{}", content_length="abc"), {400}),
        (_request("{}", content_length=""), {400}),
        (_request('{"instances": [', content_length="1000"), {400, 408}),  # 15 of 1000 bytes
        (b"POST /v1/models/demo:predict HTTP/1.1\r\nHost: 12", {None}),  # stops in the headers
        (b"", {None}),  # connects and sends nothing
    ],
    ids=["length-negative", "length-abc", "length-empty", "short-body", "stalled-headers", "idle"],
)
def test_a_bad_or_stalled_request_is_answered_or_closed_within_the_timeout(
    strict_server, data, statuses
):
    status, answer, elapsed = _exchange(strict_server, data)
    assert status in statuses, (status, answer)
    if status is not None:
        assert set(answer) == {"error"} and answer["error"]
    if status == 400:
        assert "Content-Length" in answer["error"]
    assert elapsed < PATIENCE
    # The handler thread is freed, not parked on a read that never ends.
    deadline = time.monotonic() + PATIENCE
    while _handler_threads() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _handler_threads(), "a handler thread is still running after the timeout"
    _assert_still_serving(strict_server)


@pytest.mark.parametrize(
    "body, message",
    [
        (
            json.dumps({**row_body(TEXTS[:1], IMAGES[:1]), "signature_name": ["serving_default"]}),
            "'signature_name' key must be a string value",
        ),
        (
            json.dumps({**row_body(TEXTS[:1], IMAGES[:1]), "signature_name": {"a": 1}}),
            "'signature_name' key must be a string value",
        ),
        ("[" * 100_000 + "]" * 100_000, "nests arrays and objects too deeply"),
        (
            '{"instances": ' + "[" * 50_000 + "]" * 50_000 + "}",
            "nests arrays and objects too deeply",
        ),
    ],
    ids=["signature-list", "signature-object", "nested-100000", "nested-in-instances"],
)
def test_a_malformed_body_answers_400_with_a_json_error(server, body, message):
    status, answer, _ = _exchange(server, _request(body))
    assert status == 400, answer
    assert set(answer) == {"error"}
    assert message in answer["error"]
    _assert_still_serving(server)


def test_a_body_over_the_limit_answers_413_without_being_read(strict_server):
    # Only the headers are sent: the answer cannot wait for 10**12 bytes.
    status, answer, elapsed = _exchange(strict_server, _request(b"", content_length=str(10**12)))
    assert status == 413, answer
    assert set(answer) == {"error"}
    assert f"{10**12}" in answer["error"] and f"{MAX_BODY}" in answer["error"]
    assert elapsed < READ_TIMEOUT + 5
    # A body that is really there and too large: the answer still arrives whole.
    body = json.dumps(row_body(["x" * MAX_BODY], IMAGES[:1]))
    status, answer, _ = _exchange(strict_server, _request(body))
    assert status == 413, answer
    assert f"{len(body)}" in answer["error"] and f"{MAX_BODY}" in answer["error"]
    _assert_still_serving(strict_server)
