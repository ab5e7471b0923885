import base64
import csv
import json
import subprocess
import sys
import textwrap
import urllib.request

import numpy as np
import pytest
import tensorflow as tf

import multimodal_tf as mtf
from multimodal_tf.serving.emulator import ServingEmulator
from multimodal_tf.serving.export import export_saved_model, read_labels
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
from tests.conftest import PROJECT_ROOT, image_bytes, write_manifest
from tests.models.test_classifier import LABELS, features, tiny_model

TEXTS = ["warm red fire", "cold blue ice", "", "blue snow and red hot"]
IMAGES = [
    image_bytes((220, 30, 30), format="JPEG"),
    image_bytes((30, 30, 220), format="PNG"),
    image_bytes((200, 60, 40), format="PNG"),
    image_bytes((40, 60, 200), format="JPEG"),
]
# Bytes whose standard base64 has "+" and "/" (URL-safe base64 would use "-" and "_").
AWKWARD = b"\xfb\xef\xff\x00" + bytes(range(256))


@pytest.fixture(scope="module")
def version_dir(tmp_path_factory):
    model = tiny_model()
    model.fit(features(model), LABELS, epochs=5, verbose=0)
    return export_saved_model(model, tmp_path_factory.mktemp("served") / "demo")


@pytest.fixture(scope="module")
def server(version_dir):
    with ServingEmulator(version_dir, model_name="demo") as server:
        yield server


def test_row_and_columnar_bodies_follow_tf_serving_json():
    row = row_body(["a", "b"], [b"\x89PNG", AWKWARD], signature_name="sig")
    assert row == {
        "signature_name": "sig",
        "instances": [
            {"text": "a", "image": {"b64": "iVBORw=="}},
            {"text": "b", "image": {"b64": base64.b64encode(AWKWARD).decode()}},
        ],
    }
    encoded = row["instances"][1]["image"]["b64"]
    assert "+" in encoded and "/" in encoded and "-" not in encoded and "_" not in encoded
    columnar = columnar_body(["a", "b"], [b"\x89PNG", AWKWARD])
    assert columnar == {
        "signature_name": "serving_default",
        "inputs": {"text": ["a", "b"], "image": [row["instances"][0]["image"], {"b64": encoded}]},
    }
    expected = {"text": ["a", "b"], "image": [b"\x89PNG", AWKWARD]}
    for body in (row, columnar):  # through real JSON text, both forms give the same columns
        assert decode_rest_body(json.dumps(body)) == expected
    with pytest.raises(ValueError, match="2 texts and 1 images"):
        row_body(["a", "b"], [b""])
    with pytest.raises(ValueError, match="images\\[0\\] must be encoded image bytes"):
        row_body(["a"], ["not bytes"])


@pytest.mark.parametrize(
    "body, message",
    [
        ({"instances": [{"text": "a"}]}, "Missing but required: {image}"),
        ({"inputs": {"text": ["a"], "image": [""], "x": [""]}}, "Sent extra: {x}"),
        ({"instances": [{"text": "a", "image": {"b64": "!!not base64"}}]}, "not valid base64"),
        ({"instances": [{"text": "a", "image": {"b64": "abc"}}]}, "not valid base64"),
        ({"instances": [{"text": 3, "image": ""}]}, "must be a string or"),
        ({"instances": [{"text": "a", "image": ""}, {"text": "b"}]}, "every instance names"),
        ({"instances": ["a"]}, "must be an object"),
        ({"instances": [], "inputs": {}}, "Only one of 'instances' or 'inputs'"),
        ({"signature_name": "serving_default"}, "Missing 'inputs' or 'instances' key"),
        ({"inputs": ["a"]}, "'inputs' must name each input"),
        ("{not json", "not JSON"),
    ],
)
def test_decode_rest_body_refuses_what_tf_serving_refuses(body, message):
    with pytest.raises(ServingError, match=message) as caught:
        decode_rest_body(body)
    assert caught.value.status == 400


def test_parse_response_reads_both_response_forms():
    names = ["warm", "cold"]
    row = {"predictions": [{"probabilities": [0.75, 0.25], "label": "warm"}]}
    columnar = {"outputs": {"probabilities": [[0.75, 0.25]], "label": ["warm"]}}
    expected = [Prediction("warm", {"warm": 0.75, "cold": 0.25})]
    assert parse_response(row, names) == parse_response(json.dumps(columnar), names) == expected
    assert parse_response(row)[0].probabilities == {0: 0.75, 1: 0.25}
    with pytest.raises(ServingError, match="Servable not found"):
        parse_response({"error": "Servable not found for request: Latest(x)"})
    with pytest.raises(ServingError, match="2 probabilities but 3 class names"):
        parse_response(row, ["a", "b", "c"])


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
    request = urllib.request.Request(
        f"{client.model_url}:predict",
        data=json.dumps(row_body(TEXTS, IMAGES)).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        answer = json.loads(response.read())
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


def test_a_bad_request_carries_the_signature_error_through_the_client(version_dir, server):
    signature = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
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
