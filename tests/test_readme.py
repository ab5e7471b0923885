"""The README's full config listing is the defaults, so a user who copies it changes nothing."""

import re
from pathlib import Path

import yaml

from multimodal_tf.config import RunConfig

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_config_listing_is_the_default_config():
    listings = [
        loaded
        for block in re.findall(r"```yaml\n(.*?)```", README.read_text(), re.S)
        if isinstance(loaded := yaml.safe_load(block), dict)
        and set(loaded) == {"data", "model", "training", "export"}
    ]
    assert len(listings) == 1, "README.md should list the whole config once"
    assert listings[0] == RunConfig().to_dict()
