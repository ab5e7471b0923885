"""Where presets come from: a folder (offline), or a name that must be cached or downloaded."""

import time

import pytest

from multimodal_tf.errors import ConfigError
from tests.hub.conftest import require_hub_extra

require_hub_extra()

from multimodal_tf.models.hub_text_encoder import HubTextEncoder, resolve_preset  # noqa: E402


def test_a_preset_name_not_cached_fails_offline_saying_how_to_bring_it(tmp_path, monkeypatch):
    """tests/conftest.py refuses non-loopback connections: this machine has no network."""
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "kagglehub"))  # an empty cache
    start = time.monotonic()
    with pytest.raises(ConfigError) as raised:
        HubTextEncoder("bert_tiny_en_uncased", sequence_length=16)
    assert time.monotonic() - start < 30
    message = str(raised.value)
    assert "'bert_tiny_en_uncased' is not on this machine" in message
    assert "could not be downloaded (" in message and raised.value.__cause__ is not None
    assert "Backbone.from_preset('bert_tiny_en_uncased').save_to_preset(" in message
    assert "Tokenizer.from_preset('bert_tiny_en_uncased').save_to_preset(" in message
    assert "model.text_preset: /path/to/bert_tiny_en_uncased" in message


def test_a_misspelt_preset_name_is_named_with_the_closest(monkeypatch):
    with pytest.raises(ConfigError, match="Did you mean 'bert_tiny_en_uncased'"):
        resolve_preset("bert_tiny_en_uncase")


def test_preset_folders(preset_dir, tmp_path):
    assert resolve_preset(preset_dir) == str(preset_dir)
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_preset(str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="has no config.json or tokenizer.json"):
        resolve_preset(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ConfigError, match="has no tokenizer.json"):
        HubTextEncoder(str(tmp_path))
    with pytest.raises(ConfigError, match="preset name such as"):
        resolve_preset("")
