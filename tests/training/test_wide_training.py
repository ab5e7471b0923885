"""`model.wide` in the run config: refused without text, left out of image-only baselines."""

import pytest

from multimodal_tf.errors import ConfigError
from multimodal_tf.training.ablation import _variant_config
from multimodal_tf.training.fit import train


def test_wide_without_text_is_a_config_error_before_anything_is_written(
    tiny_manifest, tiny_config, tmp_path
):
    tiny_config.model.wide = True
    tiny_config.model.modalities = ("image",)
    with pytest.raises(ConfigError, match=r"model.wide .* \['image'\] has none"):
        train(tiny_manifest, tiny_config, tmp_path / "run", verbose=0)
    assert not (tmp_path / "run").exists()


def test_ablation_keeps_wide_where_there_is_text(tiny_config):
    tiny_config.model.wide = True
    wide = {
        variant: _variant_config(tiny_config, variant, seed=1).model.wide
        for variant in ("text_only", "image_only", "fusion=concat")
    }
    assert wide == {"text_only": True, "image_only": False, "fusion=concat": True}
