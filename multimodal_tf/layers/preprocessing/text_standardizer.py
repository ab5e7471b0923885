"""In-graph text standardization shared by `tf.data` and the serving graph."""

import keras
import tensorflow as tf

# RE2 syntax (tf.strings.regex_replace). Order matters: URLs before punctuation.
_URL = r"(https?://|www\.)\S+"
_MENTION = r"@\w+"
_NON_WORD = r"[^\pL\pN\s]+"
_SPACES = r"\s+"


@keras.saving.register_keras_serializable(package="multimodal_tf")
class TextStandardizer(keras.layers.Layer):
    """Lower-cases and cleans raw UTF-8 text with core TensorFlow string ops.

    URLs become the token `xurl`, @mentions become `xuser`, `#` of hashtags and
    other punctuation become spaces, whitespace is collapsed. It runs on a
    scalar or a batch of strings, inside `tf.data` or an exported SavedModel,
    and never calls Python.

    Args:
        lowercase: bool. Lower-case the text (Unicode-aware).
        replace_urls: bool. Replace URLs with the token `xurl`.
        replace_mentions: bool. Replace `@name` with the token `xuser`.

    Example:
    >>> layer = TextStandardizer()
    >>> layer(tf.constant(["Look @bob: https://t.co/x #Happy!"])).numpy()
    array([b'look xuser xurl happy'], dtype=object)
    """

    def __init__(self, lowercase=True, replace_urls=True, replace_mentions=True, **kwargs):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        self.lowercase = lowercase
        self.replace_urls = replace_urls
        self.replace_mentions = replace_mentions

    def call(self, inputs):
        text = tf.convert_to_tensor(inputs, dtype=tf.string)
        if self.lowercase:
            text = tf.strings.lower(text, encoding="utf-8")
        if self.replace_urls:
            text = tf.strings.regex_replace(text, _URL, " xurl ")
        if self.replace_mentions:
            text = tf.strings.regex_replace(text, _MENTION, " xuser ")
        text = tf.strings.regex_replace(text, _NON_WORD, " ")
        text = tf.strings.regex_replace(text, _SPACES, " ")
        return tf.strings.strip(text)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "lowercase": self.lowercase,
                "replace_urls": self.replace_urls,
                "replace_mentions": self.replace_mentions,
            }
        )
        return config
