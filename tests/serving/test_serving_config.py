"""TF Serving config files parse back into the server's own protobuf messages."""

import os

import pytest
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from multimodal_tf.serving.export import export_saved_model
from multimodal_tf.serving.serving_config import (
    DOCKER_COMMAND,
    batching_parameters_class,
    measure_batching,
    write_serving_config,
)
from tests.helpers import tiny_model


def parse_models(path):
    return text_format.Parse(path.read_text(), model_server_config_pb2.ModelServerConfig())


def parse_batching(path):
    return text_format.Parse(path.read_text(), batching_parameters_class()())


def test_labels_serve_specific_versions_of_every_model(tmp_path):
    paths = write_serving_config(
        tmp_path,
        {"demo": "/models/demo", "mvsa": "/models/mvsa"},
        labels={"stable": 1, "canary": 2},
    )
    configs = parse_models(paths["models_config"]).model_config_list.config
    assert [(c.name, c.base_path, c.model_platform) for c in configs] == [
        ("demo", "/models/demo", "tensorflow"),
        ("mvsa", "/models/mvsa", "tensorflow"),
    ]
    for config in configs:
        assert list(config.model_version_policy.specific.versions) == [1, 2]
        assert dict(config.version_labels) == {"stable": 1, "canary": 2}


@pytest.mark.parametrize(
    "policy, field, expected",
    [
        ("latest", "latest", 1),
        ("latest:3", "latest", 3),
        ("all", "all", None),
        ([3, 1], "specific", [1, 3]),
    ],
)
def test_version_policies(policy, field, expected, tmp_path):
    paths = write_serving_config(tmp_path, ["saved_models/demo"], version_policy=policy)
    (config,) = parse_models(paths["models_config"]).model_config_list.config
    assert config.name == "demo"
    assert config.model_version_policy.WhichOneof("policy_choice") == field
    if field == "latest":
        assert config.model_version_policy.latest.num_versions == expected
    if field == "specific":
        assert list(config.model_version_policy.specific.versions) == expected


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"labels": {"stable": 1}, "version_policy": "latest"}, "need the versions"),
        ({"labels": {"canary": 3}, "version_policy": [1, 2]}, r"\[3\] are not in"),
        ({"version_policy": "newest"}, "'newest'"),
        ({"batching": {"max_batch_size": 8, "allowed_batch_sizes": [2, 4]}}, "end at"),
        ({"batching": {"max_batch": 8}}, "max_batch"),
    ],
)
def test_bad_arguments_say_what_was_received(kwargs, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        write_serving_config(tmp_path, {"demo": "/models/demo"}, **kwargs)


def test_measured_batching_parameters_parse_as_batching_parameters(tmp_path):
    version_dir = export_saved_model(tiny_model(), tmp_path / "models" / "demo")
    result = measure_batching(version_dir, batch_sizes=(1, 2, 4), repeats=2)
    assert [m["batch_size"] for m in result["measurements"]] == [1, 2, 4]
    assert all(m["p50_ms"] > 0 and m["samples_per_second"] > 0 for m in result["measurements"])
    parameters = result["parameters"]
    assert parameters["allowed_batch_sizes"][-1] == parameters["max_batch_size"]
    paths = write_serving_config(
        tmp_path / "serving", {"demo": "/models/demo"}, batching=parameters
    )
    batching = parse_batching(paths["batching_parameters"])
    assert batching.max_batch_size.value == parameters["max_batch_size"]
    assert batching.batch_timeout_micros.value == parameters["batch_timeout_micros"] > 0
    assert batching.num_batch_threads.value == os.cpu_count()
    assert batching.max_enqueued_batches.value == os.cpu_count()
    assert list(batching.allowed_batch_sizes) == parameters["allowed_batch_sizes"]
    # Without a measurement, defaults for this machine.
    default = parse_batching(write_serving_config(tmp_path, ["x"])["batching_parameters"])
    assert default.max_batch_size.value == 32 and not default.allowed_batch_sizes


def test_docker_command_mounts_both_files():
    for flag in (
        "-p 8500:8500",
        "-p 8501:8501",
        "tensorflow/serving",
        "--model_config_file=/config/models.config",
        "--enable_batching=true",
        "--batching_parameters_file=/config/batching_parameters.txt",
        "--tensorflow_intra_op_parallelism=1",
    ):
        assert flag in DOCKER_COMMAND
