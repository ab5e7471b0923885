import warnings

import numpy as np
import pytest

from multimodal_tf.layers.fusion.attention_fusion import AttentionFusion
from multimodal_tf.models.text_encoder import TextEncoder
from tests.helpers import run_serialization_test


def test_output_is_one_vector_per_sample():
    fusion = AttentionFusion(hidden_dim=8, num_heads=2)
    out = fusion([np.ones((3, 5, 8), "float32"), np.ones((3, 4, 8), "float32")])
    assert out.shape == (3, 16)  # pooled tokens + text x image interaction
    single = AttentionFusion(hidden_dim=8, num_heads=2, num_modalities=1)
    assert single([np.ones((3, 5, 8), "float32")]).shape == (3, 8)
    run_serialization_test(fusion)


def test_padded_text_positions_do_not_change_the_output():
    encoder = TextEncoder(vocabulary_size=20, embedding_dim=4, lstm_units=4, hidden_dim=8)
    fusion = AttentionFusion(hidden_dim=8, num_heads=2)
    image_tokens = np.random.default_rng(0).normal(size=(1, 4, 8)).astype("float32")

    def fused(token_ids):
        tokens = encoder(np.array([token_ids]))
        mask = token_ids != 0 if isinstance(token_ids, np.ndarray) else None
        return fusion([tokens, image_tokens], mask=[np.array([mask]), None]).numpy()

    short = fused(np.array([3, 4, 0, 0]))
    longer_padding = fused(np.array([3, 4, 0, 0, 0, 0]))
    np.testing.assert_allclose(short, longer_padding, atol=1e-5)
    assert not np.allclose(short, fused(np.array([3, 5, 0, 0])), atol=1e-5)


def test_wrong_number_of_sequences_is_a_clear_error():
    with pytest.raises(ValueError, match="num_modalities=2"):
        AttentionFusion(hidden_dim=8, num_heads=2)([np.ones((1, 2, 8), "float32")])


def test_hidden_dim_must_split_into_heads():
    with pytest.raises(ValueError, match="divisible"):
        AttentionFusion(hidden_dim=10, num_heads=4)


def test_one_text_token_alone_raises_no_softmax_warning():
    # A text-only model with the bag encoder attends over its one token; Keras
    # warns about a softmax over a size-1 axis, which is by design here.
    # With attention dropout in training, Keras takes its explicit-softmax path.
    single = AttentionFusion(hidden_dim=8, num_heads=2, num_modalities=1, dropout_rate=0.3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = single([np.ones((3, 1, 8), "float32")], training=True)
    assert out.shape == (3, 8)
    assert not [w for w in caught if "softmax" in str(w.message)]
