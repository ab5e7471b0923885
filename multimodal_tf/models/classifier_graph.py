"""A `MultimodalClassifier`'s graph after its encoders' inputs, shared by every model over it.

The classifier and `feature_map_model()` (the same model over cached feature
maps) differ only in how the image is encoded; everything from the encoded
modalities to the heads is built here, once.
"""

from typing import NamedTuple

import keras
from keras import ops

from multimodal_tf.layers.modality_dropout import ModalityDropout


class GraphLayers(NamedTuple):
    """The layers `head_outputs` wires together, by role."""

    text: keras.layers.Layer | None
    placeholders: ModalityDropout
    fusion: keras.layers.Layer
    heads: dict
    wide: dict
    wide_image: dict

    @classmethod
    def of(cls, model):
        """A built `MultimodalClassifier`'s layers."""
        names = model.head_names
        return cls(
            model.text_encoder,
            model.get_layer("modality_dropout"),
            model.fusion,
            {name: model.get_layer(name) for name in names},
            {name: model.get_layer(f"{name}_wide") for name in names} if model.wide else {},
            {name: model.get_layer(f"{name}_wide_image") for name in names}
            if model.wide_image
            else {},
        )


def head_outputs(layers, token_ids, encode_image, image_present, text=None):
    """The classifier's graph from its inputs to each head's output, `{head: tensor}`.

    `MultimodalClassifier` and its `feature_map_model()` both build their graph
    with this, so the two cannot drift apart. Args:
    `token_ids` (None without text, or when only `text` is read); `text`, the raw
    text of an encoder that tokenizes it itself (`HubTextEncoder`), else None;
    `encode_image`, a callable giving the
    image tokens and the pooled features (None without `wide_image`), or
    None without images; it runs after the text encoder, so layers are built
    (and initialised from the seed) in one order; `image_present` (None
    without images).
    """
    sequences, masks, present = [], [], []
    if text is not None:  # its mask exists once it has tokenized: it returns it
        sequence, text_mask = layers.text(text, return_mask=True)
        sequences.append(sequence)
        masks.append(text_mask)
        # Text with no token but the packer's [CLS] and [SEP] counts as absent.
        count = ops.sum(ops.cast(text_mask, "int32"), axis=1)
        present.append(ops.greater(count, layers.text.num_special_tokens))
    elif token_ids is not None:
        text_mask = layers.text.compute_mask(token_ids)
        sequences.append(layers.text(token_ids))
        masks.append(text_mask)
        # Text that standardizes to no tokens at all counts as absent.
        present.append(ops.any(text_mask, axis=1))
    pooled = None
    if encode_image is not None:
        image_tokens, pooled = encode_image()
        sequences.append(image_tokens)
        masks.append(ops.ones_like(image_tokens[:, :, 0], dtype="bool"))
        present.append(ops.greater(image_present, 0.5))
    sequences, masks = layers.placeholders([sequences, masks, present])
    features = layers.fusion(sequences, mask=masks)
    outputs = {}
    for name, head in layers.heads.items():
        wide_logits = layers.wide[name](token_ids) if layers.wide else None
        if layers.wide_image:
            wide_logits = wide_logits + layers.wide_image[name](pooled, image_present)
        outputs[name] = head(features, wide_logits=wide_logits)
    return outputs
