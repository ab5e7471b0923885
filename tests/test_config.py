import dataclasses
import json

import pytest

from multimodal_tf.config import RunConfig, load_config, save_config
from multimodal_tf.errors import ConfigError


def test_defaults_without_a_file():
    config = load_config(None)
    assert config == RunConfig()
    assert config.model.modalities == ("text", "image")


def test_yaml_overrides_only_what_it_names(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("model:\n  hidden_dim: 32\n  image_filters: [8, 16]\ntraining:\n  epochs: 3\n")
    config = load_config(path)
    assert config.model.hidden_dim == 32 and config.model.image_filters == (8, 16)
    assert config.training.epochs == 3 and config.data == RunConfig().data


def typed_fields(config):
    """Each `section.key` of a `RunConfig` -> (type name, value), tuple items typed too.

    `==` alone takes True for 1 and 1 for 1.0; these pairs do not.
    """
    return {
        f"{section.name}.{key.name}": typed(getattr(getattr(config, section.name), key.name))
        for section in dataclasses.fields(config)
        for key in dataclasses.fields(getattr(config, section.name))
    }


def typed(value):
    if isinstance(value, list | tuple):
        return type(value).__name__, [typed(item) for item in value]
    return type(value).__name__, value


def changed_config():
    """A config whose values differ from the defaults, one of each kind a section holds."""
    config = RunConfig()
    config.data.image_size = (32, 48)  # tuple of int
    config.data.batch_size = 7  # int
    config.data.val_fraction = 0.25  # float
    config.data.emoticons = False  # bool
    config.data.lexicon = "none"  # str
    config.model.image_filters = (8, 16, 24)
    config.model.image_augmentation = True  # true, false or "auto"
    config.model.wide_c = 3.0  # a whole float stays a float
    config.training.learning_rate = 5e-4
    config.training.deterministic = True
    config.export.name = "demo"
    return config


@pytest.mark.parametrize("config", [RunConfig(), changed_config()], ids=["default", "changed"])
@pytest.mark.parametrize("name", ["snapshot.json", "snapshot.yaml"])
def test_json_and_snapshot_round_trip(tmp_path, config, name):
    save_config(config, tmp_path / name)
    loaded = load_config(tmp_path / name)
    assert loaded == config
    assert typed_fields(loaded) == typed_fields(config)


def test_saved_json_is_the_config_as_plain_json(tmp_path):
    config = changed_config()
    save_config(config, tmp_path / "run.json")
    written = json.loads((tmp_path / "run.json").read_text(encoding="utf-8"))
    assert written == config.to_dict()
    assert set(written) == {"data", "model", "training", "export"}
    assert written["data"]["image_size"] == [32, 48]  # JSON has lists, not tuples
    assert written["data"]["emoticons"] is False
    assert written["model"]["image_augmentation"] is True
    assert type(written["model"]["wide_c"]) is float and written["model"]["wide_c"] == 3.0
    assert written["training"]["learning_rate"] == 5e-4


def test_a_whole_number_for_a_float_key_loads_as_a_float(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"model": {"wide_c": 3}, "data": {"image_size": [32, 48]}}))
    config = load_config(path)
    assert type(config.model.wide_c) is float and config.model.wide_c == 3.0
    assert config.data.image_size == (32, 48) and type(config.data.image_size) is tuple


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "modle: {}",
            r"unknown key 'modle' at top level; allowed keys: data, model, training, export",
        ),
        (
            "model:\n  hiden_dim: 3",
            r"run.yaml: unknown key 'hiden_dim' at section 'model'; "
            r"allowed keys: modalities, fusion, text_encoder",
        ),
        ("training:\n  epochs: many", r"training.epochs must be an integer, got 'many'"),
        ("data:\n  on_error: ignore", r"data.on_error must be one of raise, skip"),
        ("model: [1, 2]", r"section 'model' must be a mapping"),
        (
            "model:\n  image_augmentation: sometimes",
            r"model.image_augmentation must be true, false or auto; got 'sometimes'",
        ),
        ("model: {hidden_dim: 3", r"not valid YAML"),
    ],
)
def test_bad_config_names_the_key(tmp_path, text, message):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


@pytest.mark.parametrize("value", [True, False, "auto"])
def test_image_augmentation_takes_true_false_or_auto(tmp_path, value):
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"model": {"image_augmentation": value}}))
    assert load_config(path).model.image_augmentation == value


def test_missing_file_and_wrong_suffix(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    (tmp_path / "run.toml").write_text("")
    with pytest.raises(ConfigError, match=".yaml, .yml or .json"):
        load_config(tmp_path / "run.toml")


def test_config_choices_match_the_model_registries():
    from multimodal_tf.config import _CHOICES
    from multimodal_tf.layers.fusion import FUSIONS
    from multimodal_tf.models.image_encoder import IMAGE_ENCODERS
    from multimodal_tf.models.text_encoder import TEXT_ENCODERS

    assert _CHOICES[("model", "fusion")] == tuple(FUSIONS)
    assert _CHOICES[("model", "text_encoder")] == tuple(TEXT_ENCODERS)
    assert _CHOICES[("model", "image_encoder")] == tuple(IMAGE_ENCODERS)
