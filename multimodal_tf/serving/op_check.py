"""Can a TF Serving release run this SavedModel? Its ops vs core TensorFlow + linked TF Text ops.

`tensorflow_model_server` runs the ops of the TensorFlow it was built with
plus the custom ops linked into it: TensorFlow Text's `ops_lib` (and
TensorFlow Decision Forests' inference ops, which no model here uses). A
SavedModel with any other op loads with `Op type not registered`. TF Serving
pins one TF Text version per release (`tensorflow_serving/workspace.bzl`,
`org_tensorflow_text`), and TF Text's `ops_lib` (`tensorflow_text/BUILD`)
names the op libraries linked in:

- TF Serving 2.12 to 2.19 link TF Text 2.12.1, whose `ops_lib` lacks the
  `trimmer_ops` (`TFText>RoundRobinTrim`, `TFText>RoundRobinGenerateMasks`;
  linked from TF Text 2.13 on) and `utf8_binarize_op` (`TFText>Utf8Binarize`).
- TF Serving 2.20 links TF Text 2.20.0, which has them all.

So a model that truncates with `RoundRobinTrimmer` (keras-hub's
`MultiSegmentPacker(truncate="round_robin")`, its default) trains and serves
in Python with tensorflow-text >= 2.13 and fails to load in TF Serving 2.19.

The README's Docker command runs the untagged `tensorflow/serving` image:
`latest`, which is 2.20.0 once pulled after its release and stays 2.19.x on a
machine that pulled it before. `DEFAULT_RELEASE` is 2.19: its TF Text ops are
a subset of 2.20's, so a model that passes runs on either.

Core ops are those of the installed TensorFlow's `tf.raw_ops` (generated
from TensorFlow's own op registry when TensorFlow is built): importing
`tensorflow_text` registers its ops in the process, but never adds them
there. Ops added to TensorFlow after the serving release's TensorFlow are not
caught (export with the TensorFlow of the serving release to be sure), and
an op's attributes are not compared across versions.
"""

import argparse
import functools
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from multimodal_tf.errors import MultimodalTFError

# TF Text's `ops_lib` op libraries, each with the ops it registers (REGISTER_OP /
# REGISTER_TF_OP_SHIM kOpName in tensorflow_text/core at the tags below).
_TF_TEXT_LIBRARIES = {
    "boise_offset_converter": ("TFText>BoiseTagsToOffsets", "TFText>OffsetsToBoiseTags"),
    "byte_splitter": ("TFText>ByteSplitByOffsets", "TFText>ByteSplitWithOffsets"),
    "constrained_sequence_op": ("ConstrainedSequence",),
    "fast_bert_normalizer": ("FastBertNormalize",),
    "fast_sentencepiece_tokenizer": (
        "TFText>FastSentencepieceDetokenize",
        "TFText>FastSentencepieceTokenize",
    ),
    "fast_wordpiece_tokenizer": (
        "FastWordpieceTokenizeWithOffsets",
        "TFText>FastWordpieceDetokenize",
    ),
    "mst_ops": ("MaxSpanningTree",),
    "ngrams_op": ("TFText>NgramsStringJoin",),
    "normalize_ops": (
        "CaseFoldUTF8",
        "FindSourceOffsets",
        "NormalizeUTF8",
        "NormalizeUTF8WithOffsetsMap",
    ),
    "phrase_tokenizer": ("PhraseTokenize", "TFText>PhraseDetokenize"),
    "regex_split_ops": ("RegexSplitWithOffsets",),
    "sentence_breaking_ops": ("SentenceFragments",),
    "sentencepiece_tokenizer": (
        "SentencepieceDetokenizeOp",
        "SentencepieceIdToStringOp",
        "SentencepieceOp",
        "SentencepieceStringToIdOp",
        "SentencepieceTokenizeOp",
        "SentencepieceTokenizeWithOffsetsOp",
        "SentencepieceVocabSizeOp",
    ),
    "split_merge_from_logits_tokenizer": ("TokenizerFromLogits",),
    "split_merge_tokenizer": ("SplitMergeTokenizeWithOffsets",),
    "state_based_sentence_breaker_op": ("SentenceFragmentsV2",),
    "text_similarity_metric_ops": ("RougeL",),
    "trimmer_ops": ("TFText>RoundRobinGenerateMasks", "TFText>RoundRobinTrim"),
    "unicode_script_tokenizer": ("UnicodeScriptTokenizeWithOffsets",),
    "utf8_binarize_op": ("TFText>Utf8Binarize",),
    "whitespace_tokenizer": ("WhitespaceTokenizeWithOffsets",),
    "whitespace_tokenizer_v2": ("TFText>WhitespaceTokenizeWithOffsetsV2",),
    "wordpiece_tokenizer": ("WordpieceTokenizeWithOffsets",),
}
# `ops_lib`'s deps at each TF Text tag that a TF Serving release links.
_TF_TEXT_OPS_LIB = {
    "2.12.1": tuple(
        name for name in _TF_TEXT_LIBRARIES if name not in ("trimmer_ops", "utf8_binarize_op")
    ),
    "2.20.0": tuple(_TF_TEXT_LIBRARIES),
}
TF_TEXT_OPS = {
    version: frozenset(op for name in libraries for op in _TF_TEXT_LIBRARIES[name])
    for version, libraries in _TF_TEXT_OPS_LIB.items()
}
"""TF Text version -> the ops its `ops_lib` links into a model server."""
ALL_TF_TEXT_OPS = frozenset(op for ops in _TF_TEXT_LIBRARIES.values() for op in ops)
# TF Serving release (major.minor) -> the TF Text its model server links.
SERVING_TF_TEXT = {f"2.{minor}": "2.12.1" for minor in range(12, 20)} | {"2.20": "2.20.0"}
DEFAULT_RELEASE = "2.19"
# Where an op that a release lacks usually comes from, and what to do instead.
HINTS = {
    "TFText>RoundRobinTrim": "round-robin truncation (keras-hub's MultiSegmentPacker "
    "default, tf_text.RoundRobinTrimmer): use truncate='waterfall' (HubTextEncoder's default; "
    "one text keeps the same tokens)",
    "TFText>RoundRobinGenerateMasks": "tf_text.RoundRobinTrimmer.generate_mask: use "
    "tf_text.WaterfallTrimmer",
    "TFText>Utf8Binarize": "tf_text.utf8_binarize",
}


class UnsupportedOpsError(MultimodalTFError):
    """A SavedModel uses ops that the TF Serving release's model server does not have."""


@dataclass
class OpCheck:
    """What `check_ops` found: every op of the graph, split by where the model server gets it.

    Attributes:
        release: str. The TF Serving release checked against (`"2.19"`).
        tf_text_version: str. The TF Text version that release links.
        ops: dict. Op name -> sorted names of the graph functions using it
            (`"<graph>"` for the top-level graph).
        core: set of str. Core TensorFlow ops.
        tf_text: set of str. TF Text ops the release links.
        unsupported: set of str. Every other op: the model server cannot run them.
    """

    release: str
    tf_text_version: str
    ops: dict = field(default_factory=dict)
    core: set = field(default_factory=set)
    tf_text: set = field(default_factory=set)
    unsupported: set = field(default_factory=set)

    @property
    def ok(self):
        return not self.unsupported

    def describe(self):
        """A few lines for a person: the verdict, then each unsupported op and where it is."""
        head = (
            f"TF Serving {self.release} (TF Text {self.tf_text_version}): {len(self.ops)} ops, "
            f"{len(self.core)} core TensorFlow, {len(self.tf_text)} TF Text"
        )
        if self.ok:
            return head + "; all supported."
        lines = [head + f"; {len(self.unsupported)} not supported:"]
        for op in sorted(self.unsupported):
            where = ", ".join(self.ops[op][:3]) + (", ..." if len(self.ops[op]) > 3 else "")
            lines.append(f"  {op} (in {where}): {_why(op, self.release, self.tf_text_version)}")
        return "\n".join(lines)


def parse_release(release):
    """`"2.19"`, `"2.19.1"`, `"tensorflow/serving:2.19.1-gpu"` -> `"2.19"`; known releases only."""
    text = str(release).rsplit(":", 1)[-1] if ":" in str(release) else str(release)
    match = re.match(r"^(\d+)\.(\d+)", text.strip())
    known = ", ".join(_sorted_releases())
    if not match or f"{match[1]}.{match[2]}" not in SERVING_TF_TEXT:
        raise UnsupportedOpsError(
            f"Unknown TF Serving release {release!r}: the op check knows {known} (name the "
            "image's tag, e.g. tensorflow/serving:2.19.1; an untagged image is `latest`, whose "
            "release depends on when it was pulled)."
        )
    return f"{match[1]}.{match[2]}"


def list_ops(saved_model_dir):
    """Every op of a SavedModel: its graphs' nodes and those of every library function.

    Reads `saved_model.pb` without loading the model (no op needs to be
    registered in this process). Nodes that call a library function by name
    are function calls, not ops, and are left out (the function's own nodes
    are listed).

    Args:
        saved_model_dir: str or Path. A SavedModel folder (an export's version folder).

    Returns:
        dict: op name -> sorted list of the functions that use it
        (`"<graph>"` for a meta graph's top level).

    Example:
    >>> sorted(list_ops("saved_models/demo/1"))[:3]  # doctest: +SKIP
    ['Add', 'AddV2', 'All']
    """
    from tensorflow.core.protobuf import saved_model_pb2

    folder = Path(saved_model_dir)
    binary, text = folder / "saved_model.pb", folder / "saved_model.pbtxt"
    saved_model = saved_model_pb2.SavedModel()
    if binary.is_file():
        saved_model.ParseFromString(binary.read_bytes())
    elif text.is_file():
        from google.protobuf import text_format

        text_format.Parse(text.read_text(encoding="utf-8"), saved_model)
    else:
        raise UnsupportedOpsError(f"{folder} has no saved_model.pb: is it a SavedModel folder?")
    places = {}
    for meta_graph in saved_model.meta_graphs:
        graph = meta_graph.graph_def
        functions = {function.signature.name for function in graph.library.function}
        nodes = [("<graph>", node) for node in graph.node]
        for function in graph.library.function:
            nodes += [(function.signature.name, node) for node in function.node_def]
        for where, node in nodes:
            if node.op not in functions:
                places.setdefault(node.op, set()).add(where)
    return {op: sorted(where) for op, where in sorted(places.items())}


@functools.lru_cache(maxsize=1)
def core_op_names():
    """Names of the installed TensorFlow's core ops (`tf.raw_ops`), TF Text's never among them.

    `tf.raw_ops` is generated from TensorFlow's own op registry when TensorFlow
    is built, so the ops that `import tensorflow_text` (or any other op library)
    registers in this process are not in it; the known TF Text ops are taken
    out all the same.
    """
    import tensorflow as tf

    names = {name for name in dir(tf.raw_ops) if name[:1].isupper()}
    return frozenset(names - ALL_TF_TEXT_OPS)


def serving_op_libraries(release=DEFAULT_RELEASE):
    """The installed tensorflow-text's op libraries (`.so`) that a TF Serving release links.

    Loading only these with `tf.load_op_library` in a process that never
    imports `tensorflow_text` gives it the TF Text ops of that model server:
    a SavedModel that needs another op fails to load there as it would in
    TF Serving (`Op type not registered`).

    Args:
        release: str. A TF Serving release or image tag.

    Returns:
        list of Path (empty without tensorflow-text). A linked library that
        the installed tensorflow-text does not ship as a `.so` is left out.

    Example:
    >>> for library in serving_op_libraries("2.19"):  # doctest: +SKIP
    ...     tf.load_op_library(str(library))
    """
    import importlib.util

    version = SERVING_TF_TEXT[parse_release(release)]
    spec = importlib.util.find_spec("tensorflow_text")
    if spec is None or not spec.origin:
        return []
    folder = Path(spec.origin).parent / "python" / "ops"
    libraries = [folder / f"_{name}.so" for name in _TF_TEXT_OPS_LIB[version]]
    return [library for library in libraries if library.is_file()]


def check_ops(saved_model_dir, release=DEFAULT_RELEASE):
    """Splits a SavedModel's ops into core TensorFlow, linked TF Text, and unsupported.

    Args:
        saved_model_dir: str or Path. A SavedModel folder.
        release: str. The TF Serving release (or image tag) that will serve it.

    Returns:
        `OpCheck`; `.ok` is False when some op is unsupported.

    Example:
    >>> check_ops("saved_models/demo/1").ok  # doctest: +SKIP
    True
    """
    release = parse_release(release)
    version = SERVING_TF_TEXT[release]
    ops = list_ops(saved_model_dir)
    core = core_op_names()
    check = OpCheck(release=release, tf_text_version=version, ops=ops)
    for op in ops:
        if op in TF_TEXT_OPS[version]:
            check.tf_text.add(op)
        elif op in core:
            check.core.add(op)
        else:
            check.unsupported.add(op)
    return check


def assert_servable(saved_model_dir, release=DEFAULT_RELEASE):
    """`check_ops`, raising `UnsupportedOpsError` (naming each op and its fix) if any op is missing.

    Example:
    >>> assert_servable("saved_models/demo/1", "tensorflow/serving:2.19.1")  # doctest: +SKIP
    """
    check = check_ops(saved_model_dir, release)
    if not check.ok:
        raise UnsupportedOpsError(
            f"{saved_model_dir} would not load in TF Serving {check.release}: "
            + check.describe().split(": ", 1)[1]
        )
    return check


def _why(op, release, version):
    hint = f"; it comes from {HINTS[op]}" if op in HINTS else ""
    if op in ALL_TF_TEXT_OPS or op.startswith("TFText>"):
        releases = [r for r in _sorted_releases() if op in TF_TEXT_OPS[SERVING_TF_TEXT[r]]]
        linked = f"TF Serving {', '.join(releases)} links it" if releases else "no release links it"
        return f"a TF Text op that TF Text {version}'s ops_lib does not link ({linked}){hint}"
    return f"neither a core TensorFlow op nor a TF Text op of TF Serving {release}{hint}"


def _sorted_releases():
    return sorted(SERVING_TF_TEXT, key=lambda r: tuple(int(part) for part in r.split(".")))


def main(argv=None):
    """`python -m multimodal_tf.serving.op_check SAVED_MODEL [--release 2.19]`; 0 if servable."""
    parser = argparse.ArgumentParser(
        prog="python -m multimodal_tf.serving.op_check",
        description="List a SavedModel's ops and check that a TF Serving release has them all "
        "(core TensorFlow + the TF Text ops its model server links).",
    )
    parser.add_argument("saved_model", help="SavedModel folder (an export's version folder).")
    parser.add_argument(
        "--release",
        default=DEFAULT_RELEASE,
        help=f"TF Serving release or image tag (default: {DEFAULT_RELEASE}; known: "
        + ", ".join(_sorted_releases())
        + ").",
    )
    parser.add_argument("--list", action="store_true", help="Also print every op and its kind.")
    args = parser.parse_args(argv)
    try:
        check = check_ops(args.saved_model, args.release)
    except MultimodalTFError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.list:
        for op in sorted(check.ops):
            kind = (
                "tf_text" if op in check.tf_text else "core" if op in check.core else "UNSUPPORTED"
            )
            print(f"{kind:12} {op}")
    print(check.describe(), file=sys.stdout if check.ok else sys.stderr)
    return 0 if check.ok else 1


if __name__ == "__main__":
    sys.exit(main())
