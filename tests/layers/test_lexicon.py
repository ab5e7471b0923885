import pytest
import tensorflow as tf

from multimodal_tf.errors import ConfigError
from multimodal_tf.layers.preprocessing.lexicon import (
    LexiconTagger,
    load_lexicon,
    surviving_entries,
    valence_token,
)
from multimodal_tf.layers.preprocessing.text_standardizer import TextStandardizer
from tests.helpers import run_serialization_test


def tag(tagger, texts):
    return tagger(tf.strings.split(tf.constant(texts))).to_list()


def test_valence_tokens_round_clip_and_keep_the_sign():
    assert [valence_token(v) for v in (2.7, -0.4, 0.2, 3.6, -9.0)] == [
        "^lex+3",
        "^lex-1",
        "^lex+1",
        "^lex+4",
        "^lex-4",
    ]


def test_tagger_tags_lexicon_words_in_order_and_negators_reach_three_words():
    tagger = LexiconTagger({"happy": 2.7, "bad": -2.5, "😍": 2.0}, negators=["not", "never"])
    assert tag(tagger, ["so happy 😍", "not bad , not happy", "", "zzz"]) == [
        [b"^lex+3", b"^lex+2"],
        # -2.5 * -0.74 = +1.85; 2.7 * -0.74 = -2.0 (the second `not`)
        [b"^lex+2", b"^lex-2"],
        [],
        [],
    ]
    # Three words before it reach a lexicon word; a fourth does not.
    assert tag(tagger, ["never a b happy", "never a b c happy"]) == [[b"^lex-2"], [b"^lex+3"]]


def test_tagger_runs_in_a_graph_and_round_trips_its_config():
    tagger = LexiconTagger({"good": 1.9}, negators=["not"], window=1)
    words = tf.data.Dataset.from_tensor_slices(["not good", "good"]).batch(2).map(tf.strings.split)
    assert next(iter(words.map(tagger))).to_list() == [[b"^lex-1"], [b"^lex+2"]]
    restored = run_serialization_test(tagger)
    assert restored.lexicon == {"good": 1.9} and restored.window == 1


def test_tagger_rejects_an_empty_lexicon():
    with pytest.raises(ValueError, match="at least one word"):
        LexiconTagger({})


def test_vader_lexicon_has_words_and_emoji_and_keeps_what_survives_standardization():
    lexicon = load_lexicon("vader")
    assert lexicon["happy"] == 2.7 and lexicon["sad"] == -2.1
    assert lexicon["\U0001f60d"] > 0  # smiling face with heart-eyes, scored by its name
    assert ":)" in lexicon
    standardized = surviving_entries(lexicon, TextStandardizer())
    assert ":)" not in standardized and standardized["happy"] == 2.7
    assert 7000 < len(standardized) < len(lexicon)
    # Emoticons under the standardizer's tokens: the mean of the entries that are only
    # that emoticon (:) 2.0, :-) 1.3, =) 2.2, ...), not of `>:)` (0.4).
    assert 1.5 < standardized["xsmile"] < 2.5 and standardized["xfrown"] < -1.5
    assert standardized["xheart"] == lexicon["<3"]
    assert "xsmile" not in surviving_entries(lexicon, TextStandardizer(emoticons=False))


def test_a_lexicon_file_is_read_and_bad_lines_name_file_and_line(tmp_path):
    path = tmp_path / "lexicon.tsv"
    path.write_text("great\t3.1\textra\tcolumns\nmeh\t0\n\nawful\t-3\n", encoding="utf-8")
    assert load_lexicon(str(path)) == {"great": 3.1, "awful": -3.0}
    path.write_text("great\t3.1\nawful -3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"lexicon.tsv, line 2: expected word<TAB>valence"):
        load_lexicon(str(path))
    with pytest.raises(ConfigError, match="'missing.tsv' is neither 'vader' nor an existing file"):
        load_lexicon("missing.tsv")


@pytest.mark.parametrize(
    "lexicon, text_encoder, tagged",
    [("vader", "bag", True), ("none", "bag", False), ("", "bag", False), ("vader", "lstm", False)],
)
def test_the_run_config_puts_the_lexicon_in_the_bag_only(lexicon, text_encoder, tagged, capsys):
    from multimodal_tf.config import RunConfig
    from multimodal_tf.training.run_model import adapted_preprocessor

    config = RunConfig()
    config.data.lexicon, config.model.text_encoder = lexicon, text_encoder
    preprocessor = adapted_preprocessor(config, ["so happy", "I don't like it", "sad"])
    assert (preprocessor.lexicon_tagger is not None) is tagged
    said = "so the lexicon is not used" in capsys.readouterr().out
    assert said is (lexicon == "vader" and text_encoder == "lstm")
    assert any(token.startswith("^lex") for token in preprocessor.vocabulary) is tagged
    if tagged:  # spaCy's negators, as the standardized text spells them
        assert "not" in preprocessor.lexicon_tagger.negators
        ids = preprocessor({"text": tf.constant(["I don't like it"])})["token_ids"][0]
        # `like` (+2.0) after `do not`: -1.48, the `^lex-1` token
        assert preprocessor.vocabulary.index("^lex-1") + 2 in ids.numpy().tolist()
