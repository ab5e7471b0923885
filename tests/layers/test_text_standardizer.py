import tensorflow as tf

from multimodal_tf.layers.preprocessing.text_standardizer import TextStandardizer
from tests.helpers import run_layer_test


def standardize(texts, **kwargs):
    out = TextStandardizer(**kwargs)(tf.constant(texts))
    return [text.decode("utf-8") for text in out.numpy()]


def test_cleans_tweet_like_text():
    assert standardize(["RT @bob: LOVE this!!! https://t.co/xYz #Happy #gym"]) == [
        "rt xuser love this xurl happy gym"
    ]


def test_unicode_is_lowercased_and_kept():
    assert standardize(["Ça VA très BIEN, Привет 日本"]) == ["ça va très bien привет 日本"]


def test_empty_and_punctuation_only_text_become_empty():
    assert standardize(["", "!!! ???"]) == ["", ""]


def test_options_can_be_switched_off():
    assert standardize(["Hi @Bob"], lowercase=False, replace_mentions=False) == ["Hi Bob"]


def test_scalar_input_in_tf_data():
    dataset = tf.data.Dataset.from_tensor_slices(["A  B"]).map(TextStandardizer())
    assert next(iter(dataset)).numpy() == b"a b"


def test_layer_and_config():
    run_layer_test(TextStandardizer, {"replace_urls": False}, tf.constant(["a", "b"]), (2,))
