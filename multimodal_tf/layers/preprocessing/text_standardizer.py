"""In-graph, social-media-aware text standardization shared by `tf.data` and serving."""

import string

import keras
import tensorflow as tf

# RE2 syntax (tf.strings.regex_replace): no look-around, no back-references in
# patterns. Order matters: URLs before camelCase before lower-casing before punctuation.
_CAMEL_CASE = r"(\p{Ll})(\p{Lu})"
_URL = r"(?i)(https?://|www\.)\S+"
_MENTION = r"@\w+"
_NUMBER = r"\b[0-9]+([.,:][0-9]+)*\b"
_APOSTROPHE = r"[\x{2019}\x{2018}`]"
_WORD_APOSTROPHE = r"(\pL)'(\pL)"
_KEEP_APOSTROPHE = "\x01"  # stands in for a word-internal apostrophe while punctuation goes
_SYMBOL = r"(\p{So})"
_NON_WORD = r"[^\pL\pN\s!?\p{So}\x01]+"
_SPACES = r"\s+"
# ASCII emoticons -> one word token each, before punctuation and numbers go (`<3` is not
# the number 3). In order: `:'(` before `:(`, `</3` before `<3`. A skeptical `:/` must
# follow a space or the start, so a truncated `http:/...` is not one.
EMOTICONS = (
    ("xcry", r"[:=]'-?[\(\[]+"),
    ("xsmile", r"[:=]'?[\-o^]?[\)\]\}]+|\(+-?:|\^_?\^"),
    ("xlaugh", r"[:=]-?[dD]+\b|\b[xX]-?D+\b"),
    ("xwink", r";-?[\)\]D]+"),
    ("xtongue", r"[:;=]-?[pP]+\b"),
    ("xkiss", r"[:;=]-?\*+"),
    ("xfrown", r"[:=]-?[\(\[\{]+"),
    ("xskeptic", r"(^|\s)[:=]-?[/\\]+"),
    ("xbrokenheart", r"</3+"),
    ("xheart", r"<3+"),
)
EMOTICON_TOKENS = tuple(token for token, _ in EMOTICONS)
# Twitter's API and scraped pages send `<`, `>` and `&` HTML-escaped (`&lt;3`, `&amp;`);
# unescaped first, so `&lt;3` is a heart and `&amp;` not the word `amp`. `&amp;` goes last.
HTML_ENTITIES = (
    ("&lt;", "<"),
    ("&gt;", ">"),
    ("&quot;", '"'),
    ("&#0*39;", "'"),
    ("&apos;", "'"),
    ("&amp;", "&"),
)


@keras.saving.register_keras_serializable(package="multimodal_tf")
class TextStandardizer(keras.layers.Layer):
    """Cleans raw UTF-8 posts for a vocabulary, with core TensorFlow string ops only.

    Rules, each a switch: `#camelCase` hashtags are split into words
    (`#LegDay` -> `leg day`) and the `#` dropped; text is lower-cased
    (Unicode-aware); URLs become `xurl`, @mentions `xuser`, stand-alone numbers
    `xnum`; a letter repeated three or more times is squeezed to two
    (`soooo` -> `soo`); runs of `!` or `?` become one `!` / `?` token; emoji
    and other symbols become tokens of their own; ASCII emoticons become one
    word each (`:-)` and `(:` -> `xsmile`, `:(` -> `xfrown`, `:D` and `xD` ->
    `xlaugh`, `<3` -> `xheart`; `EMOTICONS` lists all ten); an apostrophe inside a word
    is kept (`don't`), other punctuation becomes a space. Last, whole tokens
    are replaced through `norm_table`, which `MultimodalPreprocessor.adapt()`
    builds with spaCy at fit time (`don't` -> `do not`, `cuz` -> `because`);
    spaCy itself never runs here, so this works inside an exported SavedModel.

    Args:
        lowercase: bool. Lower-case the text.
        replace_urls: bool. Replace URLs with the token `xurl`.
        replace_mentions: bool. Replace `@name` with the token `xuser`.
        split_hashtags: bool. Split `#camelCase` words and drop `#`.
        replace_numbers: bool. Replace stand-alone numbers with `xnum`.
        squeeze_repeats: bool. Squeeze letters repeated 3+ times to two and
            runs of `!`/`?` to one.
        keep_symbols: bool. Keep `!`, `?`, emoji and other symbols as tokens
            (else they become spaces).
        emoticons: bool. Replace ASCII emoticons with word tokens (else their
            punctuation goes and `<3` is a number), after unescaping the HTML
            entities of `<`, `>`, `&` and quotes (`&lt;3`, `&amp;`) that
            Twitter's API and scraped pages send. A layer saved before this
            option existed loads with it off, so it standardizes as it did.
        norm_table: dict or None. `{token: replacement}` applied to whole
            tokens after the rules above; replacements may hold several words.

    Example:
    >>> layer = TextStandardizer(norm_table={"don't": "do not"})
    >>> layer(tf.constant(["Don't @bob: https://t.co/x #SoHappy!!! 100 😍 <3"])).numpy()
    array([b'do not xuser xurl so happy ! xnum \\xf0\\x9f\\x98\\x8d xheart'], dtype=object)
    """

    def __init__(
        self,
        lowercase=True,
        replace_urls=True,
        replace_mentions=True,
        split_hashtags=True,
        replace_numbers=True,
        squeeze_repeats=True,
        keep_symbols=True,
        emoticons=True,
        norm_table=None,
        **kwargs,
    ):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        self.lowercase = lowercase
        self.replace_urls = replace_urls
        self.replace_mentions = replace_mentions
        self.split_hashtags = split_hashtags
        self.replace_numbers = replace_numbers
        self.squeeze_repeats = squeeze_repeats
        self.keep_symbols = keep_symbols
        self.emoticons = bool(emoticons)
        self.norm_table = None
        self._table = None
        self.set_norm_table(norm_table)

    def set_norm_table(self, norm_table):
        """Sets (or with `None` / `{}` removes) the whole-token replacement table."""
        norm_table = {str(key): str(value) for key, value in (norm_table or {}).items()}
        for key, value in norm_table.items():
            if not key or key.split() != [key] or not value.strip():
                raise ValueError(
                    f"`norm_table` keys must be single non-empty tokens and values non-empty; "
                    f"received {key!r}: {value!r}."
                )
        self.norm_table = dict(sorted(norm_table.items())) or None
        self._table = None
        if self.norm_table:
            self._table = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(
                    tf.constant(list(self.norm_table), tf.string),
                    tf.constant(list(self.norm_table.values()), tf.string),
                ),
                default_value="",
            )

    def call(self, inputs):
        text = tf.convert_to_tensor(inputs, dtype=tf.string)
        if self.emoticons:
            for entity, character in HTML_ENTITIES:
                text = tf.strings.regex_replace(text, entity, character)
        if self.replace_urls:
            text = tf.strings.regex_replace(text, _URL, " xurl ")
        if self.replace_mentions:
            text = tf.strings.regex_replace(text, _MENTION, " xuser ")
        if self.emoticons:
            for token, pattern in EMOTICONS:
                prefix = r"\1 " if pattern.startswith("(^|") else " "
                text = tf.strings.regex_replace(text, pattern, f"{prefix}{token} ")
        if self.split_hashtags:
            text = tf.strings.regex_replace(text, _CAMEL_CASE, r"\1 \2")
        if self.lowercase:
            text = tf.strings.lower(text, encoding="utf-8")
        if self.replace_numbers:
            text = tf.strings.regex_replace(text, _NUMBER, " xnum ")
        if self.squeeze_repeats:
            letters = string.ascii_lowercase if self.lowercase else string.ascii_letters
            for letter in letters:  # RE2 has no (.)\1 back-reference
                text = tf.strings.regex_replace(text, letter + "{3,}", letter * 2)
        text = tf.strings.regex_replace(text, _APOSTROPHE, "'")
        for _ in range(2):  # twice: matches overlap in "rock'n'roll"
            text = tf.strings.regex_replace(
                text, _WORD_APOSTROPHE, r"\1" + _KEEP_APOSTROPHE + r"\2"
            )
        if self.keep_symbols:
            text = tf.strings.regex_replace(text, r"!+" if self.squeeze_repeats else "!", " ! ")
            text = tf.strings.regex_replace(text, r"\?+" if self.squeeze_repeats else r"\?", " ? ")
            text = tf.strings.regex_replace(text, _SYMBOL, r" \1 ")
            text = tf.strings.regex_replace(text, _NON_WORD, " ")
        else:
            text = tf.strings.regex_replace(text, r"[^\pL\pN\s\x01]+", " ")
        text = tf.strings.regex_replace(text, _KEEP_APOSTROPHE, "'")
        text = tf.strings.strip(tf.strings.regex_replace(text, _SPACES, " "))
        if self._table is not None:
            text = self._replace_tokens(text)
        return text

    def _replace_tokens(self, text):
        is_scalar = text.shape.rank == 0
        tokens = tf.strings.split(text[None] if is_scalar else text)
        replaced = self._table.lookup(tokens.flat_values)
        flat = tf.where(tf.strings.length(replaced) > 0, replaced, tokens.flat_values)
        joined = tf.strings.reduce_join(tokens.with_flat_values(flat), axis=-1, separator=" ")
        return joined[0] if is_scalar else joined

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "lowercase": self.lowercase,
                "replace_urls": self.replace_urls,
                "replace_mentions": self.replace_mentions,
                "split_hashtags": self.split_hashtags,
                "replace_numbers": self.replace_numbers,
                "squeeze_repeats": self.squeeze_repeats,
                "keep_symbols": self.keep_symbols,
                "emoticons": self.emoticons,
                "norm_table": self.norm_table,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config.setdefault("emoticons", False)  # saved before the option: standardize as then
        return cls(**config)
