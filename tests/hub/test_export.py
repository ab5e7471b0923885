"""A hub text model exported for TF Serving: served like Keras, and op-checked against 2.19."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from tests.hub.conftest import PARITY_TEXTS, require_hub_extra

require_hub_extra()
# Every test here reads the trained model's exports (the `trained` and `exports` fixtures).
pytestmark = pytest.mark.slow

from multimodal_tf.serving import op_check  # noqa: E402
from multimodal_tf.serving.op_check import UnsupportedOpsError  # noqa: E402


def serve_as_tf_serving(tmp_path, release, load, texts):
    """Loads SavedModels in a new process that has what a TF Serving `release` has.

    The process runs isolated (`python -I`: no current folder, no
    PYTHONPATH, no user site) and makes importing multimodal_tf, keras,
    keras_hub and tensorflow_text raise; it registers only the TF Text op
    libraries that the release's model server links (`serving_op_libraries`).
    Each folder of `load` either serves `texts` (its probabilities come back)
    or fails to load (its error comes back).
    """
    libraries = [str(path) for path in op_check.serving_op_libraries(release)]
    script = textwrap.dedent(
        f"""
        import json, sys
        for name in ("multimodal_tf", "keras", "keras_hub", "tensorflow_text"):
            sys.modules[name] = None  # importing it now raises ImportError
        import tensorflow as tf
        try:
            import multimodal_tf
            raise SystemExit("multimodal_tf is importable")
        except ImportError:
            pass
        for library in {libraries!r}:
            tf.load_op_library(library)
        results = {{}}
        for name, folder in {load!r}.items():
            try:
                served = tf.saved_model.load(folder).signatures["serving_default"]
            except Exception as error:
                results[name] = {{"error": str(error)}}
                continue
            out = served(text=tf.constant({list(texts)!r}))
            results[name] = {{"probabilities": out["probabilities"].numpy().tolist()}}
        print(json.dumps(results))
        """
    )
    done = subprocess.run(
        [sys.executable, "-I", "-c", script], capture_output=True, text=True, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_tf_serving_2_19_serves_raw_text_like_keras_and_refuses_round_robin(
    trained, exports, tmp_path
):
    """One process with TF Serving 2.19's ops: the waterfall export answers as Keras does,
    the round-robin export (same weights) does not even load."""
    expected = trained["model"](tf.constant(PARITY_TEXTS)).numpy()
    assert np.abs(expected - expected[:1]).max() > 1e-3  # a graph ignoring its input would fail
    results = serve_as_tf_serving(
        tmp_path,
        "2.19",
        {name: str(exports[name]) for name in ("waterfall", "round_robin")},
        PARITY_TEXTS,
    )
    np.testing.assert_allclose(results["waterfall"]["probabilities"], expected, atol=1e-5)
    assert "Op type not registered 'TFText>RoundRobinTrim'" in results["round_robin"]["error"]
    # The Keras twin computes the same probabilities: only the truncation op differs.
    twin = exports["twin"](tf.constant(PARITY_TEXTS)).numpy()
    np.testing.assert_allclose(twin, expected, atol=1e-6)


def test_op_check_passes_the_waterfall_export(exports):
    check = op_check.assert_servable(exports["waterfall"], release="tensorflow/serving:2.19.1")
    assert check.ok and not check.unsupported and check.tf_text_version == "2.12.1"
    # Tokenization's TF Text ops, all inside graph functions, were found and are linked in 2.19.
    assert {"FastWordpieceTokenizeWithOffsets", "RegexSplitWithOffsets"} <= check.tf_text
    assert "<graph>" not in check.ops["FastWordpieceTokenizeWithOffsets"]
    assert {"StatefulPartitionedCall", "MatMul"} <= check.core
    assert set(check.ops) == check.core | check.tf_text
    assert op_check.main([str(exports["waterfall"])]) == 0


def test_op_check_fails_the_round_robin_export(exports, capsys):
    check = op_check.check_ops(exports["round_robin"], release="2.19")
    assert not check.ok and check.unsupported == {"TFText>RoundRobinTrim"}
    with pytest.raises(UnsupportedOpsError) as raised:
        op_check.assert_servable(exports["round_robin"])  # the default release, 2.19
    message = str(raised.value)
    assert "TF Serving 2.19" in message and "TFText>RoundRobinTrim" in message
    assert "truncate='waterfall'" in message and "TF Serving 2.20 links it" in message
    assert op_check.main([str(exports["round_robin"])]) == 1
    assert "TFText>RoundRobinTrim" in capsys.readouterr().err
    # TF Serving 2.20 links TF Text 2.20.0, whose ops_lib has the trimmer ops.
    assert op_check.check_ops(exports["round_robin"], release="2.20.0").ok
    assert op_check.main([str(exports["round_robin"]), "--release", "2.20"]) == 0
