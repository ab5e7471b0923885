"""What the `multimodal-tf` command loads at start-up, and what TensorFlow prints then.

`--help`, each subcommand's `--help` and argument errors never import TensorFlow or
Keras (they would take seconds); a command that runs does, without TensorFlow's C++
start-up log unless `--verbose` is given, and with the package's Keras classes
registered so that `.keras` files load. `import multimodal_tf` still registers them
for `keras.saving.load_model` in Python.
"""

import argparse
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import multimodal_tf
from multimodal_tf import cli
from tests.conftest import PROJECT_ROOT

HEAVY = ("tensorflow", "keras")
# The lines TensorFlow 2.21 prints at start-up on a CPU machine, in their two formats.
TF_LOG_SAMPLE = textwrap.dedent(
    """\
    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    I0000 00:00:1796687691.600897   16590 port.cc:153] oneDNN custom operations are on.
    I0000 00:00:1796687691.601261   16590 cudart_stub.cc:31] Could not find cuda drivers.
    I0000 00:00:1796687691.674373   16590 cpu_feature_guard.cc:227] This TensorFlow binary is ...
    To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow.
    E0000 00:00:1796687695.751795   16590 cuda_platform.cc:52] failed call to cuInit: ...
    2025-09-17 14:44:05.228: W external/local_xla/xla/tsl/cuda/tf_trt.cc:38] TF-TRT Warning
    """
)
TF_LOG_MARKERS = ("oneDNN", "cpu_feature_guard", "absl::InitializeLog", "cuda", "TF-TRT")
TF_LOG_LINE = re.compile(r"^(?:[IWEF]\d{4} |[\d-]+ [\d:.]+: [IWEF] )\S*.*\.cc:\d+\] ", re.M)


def _console_script():
    script = Path(sys.executable).with_name("multimodal-tf")
    return [str(script)] if script.is_file() else None


LAUNCHERS = {
    "console script": _console_script(),
    "python -m": [sys.executable, "-m", "multimodal_tf"],
}


def _command_lines():
    """Every (sub)command path, e.g. [], ["train"], ["weights", "install"]."""

    def walk(parser, prefix):
        yield prefix
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    yield from walk(child, [*prefix, name])

    return list(walk(cli._build_parser(), []))


def _run(launcher, arguments, env_changes=None, timeout=300):
    """Runs the command in a new process with `-X importtime`; returns it and its imports."""
    command = LAUNCHERS[launcher]
    if command is None:
        pytest.skip("no multimodal-tf console script next to this Python")
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    env.update({"PYTHONPROFILEIMPORTTIME": "1", **(env_changes or {})})
    result = subprocess.run(
        [*command, *arguments],
        capture_output=True,
        text=True,
        env=env,
        cwd=PROJECT_ROOT,
        timeout=timeout,
    )
    imported, stderr = set(), []
    for line in result.stderr.splitlines(keepends=True):
        if line.startswith("import time:"):
            imported.add(line.rsplit("|", 1)[-1].strip())
        else:
            stderr.append(line)
    return result, imported, "".join(stderr)


def _heavy(imported):
    """The packages of HEAVY that were imported."""
    return sorted({name.split(".")[0] for name in imported} & set(HEAVY))


HELP_CASES = [("console script", words) for words in _command_lines()] + [("python -m", [])]


@pytest.mark.parametrize(
    ("launcher", "command"),
    HELP_CASES,
    ids=[f"{launcher}: {' '.join(words) or '-'}" for launcher, words in HELP_CASES],
)
def test_help_imports_neither_tensorflow_nor_keras(launcher, command):
    result, imported, stderr = _run(launcher, [*command, "--help"])
    assert result.returncode == 0, stderr
    assert "usage: multimodal-tf" in result.stdout
    assert "multimodal_tf.cli" in imported  # the profile covers the command's imports
    assert not _heavy(imported), f"--help imported {' and '.join(_heavy(imported))}"
    assert stderr == ""


def test_an_argument_error_imports_no_tensorflow():
    result, imported, stderr = _run("console script", ["train", "--quiet"])
    assert result.returncode == 2
    assert "the following arguments are required: --manifest" in stderr
    assert not _heavy(imported), f"imported {' and '.join(_heavy(imported))}"


def test_demo_data_needs_no_tensorflow(tmp_path):
    result, imported, stderr = _run(
        "console script", ["demo-data", "--output", str(tmp_path / "demo"), "--num-samples", "8"]
    )
    assert result.returncode == 0, stderr
    assert (tmp_path / "demo" / "manifest.csv").is_file()
    assert not _heavy(imported), f"imported {' and '.join(_heavy(imported))}"
    assert stderr == ""


@pytest.fixture(scope="module")
def tiny_model_file(tmp_path_factory):
    """A `.keras` file of a MultimodalClassifier: loading it needs the package's classes."""
    from tests.helpers import tiny_model

    path = tmp_path_factory.mktemp("model") / "model.keras"
    tiny_model().save(path)
    return path


def test_evaluate_loads_a_keras_file_without_tensorflow_start_up_log(
    tiny_model_file, tiny_manifest
):
    arguments = ["evaluate", "--run", str(tiny_model_file), "--manifest", str(tiny_manifest)]
    result, imported, stderr = _run("console script", arguments)
    assert result.returncode == 0, stderr
    assert "test: accuracy" in result.stdout
    assert "tensorflow" in imported  # else no TensorFlow line could have been printed
    assert not TF_LOG_LINE.search(stderr), stderr
    for marker in TF_LOG_MARKERS:
        assert marker not in stderr, stderr


def test_importing_the_package_registers_its_keras_classes(tiny_model_file):
    script = textwrap.dedent(
        f"""
        import multimodal_tf
        import keras

        model = keras.saving.load_model({str(tiny_model_file)!r})
        print(type(model).__name__, model.class_names)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=PROJECT_ROOT
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["MultimodalClassifier", "['warm',", "'cold']"]


def test_the_start_up_filter_hides_tensorflow_lines_below_the_log_level():
    text = "before\n" + TF_LOG_SAMPLE + "/x.py:3: UserWarning: kept\n  warn()\n"
    assert cli._without_tensorflow_log(text, 3) == "before\n/x.py:3: UserWarning: kept\n  warn()\n"
    at_error = cli._without_tensorflow_log(text, 2)
    assert "cuInit" in at_error and "oneDNN" not in at_error and "TF-TRT" not in at_error
    assert "TF-TRT" in cli._without_tensorflow_log(text, 1)
    assert cli._without_tensorflow_log(text, 0) == text
    fatal = "F0000 00:00:1796687691.6 16590 cpu_feature_guard.cc:9] The CPU lacks AVX.\n"
    assert cli._without_tensorflow_log(fatal, 3) == fatal


@pytest.mark.parametrize(
    ("user_level", "verbose", "expected"),
    [(None, False, "3"), (None, True, None), ("0", False, "0"), ("1", True, "1")],
)
def test_the_log_level_is_the_users_else_quiet_unless_verbose(
    user_level, verbose, expected, monkeypatch
):
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    if user_level is not None:
        monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", user_level)
    cli._start_tensorflow(verbose=verbose)  # TensorFlow is loaded here: no start-up output
    assert os.environ.get("TF_CPP_MIN_LOG_LEVEL") == expected


@pytest.mark.parametrize(
    "argv",
    [
        ["--verbose", "weights", "list"],
        ["weights", "--verbose", "list"],
        ["weights", "list", "--verbose"],
        ["validate", "m.csv", "--verbose"],
    ],
)
def test_verbose_is_accepted_before_and_after_the_command(argv):
    assert cli._build_parser().parse_args(argv).verbose is True
    assert cli._build_parser().parse_args([a for a in argv if a != "--verbose"]).verbose is False


@pytest.mark.parametrize(
    ("argv0", "interpreter_argv", "by_the_command"),
    [
        ("/venv/bin/multimodal-tf", None, True),
        ("C:/venv/Scripts/multimodal-tf.exe", None, True),
        ("-m", ["python", "-m", "multimodal_tf", "train"], True),
        ("-m", ["python", "-X", "importtime", "-mmultimodal_tf.cli"], True),
        ("-m", ["python", "-m", "multimodal_tf.serving.predict"], False),
        ("-m", ["python", "-W", "error", "-m", "pytest", "-m", "multimodal_tf"], False),
        ("-c", ["python", "-c", "import multimodal_tf", "-m", "multimodal_tf"], False),
        ("/venv/bin/pytest", None, False),
        ("", None, False),
    ],
)
def test_only_the_command_line_skips_the_eager_registration(
    argv0, interpreter_argv, by_the_command, monkeypatch
):
    monkeypatch.setattr(sys, "argv", [argv0])
    monkeypatch.setattr(sys, "orig_argv", interpreter_argv or ["python", argv0])
    assert multimodal_tf._imported_to_run_the_command() is by_the_command
