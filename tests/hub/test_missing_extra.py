"""Without keras-hub or tensorflow-text: one clear message, saying how to install the extra."""

import sys

import pytest

from multimodal_tf.errors import ConfigError
from multimodal_tf.models.hub_text_encoder import HubExtraMissingError, HubTextEncoder, require_hub


@pytest.mark.parametrize(
    ("module", "package"), [("keras_hub", "keras-hub"), ("tensorflow_text", "tensorflow-text")]
)
def test_the_missing_extra_is_named_with_its_install_command(monkeypatch, module, package):
    monkeypatch.setitem(sys.modules, module, None)  # importing it raises ImportError
    with pytest.raises(HubExtraMissingError) as raised:
        HubTextEncoder("/models/bert_tiny_en_uncased")
    error = raised.value
    assert isinstance(error, ConfigError) and isinstance(error, ImportError)
    message = str(error)
    assert f"`{package}` is not installed" in message
    assert 'pip install "multimodal_tf[hub]"' in message and "pip install -e '.[hub]'" in message
    with pytest.raises(ImportError, match=r"\[hub\] extra"):
        require_hub()


def test_both_missing_are_named_at_once(monkeypatch):
    monkeypatch.setitem(sys.modules, "keras_hub", None)
    monkeypatch.setitem(sys.modules, "tensorflow_text", None)
    with pytest.raises(HubExtraMissingError) as raised:
        require_hub()
    message = str(raised.value)
    assert "`keras-hub` is not installed; `tensorflow-text` is not installed." in message
