"""HubTextEncoder: raw strings -> a KerasHub backbone's masked tokens; training; `.keras` files."""

import json
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf

from multimodal_tf.errors import ConfigError
from tests.helpers import run_serialization_test
from tests.hub.conftest import (
    HIDDEN_DIM,
    PARITY_TEXTS,
    SEQUENCE_LENGTH,
    TRAIN_LABELS,
    TRAIN_TEXTS,
    require_hub_extra,
    text_classifier,
)

require_hub_extra()

from multimodal_tf.models import hub_text_encoder  # noqa: E402
from multimodal_tf.models.hub_text_encoder import (  # noqa: E402
    HubTextEncoder,
    choose_sequence_length,
)

TEXTS = ["the red circle", "A Blue SQUARE is not very good, the cats and dogs are sad and cold"]


@pytest.fixture(scope="module")
def encoder(preset_dir):
    return HubTextEncoder(str(preset_dir), sequence_length=SEQUENCE_LENGTH)


def test_raw_text_gives_token_features_with_the_padding_mask(encoder):
    features = encoder.tokenize(tf.constant(TEXTS))
    ids = features["token_ids"].numpy()
    tokens = encoder(tf.constant(TEXTS))
    assert tuple(tokens.shape) == (2, SEQUENCE_LENGTH, HIDDEN_DIM)
    vocabulary = encoder.tokenizer.get_vocabulary()
    cls, sep, pad = (vocabulary.index(t) for t in ("[CLS]", "[SEP]", "[PAD]"))
    # [CLS] the red circle [SEP] [PAD]...: the mask is exactly the non-padding tokens.
    assert ids[0, :5].tolist() == [cls, *(vocabulary.index(w) for w in TEXTS[0].split()), sep]
    assert (ids[0, 5:] == pad).all()
    np.testing.assert_array_equal(tokens._keras_mask.numpy(), ids != pad)
    np.testing.assert_array_equal(encoder.compute_mask(tf.constant(TEXTS)).numpy(), ids != pad)
    # The long text is cut (waterfall) to SEQUENCE_LENGTH with its [SEP] kept last, lower-cased.
    assert ids[1, 0] == cls and ids[1, -1] == sep and (ids[1] != pad).all()
    assert ids[1, 1:4].tolist() == [vocabulary.index(w) for w in ("a", "blue", "square")]


def test_padding_is_masked_inside_the_backbone(encoder, preset_dir):
    """A text's tokens do not depend on how much padding follows it."""
    longer = HubTextEncoder(str(preset_dir), sequence_length=SEQUENCE_LENGTH + 8)
    short = encoder(tf.constant(TEXTS[:1])).numpy()[0, :5]
    padded = longer(tf.constant(TEXTS[:1])).numpy()[0, :5]
    np.testing.assert_allclose(padded, short, atol=1e-5)
    assert np.abs(short).max() > 1e-2


def test_token_ids_in_give_what_raw_text_gives(encoder):
    ids = encoder.tokenize(tf.constant(TEXTS))["token_ids"]
    np.testing.assert_allclose(encoder(ids).numpy(), encoder(tf.constant(TEXTS)).numpy(), atol=1e-6)
    np.testing.assert_array_equal(encoder.compute_mask(ids).numpy(), ids.numpy() != 0)


def test_pooled_features(encoder, preset_dir):
    tokens = encoder(tf.constant(TEXTS)).numpy()
    mask = encoder.tokenize(tf.constant(TEXTS))["padding_mask"].numpy()[..., None]
    mean = HubTextEncoder(str(preset_dir), sequence_length=SEQUENCE_LENGTH, pooling="mean")
    first = HubTextEncoder(str(preset_dir), sequence_length=SEQUENCE_LENGTH, pooling="first")
    expected = (tokens * mask).sum(1) / mask.sum(1)
    np.testing.assert_allclose(mean(tf.constant(TEXTS)).numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(first(tf.constant(TEXTS)).numpy(), tokens[:, 0], atol=1e-6)
    assert mean.compute_mask(tf.constant(TEXTS)) is None
    # In a functional model, the Keras mask reaches GlobalAveragePooling1D: the same mean.
    text = keras.Input(shape=(), dtype="string")
    pooled = keras.layers.GlobalAveragePooling1D()(encoder(text))
    np.testing.assert_allclose(
        keras.Model(text, pooled)(tf.constant(TEXTS)).numpy(), expected, atol=1e-5
    )


def test_backbone_is_frozen_unless_fine_tuned(encoder, preset_dir):
    assert encoder.trainable_weights == [] and not encoder.fine_tune
    assert len(encoder.non_trainable_weights) == len(encoder.backbone.weights)
    # Frozen, its dropout stays off too: training=True changes nothing.
    text = tf.constant(TEXTS)
    np.testing.assert_allclose(encoder(text, training=True), encoder(text), atol=1e-6)
    tuned = HubTextEncoder(str(preset_dir), sequence_length=SEQUENCE_LENGTH, fine_tune=True)
    # Every weight trains but BERT's pooler, which the sequence output does not read.
    pooler = tuned.backbone.get_layer("pooled_dense")
    assert tuned.fine_tune and not pooler.trainable
    assert len(tuned.trainable_weights) == len(tuned.backbone.weights) - len(pooler.weights)
    assert np.abs(tuned(text, training=True) - tuned(text)).max() > 1e-4  # dropout
    projected = HubTextEncoder(str(preset_dir), sequence_length=SEQUENCE_LENGTH, hidden_dim=8)
    assert [w.path for w in projected.trainable_weights] == [
        w.path for w in projected.projection.weights
    ]
    assert tuple(projected(tf.constant(TEXTS)).shape) == (2, SEQUENCE_LENGTH, 8)


@pytest.mark.slow
def test_a_small_classifier_trains_with_the_backbone_frozen(trained):
    losses, before, after = trained["losses"], trained["before"], trained["after"]
    assert losses[-1] < losses[0] - 0.05, losses
    changed = {path for path in before if not np.array_equal(before[path], after[path])}
    assert changed and all(path.startswith("label/") for path in changed), sorted(changed)
    backbone = trained["model"].get_layer("hub_text_encoder").backbone
    assert len(backbone.weights) > 20 and not changed & {w.path for w in backbone.weights}


def test_fine_tuning_trains_the_backbone(preset_dir):
    """Two eager steps (no traced train function: seconds faster) move the backbone's weights."""
    model = text_classifier(preset_dir, fine_tune=True)
    backbone = model.get_layer("hub_text_encoder").backbone
    assert {id(w) for w in backbone.weights} - {id(w) for w in model.trainable_weights} == {
        id(w) for w in backbone.non_trainable_weights
    }
    before = [keras.ops.convert_to_numpy(w) for w in backbone.trainable_weights]
    text, labels = tf.constant(TRAIN_TEXTS), tf.constant(TRAIN_LABELS)
    for _ in range(2):
        with tf.GradientTape() as tape:
            probabilities = model(text, training=True)
            loss = keras.losses.sparse_categorical_crossentropy(labels, probabilities)
        gradients = tape.gradient(loss, model.trainable_weights)
        model.optimizer.apply(gradients, model.trainable_weights)
    after = [keras.ops.convert_to_numpy(w) for w in backbone.trainable_weights]
    moved = sum(not np.array_equal(b, a) for b, a in zip(before, after, strict=True))
    assert before and moved > len(before) // 2, (moved, len(before))


def test_config_round_trip(encoder):
    restored = run_serialization_test(encoder)
    config = encoder.get_config()
    assert config["packer"]["config"]["truncate"] == "waterfall"
    assert config["sequence_length"] == SEQUENCE_LENGTH and config["fine_tune"] is False
    assert restored.backbone.count_params() == encoder.backbone.count_params()


@pytest.mark.slow
def test_keras_file_holds_weights_and_vocabulary_without_the_preset(trained, tmp_path, monkeypatch):
    """The `.keras` file loads with the preset gone: nothing is read from it, nor downloaded."""
    model = trained["model"]

    def no_preset(*args, **kwargs):
        raise AssertionError("loading a .keras file must not read the preset")

    monkeypatch.setattr(hub_text_encoder, "load_preset_parts", no_preset)
    monkeypatch.setattr(hub_text_encoder, "resolve_preset", no_preset)
    model.save(tmp_path / "model.keras")
    restored = keras.saving.load_model(tmp_path / "model.keras")
    text = tf.constant(PARITY_TEXTS + TRAIN_TEXTS)
    np.testing.assert_allclose(restored(text).numpy(), model(text).numpy(), atol=1e-6)
    assert json.dumps(restored.get_config(), sort_keys=True) == json.dumps(
        model.get_config(), sort_keys=True
    )
    encoder = restored.get_layer("hub_text_encoder")
    original = model.get_layer("hub_text_encoder")
    assert encoder.tokenizer.get_vocabulary() == original.tokenizer.get_vocabulary()
    pairs = zip(encoder.backbone.weights, original.backbone.weights, strict=True)
    for weight, expected in pairs:
        np.testing.assert_array_equal(*(keras.ops.convert_to_numpy(w) for w in (weight, expected)))
    with zipfile.ZipFile(tmp_path / "model.keras") as archive:
        assert "assets/layers/hub_text_encoder/tokenizer/vocabulary.txt" in archive.namelist()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sequence_length": 33}, "max_sequence_length \\(32\\)"),
        ({"sequence_length": 2}, "between 3"),
        ({"pooling": "max"}, "`pooling` must be one of"),
        ({"truncate": "shortest"}, "`truncate` must be one of"),
    ],
)
def test_bad_arguments_are_config_errors(preset_dir, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        HubTextEncoder(str(preset_dir), **{"sequence_length": SEQUENCE_LENGTH, **kwargs})


@pytest.mark.slow
def test_texts_are_told_apart(trained):
    """The trained model's probabilities differ between texts (the parity tests rely on it)."""
    probabilities = trained["model"](tf.constant(PARITY_TEXTS)).numpy()
    assert np.abs(probabilities - probabilities[:1]).max() > 1e-3
    predicted = trained["model"](tf.constant(TRAIN_TEXTS)).numpy().argmax(-1)
    assert set(predicted) == {0, 1}


def test_no_xla(encoder):
    """String ops have no XLA kernels: `jit_compile="auto"` must stay off, GPU or not."""
    assert encoder.supports_jit is False


def test_raw_text_functional_graph_gets_the_mask_as_a_tensor(encoder, preset_dir):
    """`return_mask=True`: the mask a classifier graph reads (fusion, "text present")."""
    # A fresh layer: Keras sizes a layer's symbolic outputs by its first call, and the
    # module's `encoder` was first called without return_mask (see HubTextEncoder.call).
    encoder = HubTextEncoder(str(preset_dir), sequence_length=SEQUENCE_LENGTH)
    text = keras.Input(shape=(), dtype="string")
    tokens, mask = encoder(text, return_mask=True)
    assert tuple(mask.shape) == (None, SEQUENCE_LENGTH) and mask.dtype == "bool"
    present = keras.ops.any(mask, axis=1)
    got_tokens, got_mask, got_present = keras.Model(text, [tokens, mask, present])(
        tf.constant(TEXTS + [""])
    )
    ids = encoder.tokenize(tf.constant(TEXTS + [""]))["token_ids"].numpy()
    np.testing.assert_array_equal(got_mask.numpy(), ids != 0)
    assert got_present.numpy().all()  # [CLS] [SEP]: an empty text is not all padding
    assert encoder.num_special_tokens == 2 and encoder.reads_raw_text
    np.testing.assert_allclose(got_tokens, encoder(tf.constant(TEXTS + [""])), atol=1e-6)


def test_choose_sequence_length(preset_dir):
    # "great red circle": 3 tokens + [CLS] [SEP] = 5 -> 8; the longest training text: 7 + 2 -> 16.
    assert choose_sequence_length(preset_dir, ["great red circle"]) == 8
    assert choose_sequence_length(preset_dir, TRAIN_TEXTS, percentile=100) == 16
    assert choose_sequence_length(preset_dir, [" ".join(["cat"] * 100)]) == 32  # the backbone's
