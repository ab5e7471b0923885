"""Every fusion layer: one call signature, masks respected, configs round-trip."""

import keras
import numpy as np
import pytest

from multimodal_tf.layers.fusion import FUSIONS, CrossAttentionFusion, GatedFusion, get_fusion
from tests.helpers import run_model_saving_test, run_serialization_test

HIDDEN = 8
rng = np.random.default_rng(0)
TEXT = rng.normal(size=(3, 5, HIDDEN)).astype("float32")
IMAGE = rng.normal(size=(3, 4, HIDDEN)).astype("float32")


def make(name, num_modalities=2, **kwargs):
    return get_fusion(name, HIDDEN, num_modalities, num_heads=2, **kwargs)


@pytest.mark.parametrize("name", list(FUSIONS))
def test_same_call_signature_and_declared_output_shape(name):
    fusion = make(name)
    out = fusion([TEXT, IMAGE])
    expected = (3, 2, HIDDEN) if name == "late" else (3, fusion.output_dim)
    assert tuple(out.shape) == expected
    assert tuple(fusion.compute_output_shape([TEXT.shape, IMAGE.shape])) == expected
    assert np.isfinite(np.asarray(out)).all()
    restored = run_serialization_test(fusion)
    # A rebuilt layer with the same weights gives the same output.
    restored([TEXT, IMAGE])
    restored.set_weights(fusion.get_weights())
    np.testing.assert_allclose(restored([TEXT, IMAGE]), out, atol=1e-6)


@pytest.mark.parametrize("name", list(FUSIONS))
def test_masked_positions_do_not_change_the_output(name):
    fusion = make(name)
    mask = np.array([[True, True, False, False, False]] * 3)
    out = np.asarray(fusion([TEXT, IMAGE], mask=[mask, None]))
    changed = TEXT.copy()
    changed[:, 2:] = 100.0  # only masked positions differ
    np.testing.assert_allclose(fusion([changed, IMAGE], mask=[mask, None]), out, atol=1e-5)
    # ... while a real position does change it.
    changed_real = TEXT.copy()
    changed_real[:, 0] += 1.0
    assert not np.allclose(fusion([changed_real, IMAGE], mask=[mask, None]), out, atol=1e-5)


@pytest.mark.parametrize("name", list(FUSIONS))
def test_a_fully_masked_sequence_gives_finite_output(name):
    empty = np.zeros((3, 5), bool)
    out = make(name)([TEXT, IMAGE], mask=[empty, None])
    assert np.isfinite(np.asarray(out)).all()


@pytest.mark.parametrize("name", ["concat", "attention", "late"])
def test_one_modality_works_where_it_makes_sense(name):
    out = make(name, num_modalities=1)([TEXT])
    assert out.shape[0] == 3


@pytest.mark.parametrize("cls", [GatedFusion, CrossAttentionFusion])
def test_two_modality_fusions_refuse_one(cls):
    with pytest.raises(ValueError, match="modalities"):
        cls(hidden_dim=HIDDEN, num_modalities=1)


@pytest.mark.parametrize(
    "direction,width", [("text_to_image", 8), ("image_to_text", 8), ("both", 16)]
)
def test_cross_attention_directions(direction, width):
    fusion = CrossAttentionFusion(hidden_dim=HIDDEN, num_heads=2, direction=direction)
    assert fusion([TEXT, IMAGE]).shape == (3, width)
    run_serialization_test(fusion)
    # Text queries see the image: changing image tokens changes the output.
    other = fusion([TEXT, IMAGE + 1.0])
    assert not np.allclose(other, fusion([TEXT, IMAGE]), atol=1e-5)


def test_wrong_number_of_sequences_or_width_is_a_clear_error():
    with pytest.raises(ValueError, match="num_modalities=2"):
        make("gated")([TEXT])
    with pytest.raises(ValueError, match="hidden_dim=8"):
        make("concat")([TEXT, np.zeros((3, 4, 6), "float32")])
    with pytest.raises(ValueError, match="Unknown fusion 'sum'"):
        make("sum")
    with pytest.raises(ValueError, match="direction"):
        CrossAttentionFusion(hidden_dim=HIDDEN, direction="sideways")


@pytest.mark.parametrize("name", list(FUSIONS))
def test_keras_file_round_trip_inside_a_model(name, tmp_path):
    text = keras.Input((5, HIDDEN))
    image = keras.Input((4, HIDDEN))
    fused = make(name)([text, image])
    if name == "late":
        fused = keras.layers.Flatten()(fused)
    model = keras.Model([text, image], keras.layers.Dense(2)(fused))
    run_model_saving_test(model, [TEXT, IMAGE], tmp_path)
