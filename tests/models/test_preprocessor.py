import numpy as np
import pytest
import tensorflow as tf

from multimodal_tf.models.preprocessor import MultimodalPreprocessor
from tests.conftest import image_bytes
from tests.helpers import run_serialization_test


@pytest.fixture
def preprocessor():
    layer = MultimodalPreprocessor(sequence_length=5, image_size=(8, 8))
    layer.adapt(["a red circle", "a red square", "a blue square", "@x a"], min_frequency=1)
    return layer


def test_vocabulary_is_frequency_ordered_and_deterministic(preprocessor):
    assert preprocessor.vocabulary == ["a", "red", "square", "blue", "circle", "xuser"]
    assert preprocessor.vocabulary_size == 8


def test_min_frequency_drops_rare_tokens():
    layer = MultimodalPreprocessor()
    layer.adapt(["a red circle", "a red square"], min_frequency=2)
    assert layer.vocabulary == ["a", "red"]


def test_outputs_token_ids_and_image(preprocessor):
    out = preprocessor(
        {"text": tf.constant(["A RED triangle!"]), "image": tf.constant([image_bytes()])}
    )
    assert out["token_ids"].numpy().tolist() == [[2, 3, 1, 1, 0]]  # "triangle", "!" are OOV (1)
    assert out["image"].shape == (1, 8, 8, 3)


def test_tf_data_per_sample_equals_batched_call(preprocessor):
    raw = {"text": ["a red square", "blue"], "image": [image_bytes(), image_bytes(format="JPEG")]}
    mapped = tf.data.Dataset.from_tensor_slices(raw).map(preprocessor).batch(2)
    per_sample = next(iter(mapped))
    batched = preprocessor({key: tf.constant(value) for key, value in raw.items()})
    for key in ("token_ids", "image"):
        np.testing.assert_array_equal(per_sample[key].numpy(), batched[key].numpy())


def test_config_round_trip_keeps_the_vocabulary(preprocessor):
    restored = run_serialization_test(preprocessor)
    assert restored.vocabulary == preprocessor.vocabulary
    text = tf.constant(["red circle"])
    np.testing.assert_array_equal(
        restored({"text": text})["token_ids"], preprocessor({"text": text})["token_ids"]
    )


def test_reserved_tokens_are_rejected():
    with pytest.raises(ValueError, match="OOV"):
        MultimodalPreprocessor(vocabulary=["a", "[UNK]"])


def test_unadapted_vocabulary_size_is_a_clear_error():
    with pytest.raises(ValueError, match="adapt"):
        MultimodalPreprocessor().vocabulary_size  # noqa: B018


def test_text_that_standardizes_to_nothing_keeps_the_sequence_length(preprocessor):
    # Real tweets can be all punctuation.
    raw = {"text": ["... --- ,,,", "a red"], "image": [image_bytes(), image_bytes()]}
    batched = next(iter(tf.data.Dataset.from_tensor_slices(raw).map(preprocessor).batch(2)))
    assert batched["token_ids"].numpy().tolist() == [[0, 0, 0, 0, 0], [2, 3, 0, 0, 0]]


def test_ngram_features_are_words_bigrams_and_char_ngrams():
    from multimodal_tf.models.preprocessor import text_feature_strings

    rows = text_feature_strings(tf.constant(["so hi", ""]), "ngrams").to_list()
    assert rows[1] == []
    words_and_bigrams = [b"so", b"hi", b"so hi"]
    chars = [b"~ s", b"~so", b"~o ", b"~ so", b"~so ", b"~ so "]
    chars += [b"~ h", b"~hi", b"~i ", b"~ hi", b"~hi ", b"~ hi "]
    assert rows[0] == words_and_bigrams + chars


def test_ngram_preprocessor_drops_unknown_ngrams_and_chooses_its_length():
    texts = ["red fire", "red fire hot", "blue ice", "blue ice cold"]
    layer = MultimodalPreprocessor(sequence_length=None, image_size=(8, 8), text_features="ngrams")
    layer.adapt(texts, min_frequency=2)
    assert "red fire" in layer.vocabulary and "~red" in layer.vocabulary
    assert "hot" not in layer.vocabulary  # seen once
    # 99th percentile of in-vocabulary features per text, rounded up to a multiple of 8.
    assert layer.sequence_length % 8 == 0 and layer.sequence_length >= 8
    ids = layer({"text": tf.constant(["red fire zzz", "zzz"])})["token_ids"].numpy()
    assert ids.shape == (2, layer.sequence_length)
    assert 1 not in ids  # unknown n-grams are dropped, not mapped to OOV
    assert (ids[1] == 0).all() and (ids[0] > 0).sum() > 3
    restored = MultimodalPreprocessor.from_config(layer.get_config())
    np.testing.assert_array_equal(
        restored({"text": tf.constant(["red fire zzz"])})["token_ids"], ids[:1]
    )


def test_adapt_bakes_spacy_norms_into_the_graph():
    layer = MultimodalPreprocessor(sequence_length=4, image_size=(8, 8))
    layer.adapt(["I don't know", "dont go", "do not go"], min_frequency=1, spacy_norms=True)
    assert layer.norm_table["don't"] == "do not"
    assert "don't" not in layer.vocabulary and "not" in layer.vocabulary
    restored = MultimodalPreprocessor.from_config(layer.get_config())
    ids = restored({"text": tf.constant(["dont"])})["token_ids"].numpy().tolist()
    assert ids == [[layer.vocabulary.index("do") + 2, layer.vocabulary.index("not") + 2, 0, 0]]


def test_unknown_text_features_are_rejected():
    with pytest.raises(ValueError, match="text_features.*'chars'"):
        MultimodalPreprocessor(text_features="chars")


def test_a_lexicon_adds_valence_tokens_to_the_word_group_of_ngram_features():
    lexicon = {"happy": 2.7, "sad": -2.1}
    layer = MultimodalPreprocessor(
        sequence_length=None, text_features="ngrams", lexicon=lexicon, lexicon_negators=["not"]
    )
    layer.adapt(["so happy", "not happy", "sad day"], min_frequency=1)
    features = layer.features(tf.constant(["not happy"])).to_list()[0]
    assert features[:3] == [b"not", b"happy", b"^lex-2"] and b"not happy" in features
    # Valence tokens are words to the bag: before the character n-grams.
    words = layer.vocabulary[: layer.num_word_features]
    assert {"^lex+3", "^lex-2"} <= set(words)
    restored = MultimodalPreprocessor.from_config(layer.get_config())
    text = {"text": tf.constant(["sad , not happy", "unseen words"])}
    np.testing.assert_array_equal(restored(text)["token_ids"], layer(text)["token_ids"])
    # Word features feed sequence encoders in text order: no lexicon there.
    words_only = MultimodalPreprocessor(text_features="words", lexicon=lexicon)
    assert words_only.lexicon_tagger is None
    assert words_only.get_config()["lexicon"] is None


def test_adapt_keeps_the_lexicon_words_standardized_text_can_hold():
    lexicon = {"happy": 2.7, ":)": 2.0, "ain't": -1.0}
    layer = MultimodalPreprocessor(sequence_length=None, text_features="ngrams", lexicon=lexicon)
    layer.adapt(["ain't happy :)"], min_frequency=1, spacy_norms=True)
    # The norm table turns `ain't` into two words; `:)` is the standardizer's `xsmile`.
    assert layer.lexicon_tagger.lexicon == {"happy": 2.7, "xsmile": 2.0}
    features = layer.features(tf.constant(["so happy :-)"])).to_list()[0]
    assert features[:5] == [b"so", b"happy", b"xsmile", b"^lex+3", b"^lex+2"]
    restored = MultimodalPreprocessor.from_config(layer.get_config())
    assert restored.lexicon_tagger.lexicon == {"happy": 2.7, "xsmile": 2.0}
    assert restored.emoticons is True
    # Without the emoticon rule `:)` loses its punctuation, so its entry cannot match.
    plain = MultimodalPreprocessor(
        sequence_length=None, text_features="ngrams", lexicon=lexicon, emoticons=False
    )
    plain.adapt(["ain't happy :)"], min_frequency=1, spacy_norms=True)
    assert plain.lexicon_tagger.lexicon == {"happy": 2.7}


def test_a_preprocessor_saved_before_the_emoticon_rule_standardizes_as_it_did():
    layer = MultimodalPreprocessor(sequence_length=None)
    layer.adapt(["ok <3 :)"], min_frequency=1)
    config = layer.get_config()
    del config["emoticons"]
    old = MultimodalPreprocessor.from_config(config)
    assert old.emoticons is False
    assert old.features(tf.constant(["ok <3 :)"])).to_list() == [[b"ok", b"xnum"]]
    assert layer.features(tf.constant(["ok <3 :)"])).to_list() == [[b"ok", b"xheart", b"xsmile"]]


def test_adapt_summary_names_vocabulary_length_and_coverage():
    layer = MultimodalPreprocessor(
        sequence_length=None, text_features="ngrams", lexicon={"happy": 2.7, ":)": 2.0}
    )
    assert "not adapted" in layer.describe_adapt()
    layer.adapt(["so happy :)", "a cat", "happy <3", "dog"], min_frequency=1)
    line = layer.describe_adapt()
    assert f"text: {len(layer.vocabulary):,} n-grams from 4 training texts" in line
    assert f"sequence length {layer.sequence_length}" in line
    assert "lexicon: 2 entries, a valence token in 50.0% of the texts" in line  # happy, xsmile
    assert "emoticons in 50.0%" in line
