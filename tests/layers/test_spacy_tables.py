import pytest
from spacy.lang.en.stop_words import STOP_WORDS

from multimodal_tf.layers.preprocessing.spacy_tables import build_norm_table, negation_words

CONTRACTIONS = {
    "don't": "do not",
    "dont": "do not",
    "can't": "can not",
    "cant": "can not",
    "won't": "will not",
    "wont": "will not",
    "i'm": "i am",
    "i've": "i have",
    "ive": "i have",
    "don’t": "do not",
    "gonna": "going to",
    "cannot": "can not",
    "yall": "you all",
}
PLAIN = ["happy", "sad", "!", "?", "😀", "xurl", "xuser", "its", "well"]
# Their norms live in spacy-lookups-data, which the table deliberately does not use.
SLANG = ["u", "ur", "cuz", "lol", "thx", "b4"]
TOKENS = list(CONTRACTIONS) + PLAIN + SLANG


@pytest.mark.parametrize("token", sorted(CONTRACTIONS))
def test_contractions_with_and_without_apostrophe_are_expanded(token):
    assert build_norm_table(TOKENS)[token] == CONTRACTIONS[token]


def test_plain_words_emoji_and_punctuation_are_left_out():
    table = build_norm_table(TOKENS)
    assert not set(PLAIN) & set(table)


def test_slang_without_lookups_data_is_left_out():
    assert build_norm_table(SLANG) == {}


def test_table_is_deterministic_and_sorted():
    first = build_norm_table(TOKENS)
    second = build_norm_table(reversed(TOKENS))
    assert list(first.items()) == list(second.items())
    assert list(first) == sorted(first)


def test_keys_and_values_are_whitespace_normalised():
    table = build_norm_table(TOKENS + ["wow!!", "well-known", "8am"])
    for token, replacement in table.items():
        assert token.split() == [token]
        assert replacement and replacement == " ".join(replacement.split())
        assert replacement == replacement.lower()


def test_accepts_a_generator_with_duplicates_and_empty_strings():
    table = build_norm_table(token for token in ["dont", "dont", "", "happy"])
    assert table == {"dont": "do not"}


@pytest.mark.parametrize("tokens", ["don't", ["do nt"], [None]])
def test_rejects_a_string_whitespace_and_non_strings(tokens):
    with pytest.raises(ValueError):
        build_norm_table(tokens)


def test_negation_words_are_sorted_stop_words():
    words = negation_words()
    assert words == sorted(words)
    assert set(words) <= STOP_WORDS
    assert {"not", "no", "never", "nor", "n't", "none", "nothing", "cannot"} <= set(words)
    assert "happy" not in words and "the" not in words
