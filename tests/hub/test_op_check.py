"""op_check: a SavedModel's ops (graph functions included) vs a TF Serving release's."""

import pytest
import tensorflow as tf

from multimodal_tf.serving import op_check
from multimodal_tf.serving.op_check import (
    ALL_TF_TEXT_OPS,
    SERVING_TF_TEXT,
    TF_TEXT_OPS,
    UnsupportedOpsError,
)
from tests.hub.conftest import require_hub_extra


def test_releases_and_their_tf_text_ops():
    assert SERVING_TF_TEXT["2.12"] == SERVING_TF_TEXT["2.19"] == "2.12.1"
    assert SERVING_TF_TEXT["2.20"] == "2.20.0"
    assert TF_TEXT_OPS["2.12.1"] < TF_TEXT_OPS["2.20.0"]
    assert TF_TEXT_OPS["2.20.0"] - TF_TEXT_OPS["2.12.1"] == {
        "TFText>RoundRobinTrim",
        "TFText>RoundRobinGenerateMasks",
        "TFText>Utf8Binarize",
    }
    assert {"FastWordpieceTokenizeWithOffsets", "CaseFoldUTF8"} <= TF_TEXT_OPS["2.12.1"]


@pytest.mark.parametrize(
    ("release", "parsed"),
    [
        ("2.19", "2.19"),
        ("2.19.1", "2.19"),
        ("tensorflow/serving:2.18.1-gpu", "2.18"),
        ("2.20.0", "2.20"),
    ],
)
def test_release_names(release, parsed):
    assert op_check.parse_release(release) == parsed


@pytest.mark.parametrize("release", ["latest", "tensorflow/serving", "2.11.1", "3.0"])
def test_unknown_releases_are_refused(release):
    with pytest.raises(UnsupportedOpsError, match="knows 2.12, .*2.19, 2.20"):
        op_check.parse_release(release)


def test_core_ops_never_include_tf_text_ops():
    """Even once tensorflow_text has registered its ops in this process."""
    require_hub_extra()
    from tensorflow.python.framework import op_def_registry

    assert op_def_registry.get("TFText>RoundRobinTrim") is not None  # registered here...
    core = op_check.core_op_names()
    assert not core & ALL_TF_TEXT_OPS  # ...and still not core
    assert {"StringSplitV2", "StatefulPartitionedCall", "RestoreV2", "MatMul"} <= core


def test_tables_match_the_installed_tensorflow_text():
    """Each library's ops in the table are those its installed `.so` registers."""
    require_hub_extra()
    from tensorflow.core.framework import op_def_pb2
    from tensorflow.python.client import pywrap_tf_session

    libraries = op_check.serving_op_libraries("2.20")
    assert len(libraries) >= 20
    for library in libraries:
        handle = pywrap_tf_session.TF_LoadLibrary(str(library))
        op_list = op_def_pb2.OpList()
        op_list.ParseFromString(pywrap_tf_session.TF_GetOpList(handle))
        pywrap_tf_session.TF_DeleteLibraryHandle(handle)
        name = library.name[1:-3]
        assert {op.name for op in op_list.op} == set(op_check._TF_TEXT_LIBRARIES[name]), name
    names_2_19 = {library.name for library in op_check.serving_op_libraries("2.19")}
    assert "_trimmer_ops.so" not in names_2_19 and "_fast_wordpiece_tokenizer.so" in names_2_19


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    """A SavedModel whose string ops sit in a nested graph function."""

    class Module(tf.Module):
        @tf.function
        def clean(self, text):
            return tf.strings.regex_replace(text, "[0-9]+", "#")

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def serve(self, text):
            return {"clean": tf.strings.lower(self.clean(text))}

    folder = tmp_path_factory.mktemp("string_model")
    module = Module()
    tf.saved_model.save(module, str(folder), signatures={"serving_default": module.serve})
    return folder


def test_ops_of_nested_functions_are_listed(saved_model):
    ops = op_check.list_ops(saved_model)
    assert "StaticRegexReplace" in ops and "StringLower" in ops
    assert "<graph>" not in ops["StaticRegexReplace"]
    assert not any(op.startswith("__inference") for op in ops)  # function calls are not ops
    assert op_check.check_ops(saved_model).ok


def test_an_unknown_custom_op_is_unsupported(saved_model, tmp_path):
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((saved_model / "saved_model.pb").read_bytes())
    function = proto.meta_graphs[0].graph_def.library.function[0]
    function.node_def.add(name="custom", op="Addons>MyCustomOp")
    (tmp_path / "saved_model.pb").write_bytes(proto.SerializeToString())
    check = op_check.check_ops(tmp_path)
    assert check.unsupported == {"Addons>MyCustomOp"}
    assert "neither a core TensorFlow op nor a TF Text op" in check.describe()
    assert function.signature.name in check.describe()


def test_a_folder_without_a_saved_model(tmp_path):
    with pytest.raises(UnsupportedOpsError, match="no saved_model.pb"):
        op_check.check_ops(tmp_path)
    assert op_check.main([str(tmp_path)]) == 2
