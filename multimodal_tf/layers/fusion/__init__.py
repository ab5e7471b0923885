"""Fusion layers: each is called as `fusion([text_tokens, image_tokens])`."""

from multimodal_tf.layers.fusion.attention_fusion import AttentionFusion
from multimodal_tf.layers.fusion.base_fusion import Fusion
from multimodal_tf.layers.fusion.concat_fusion import ConcatFusion
from multimodal_tf.layers.fusion.cross_attention_fusion import CrossAttentionFusion
from multimodal_tf.layers.fusion.gated_fusion import GatedFusion
from multimodal_tf.layers.fusion.late_fusion import LateFusion

FUSIONS = {
    "concat": ConcatFusion,
    "attention": AttentionFusion,
    "cross_attention": CrossAttentionFusion,
    "gated": GatedFusion,
    "late": LateFusion,
}


def get_fusion(name, hidden_dim, num_modalities, num_heads=4, dropout_rate=0.0):
    """A fusion layer by name (`FUSIONS` lists them), configured with the model's widths.

    Args:
        name: str. `"concat"`, `"attention"`, `"cross_attention"`, `"gated"` or `"late"`.
        hidden_dim: int. Token width shared by the encoders.
        num_modalities: int. Sequences the layer will be called with.
        num_heads: int. Attention heads (attention fusions only).
        dropout_rate: float. Dropout inside the layer.

    Example:
    >>> get_fusion("gated", hidden_dim=8, num_modalities=2).output_dim
    8
    """
    if name not in FUSIONS:
        raise ValueError(f"Unknown fusion {name!r}; choose one of {', '.join(FUSIONS)}.")
    kwargs = {"hidden_dim": hidden_dim, "num_modalities": num_modalities}
    kwargs["dropout_rate"] = dropout_rate
    if name in ("attention", "cross_attention"):
        kwargs["num_heads"] = num_heads
    return FUSIONS[name](name="fusion", **kwargs)


__all__ = [
    "FUSIONS",
    "AttentionFusion",
    "ConcatFusion",
    "CrossAttentionFusion",
    "Fusion",
    "GatedFusion",
    "LateFusion",
    "get_fusion",
]
