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


def test_json_and_snapshot_round_trip(tmp_path):
    config = RunConfig()
    config.data.image_size = (32, 48)
    for name in ("snapshot.yaml", "snapshot.json"):
        save_config(config, tmp_path / name)
        assert load_config(tmp_path / name) == config
    json.loads((tmp_path / "snapshot.json").read_text())


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
