import base64
import csv
import json
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request

import numpy as np
import pytest
import tensorflow as tf

import multimodal_tf as mtf
from multimodal_tf.serving.emulator import ServingEmulator
from multimodal_tf.serving.export import read_labels
from multimodal_tf.serving.predict import predict_manifest
from multimodal_tf.serving.rest import (
    Prediction,
    RestClient,
    ServingError,
    columnar_body,
    decode_rest_body,
    parse_response,
    row_body,
)
from tests.conftest import PROJECT_ROOT, write_manifest
from tests.helpers import IMAGES, tiny_export

TEXTS = ["warm red fire", "cold blue ice", "", "blue snow and red hot"]
# Bytes whose standard base64 has "+" and "/" (URL-safe base64 would use "-" and "_").
AWKWARD = b"\xfb\xef\xff\x00" + bytes(range(256))


@pytest.fixture(scope="module")
def version_dir(tmp_path_factory):
    return tiny_export(tmp_path_factory) / "demo" / "1"


@pytest.fixture(scope="module")
def server(version_dir):
    with ServingEmulator(version_dir, model_name="demo") as server:
        yield server


@pytest.fixture(scope="module")
def signature(version_dir):
    """The exported `serving_default` signature, called directly (no JSON)."""
    return tf.saved_model.load(str(version_dir)).signatures["serving_default"]


def post_json_text(server, text):
    """POSTs JSON text to the emulator's `demo:predict`: (HTTP status, parsed answer)."""
    request = urllib.request.Request(
        f"{server.url}/v1/models/demo:predict",
        data=text.encode("utf-8"),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


# Request and response bodies as TF Serving's REST API documents them
# (tensorflow_serving/g3doc/api_rest.md, "Predict API" and "Encoding binary values"),
# written out as JSON text: binary values are {"b64": <standard Base64>}. "aGVsbG8=" is
# b"hello"; "+/8=" is b"\xfb\xff" (URL-safe Base64 would write it "-_8=").
HELLO, FB_FF = b"hello", b"\xfb\xff"
ROW_REQUEST = """
{
  "signature_name": "serving_default",
  "instances": [
    {"text": "a red sun", "image": {"b64": "aGVsbG8="}},
    {"text": "", "image": {"b64": "+/8="}}
  ]
}
"""
COLUMNAR_REQUEST = """
{
  "signature_name": "serving_default",
  "inputs": {
    "text": ["a red sun", ""],
    "image": [{"b64": "aGVsbG8="}, {"b64": "+/8="}]
  }
}
"""
ROW_RESPONSE = """
{
  "predictions": [
    {"probabilities": [0.25, 0.75], "label": "warm"},
    {"probabilities": [0.875, 0.125], "label": "cold"}
  ]
}
"""
COLUMNAR_RESPONSE = """
{
  "outputs": {
    "probabilities": [[0.25, 0.75], [0.875, 0.125]],
    "label": ["warm", "cold"]
  }
}
"""
ERROR_RESPONSE = '{"error": "Servable not found for request: Latest(demo)"}'
# A 1 x 1 red PNG in standard Base64, and predict bodies that send it to the exported
# signature (JSON text, split over source lines only where the Base64 is long).
RED_PIXEL_B64 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR42mO4IycHAALyARlNudhnAAAAAElFTkSuQmCC"
)
SERVED_ROW_REQUEST = (
    '{"instances": ['
    '{"text": "warm red fire", "image": {"b64": "' + RED_PIXEL_B64 + '"}}, '
    '{"text": "cold blue ice", "image": {"b64": "' + RED_PIXEL_B64 + '"}}]}'
)
SERVED_COLUMNAR_REQUEST = (
    '{"signature_name": "serving_default", "inputs": {'
    '"text": ["warm red fire", "cold blue ice"], '
    '"image": [{"b64": "' + RED_PIXEL_B64 + '"}, {"b64": "' + RED_PIXEL_B64 + '"}]}}'
)


def test_request_bodies_are_tf_serving_documented_json():
    texts, images = ["a red sun", ""], [HELLO, FB_FF]
    # Compared as parsed JSON: key order and spacing are free, keys and values are not.
    assert json.loads(json.dumps(row_body(texts, images))) == json.loads(ROW_REQUEST)
    assert json.loads(json.dumps(columnar_body(texts, images))) == json.loads(COLUMNAR_REQUEST)
    named = json.loads(json.dumps(row_body(texts, images, signature_name="sig")))
    assert named == {**json.loads(ROW_REQUEST), "signature_name": "sig"}
    with pytest.raises(ValueError, match="2 texts and 1 images"):
        row_body(["a", "b"], [b""])
    with pytest.raises(ValueError, match="images\\[0\\] must be encoded image bytes"):
        row_body(["a"], ["not bytes"])


def test_decode_rest_body_reads_tf_serving_documented_json():
    expected = {"text": ["a red sun", ""], "image": [HELLO, FB_FF]}
    assert decode_rest_body(ROW_REQUEST) == decode_rest_body(COLUMNAR_REQUEST) == expected
    # Bytes whose Base64 has "+" and "/" come back whole through the client's own JSON.
    for make_body in (row_body, columnar_body):
        body = json.dumps(make_body(["a", "b"], [b"\x89PNG", AWKWARD]))
        assert decode_rest_body(body) == {"text": ["a", "b"], "image": [b"\x89PNG", AWKWARD]}


# Bodies TF Serving refuses with a 400, and the text the refusal holds.
REFUSED = [
    ({"instances": [{"text": "a"}]}, "Missing but required: {image}"),
    ({"inputs": {"text": ["a"], "image": [""], "x": [""]}}, "Sent extra: {x}"),
    ({"instances": [{"text": "a", "image": {"b64": "!!not base64"}}]}, "not valid base64"),
    ({"instances": [{"text": "a", "image": {"b64": "abc"}}]}, "not valid base64"),
    ({"instances": [{"text": "a", "image": {"b64": "-_8="}}]}, "not valid base64"),
    ({"instances": [{"text": "a", "image": {"b64x": "aGVsbG8="}}]}, "must be a string or"),
    ({"instances": [{"text": "a", "image": {"B64": "aGVsbG8="}}]}, "must be a string or"),
    ({"instances": [{"text": "a", "image": {"b64": "aGVsbG8=", "x": 1}}]}, "must be a string or"),
    ({"instances": [{"text": "a", "image": {"b64": 3}}]}, "must be a string or"),
    ({"instances": [{"text": 3, "image": ""}]}, "must be a string or"),
    ({"instances": [{"text": "a", "image": ""}, {"text": "b"}]}, "every instance names"),
    ({"instances": ["a"]}, "must be an object"),
    ({"instances": []}, "'instances' is empty"),
    ({"instances": {"text": "a", "image": ""}}, "instances must be a list"),
    ({"inputs": {"text": "a", "image": [""]}}, "inputs\\['text'\\] must be a list"),
    ({"instances": [], "inputs": {}}, "Only one of 'instances' or 'inputs'"),
    ({"signature_name": "serving_default"}, "Missing 'inputs' or 'instances' key"),
    ({"inputs": ["a"]}, "'inputs' must name each input"),
]


@pytest.mark.parametrize("body, message", REFUSED + [("{not json", "not JSON")])
def test_decode_rest_body_refuses_what_tf_serving_refuses(body, message):
    with pytest.raises(ServingError, match=message) as caught:
        decode_rest_body(body)
    assert caught.value.status == 400


@pytest.mark.parametrize("body, message", REFUSED)
def test_emulator_refuses_what_tf_serving_refuses(server, body, message):
    with pytest.raises(ServingError, match=message) as caught:
        server.predict(body)
    assert caught.value.status == 400


def test_parse_response_reads_tf_serving_documented_responses():
    names = ["cold", "warm"]
    expected = [
        Prediction("warm", {"cold": 0.25, "warm": 0.75}),
        Prediction("cold", {"cold": 0.875, "warm": 0.125}),
    ]
    assert parse_response(ROW_RESPONSE, names) == expected
    assert parse_response(COLUMNAR_RESPONSE.encode(), names) == expected
    assert parse_response(json.loads(ROW_RESPONSE), names) == expected
    assert [p.probabilities for p in parse_response(ROW_RESPONSE)] == [
        {0: 0.25, 1: 0.75},
        {0: 0.875, 1: 0.125},
    ]
    with pytest.raises(ServingError, match="Servable not found for request: Latest\\(demo\\)"):
        parse_response(ERROR_RESPONSE)
    with pytest.raises(ServingError, match="2 probabilities but 3 class names"):
        parse_response(ROW_RESPONSE, ["a", "b", "c"])


def test_rest_module_imports_without_tensorflow():
    script = textwrap.dedent(
        """
        import json, sys
        for name in ("tensorflow", "keras", "numpy"):
            sys.modules[name] = None  # importing it now raises ImportError
        import multimodal_tf
        from multimodal_tf.serving.rest import RestClient, decode_rest_body, row_body
        body = row_body(["a red sun"], [b"\\x89PNG"])
        assert decode_rest_body(json.dumps(body))["image"] == [b"\\x89PNG"]
        print(json.dumps(body))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["instances"][0]["image"] == {"b64": "iVBORw=="}


def test_package_names_load_lazily_and_all_still_resolve():
    import importlib

    for name in mtf.__all__:
        value = getattr(mtf, name)
        assert value is getattr(importlib.import_module(mtf._EXPORTS[name]), name)
    assert set(mtf.__all__) <= set(dir(mtf))
    assert mtf.data.manifest.read_manifest is mtf.read_manifest  # subpackages as attributes
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        mtf.nope  # noqa: B018


def test_emulator_and_rest_client_match_predict_manifest(version_dir, server, tmp_path):
    (tmp_path / "images").mkdir()
    rows = []
    for index, (text, image) in enumerate(zip(TEXTS, IMAGES, strict=True)):
        suffix = "png" if image.startswith(b"\x89PNG") else "jpg"
        name = f"images/{index}.{suffix}"
        (tmp_path / name).write_bytes(image)
        rows.append({"id": str(index), "text": text, "image": name})
    manifest = write_manifest(tmp_path, rows)
    predict_manifest(version_dir, manifest, tmp_path / "out.csv", allow_missing=True)
    with (tmp_path / "out.csv").open(encoding="utf-8") as handle:
        written = list(csv.DictReader(handle))
    class_names = read_labels(version_dir)

    client = RestClient(server.url, "demo", class_names=class_names)
    status, answer = post_json_text(server, json.dumps(row_body(TEXTS, IMAGES)))
    assert status == 200, answer
    assert set(answer) == {"predictions"}  # a row request gets TF Serving's row answer
    by_hand = parse_response(answer, class_names)
    assert client.predict(TEXTS, IMAGES) == by_hand

    assert [p.label for p in by_hand] == [row["predicted_label"] for row in written]
    for prediction, row in zip(by_hand, written, strict=True):
        for name in class_names:
            assert prediction.probabilities[name] == pytest.approx(
                float(row[f"probability_{name}"]), abs=1e-6
            )
    columnar = client.predict(TEXTS, IMAGES, columnar=True)
    assert [p.label for p in columnar] == [p.label for p in by_hand]
    for a, b in zip(columnar, by_hand, strict=True):
        np.testing.assert_allclose(list(a.probabilities.values()), list(b.probabilities.values()))
    pinned = RestClient(server.url, "demo", version=int(version_dir.name))
    assert [p.label for p in pinned.predict(TEXTS[:1], IMAGES[:1])] == [by_hand[0].label]


def test_emulator_answers_tf_serving_documented_json(server, signature):
    image = base64.b64decode(RED_PIXEL_B64)
    direct = signature(
        text=tf.constant(["warm red fire", "cold blue ice"]), image=tf.constant([image, image])
    )
    probabilities = direct["probabilities"].numpy()
    labels = [label.decode() for label in direct["label"].numpy()]

    status, row = post_json_text(server, SERVED_ROW_REQUEST)
    assert status == 200 and set(row) == {"predictions"}, row
    assert [p["label"] for p in row["predictions"]] == labels
    np.testing.assert_allclose(
        [p["probabilities"] for p in row["predictions"]], probabilities, atol=1e-6
    )
    status, columnar = post_json_text(server, SERVED_COLUMNAR_REQUEST)
    assert status == 200 and set(columnar) == {"outputs"}, columnar
    assert columnar["outputs"]["label"] == labels
    np.testing.assert_allclose(columnar["outputs"]["probabilities"], probabilities, atol=1e-6)
    # Binary data under any key but "b64" is not an image: a 400 with TF Serving's error body.
    status, refused = post_json_text(server, SERVED_ROW_REQUEST.replace('"b64"', '"b64x"'))
    assert status == 400 and set(refused) == {"error"}, refused
    assert 'must be a string or {"b64": <base64>}' in refused["error"]


def test_a_bad_request_carries_the_signature_error_through_the_client(server, signature):
    with pytest.raises(tf.errors.InvalidArgumentError) as direct:
        signature(text=tf.constant(["a"]), image=tf.constant([b"not an image"]))
    with pytest.raises(ServingError) as caught:
        RestClient(server.url, "demo").predict(["a"], [b"not an image"])
    assert caught.value.status == 400
    # TF Serving's text: the op's message, without eager Python's header and "[Op:...]".
    assert caught.value.message and caught.value.message in direct.value.message
    assert "[Op:" not in caught.value.message
    assert caught.value.message in str(caught.value)


def test_emulator_status_metadata_and_unknown_servables(version_dir, server):
    client = RestClient(server.url, "demo")
    status = client.status()["model_version_status"]
    assert status == [
        {
            "version": version_dir.name,
            "state": "AVAILABLE",
            "status": {"error_code": "OK", "error_message": ""},
        }
    ]
    signature = client.metadata()["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert set(signature["inputs"]) == {"text", "image"}
    assert signature["inputs"]["image"]["dtype"] == "DT_STRING"
    assert set(signature["outputs"]) == {"probabilities", "label"}
    for wrong in (RestClient(server.url, "other"), RestClient(server.url, "demo", version=99)):
        with pytest.raises(ServingError, match="Servable not found") as caught:
            wrong.predict(["a"], [IMAGES[0]])
        assert caught.value.status == 404
    with pytest.raises(ServingError, match="Could not reach"):
        RestClient("http://127.0.0.1:9", timeout=2).status()
