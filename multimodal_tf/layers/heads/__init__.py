"""Task heads."""

from multimodal_tf.layers.heads.classification_head import ClassificationHead

__all__ = ["ClassificationHead"]
