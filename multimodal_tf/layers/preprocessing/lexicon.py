"""A sentiment lexicon as in-graph features: each lexicon word adds a valence token.

A model trained on a few thousand posts has seen most sentiment words a handful
of times or never. A lexicon brings what people rated them: VADER's
(Hutto & Gilbert, ICWSM 2014; MIT licence, shipped in the `vaderSentiment`
package) rates 7,500 words, slang and emoticons of social-media English from -4
to +4, and its emoji are scored through their names. `LexiconTagger` turns
every word of a standardized text found in the lexicon into one of eight
tokens, `^lex+1` ... `^lex+4` and `^lex-1` ... `^lex-4` (its valence, rounded),
with the sign flipped and the valence damped by VADER's 0.74 when one of the
three words before it is a negator ("not happy"). The bag of n-grams counts
those tokens as it counts words, so a linear model learns one weight per
valence bucket and scores a word it never saw in training by its rating.

The lexicon is read at fit time (`load_lexicon`) and stored in the
preprocessor's config; in the graph it is two `tf.lookup.StaticHashTable`s and
core TF ops, so an exported SavedModel needs neither the package nor the file.
"""

import importlib.resources
import re
from pathlib import Path

import keras
import tensorflow as tf

from multimodal_tf.errors import ConfigError
from multimodal_tf.layers.preprocessing.text_standardizer import EMOTICONS

PREFIX = "^lex"  # `^` never survives standardization, so no text forges these tokens
NEGATION_SCALAR = -0.74  # VADER's: a negated word keeps about three quarters of its valence
MAX_VALENCE = 4
BUILTIN = ("vader",)


def valence_token(valence):
    """`2.7` -> `"^lex+3"`, `-0.4` -> `"^lex-1"`: rounded, clipped to +-4, never 0."""
    bucket = max(-MAX_VALENCE, min(MAX_VALENCE, round(valence)))
    if bucket == 0:
        bucket = 1 if valence > 0 else -1
    return f"{PREFIX}{bucket:+d}"


def load_lexicon(source):
    """Reads a word -> valence lexicon at fit time.

    Args:
        source: str. `"vader"`: VADER's lexicon and its emoji (each scored as
            the sum of its name's word valences, as VADER scores them), from
            the installed `vaderSentiment` package. Else the path of a UTF-8
            text file with one `word<TAB>valence` per line (more columns are
            ignored, so VADER's own file reads as it is); valences are on
            VADER's -4 .. +4 scale (larger ones are clipped).

    Returns:
        dict. `{word: valence}`, zero valences left out. `MultimodalPreprocessor.adapt()`
        keeps the entries its standardizer leaves matchable (`surviving_entries`).

    Raises:
        ConfigError: the file is missing, or a line has no tab-separated
            number (the message names the file and the line).

    Example:
    >>> lexicon = load_lexicon("vader")
    >>> lexicon["happy"], lexicon["sad"]
    (2.7, -2.1)
    """
    if source == "vader":
        folder = importlib.resources.files("vaderSentiment")
        lexicon = _read(folder / "vader_lexicon.txt", "vaderSentiment's vader_lexicon.txt")
        for line in (folder / "emoji_utf8_lexicon.txt").read_text("utf-8").splitlines():
            emoji, _, name = line.partition("\t")
            valence = sum(lexicon.get(word, 0.0) for word in name.split())
            if emoji.strip() and valence:
                lexicon[emoji.strip()] = round(valence, 4)
    else:
        path = Path(source)
        if not path.is_file():
            raise ConfigError(
                f"data.lexicon: {source!r} is neither {' nor '.join(map(repr, BUILTIN))} nor "
                "an existing file of word<TAB>valence lines."
            )
        lexicon = _read(path, str(path))
    return {word: valence for word, valence in lexicon.items() if valence}


def surviving_entries(lexicon, standardizer):
    """The entries of `lexicon` in the form `standardizer` leaves them.

    A word is kept if the standardizer leaves it unchanged as one token; only
    those can appear in standardized text (with a spaCy norm table `ain't`
    becomes two words). With the standardizer's `emoticons` on, the entries
    that are one emoticon and nothing else (`:)`, `:-)`, `=)`; not `>:)`) are
    kept under its word token (`xsmile`), with their mean valence.
    """
    words = list(lexicon)
    standardized = standardizer(tf.constant(words)).numpy()
    kept = {
        word: lexicon[word]
        for word, text in zip(words, standardized, strict=True)
        if text.decode("utf-8") == word
    }
    if getattr(standardizer, "emoticons", False):
        for token, pattern in EMOTICONS:
            valences = [lexicon[word] for word in words if re.fullmatch(pattern, word)]
            if valences and token not in kept:
                kept[token] = round(sum(valences) / len(valences), 4)
    return kept


def _read(path, name):
    lexicon = {}
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            fields = line.rstrip("\n").split("\t")
            try:
                valence = float(fields[1])
            except (IndexError, ValueError):
                raise ConfigError(
                    f"{name}, line {number}: expected word<TAB>valence, got {line.strip()!r}."
                ) from None
            if fields[0].strip():
                lexicon[fields[0].strip()] = valence
    if not lexicon:
        raise ConfigError(f"{name} holds no word<TAB>valence line.")
    return lexicon


@keras.saving.register_keras_serializable(package="multimodal_tf")
class LexiconTagger(keras.layers.Layer):
    """Words -> the valence tokens of those found in a lexicon, negation-aware.

    Takes ragged `[batch, None]` words of standardized text and returns ragged
    `[batch, None]` tokens: one `^lex+N` / `^lex-N` per lexicon word, in text
    order (see the module docstring). A word with a negator among the
    `window` words before it gets the valence `-0.74` times its own.

    Args:
        lexicon: dict. `{word: valence}`, e.g. `load_lexicon("vader")`.
        negators: list of str. Words that negate the words after them, as
            they appear in standardized text (`"don't"` is `"do not"` there).
        window: int. How many words before a lexicon word a negator reaches.

    Example:
    >>> tagger = LexiconTagger({"happy": 2.7, "bad": -2.5}, negators=["not"])
    >>> words = tf.strings.split(tf.constant(["so happy", "not bad , not happy"]))
    >>> tagger(words).to_list()
    [[b'^lex+3'], [b'^lex+2', b'^lex-2']]
    """

    def __init__(self, lexicon, negators=(), window=3, **kwargs):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        if not lexicon:
            raise ValueError("`lexicon` must hold at least one word.")
        if window < 0:
            raise ValueError(f"`window` must be 0 or more; received {window}.")
        self.lexicon = {str(word): float(valence) for word, valence in sorted(lexicon.items())}
        self.negators = sorted({str(word) for word in negators})
        self.window = int(window)
        words = tf.constant(list(self.lexicon), tf.string)
        valences = list(self.lexicon.values())
        self._plain = _table(words, [valence_token(v) for v in valences], "")
        self._negated = _table(words, [valence_token(NEGATION_SCALAR * v) for v in valences], "")
        self._is_negator = (
            _table(tf.constant(self.negators, tf.string), [True] * len(self.negators), False)
            if self.negators
            else None
        )
        self.built = True

    def call(self, words):
        dense = words.to_tensor(default_value="")
        tokens = self._plain.lookup(dense)
        if self._is_negator is not None and self.window:
            is_negator = self._is_negator.lookup(dense)
            negated = tf.zeros_like(is_negator)
            for shift in range(1, self.window + 1):
                before = tf.pad(is_negator[:, :-shift], [[0, 0], [shift, 0]])
                negated = tf.logical_or(negated, before[:, : tf.shape(dense)[1]])
            tokens = tf.where(negated, self._negated.lookup(dense), tokens)
        tokens = tf.RaggedTensor.from_tensor(tokens, lengths=words.row_lengths())
        return tf.ragged.boolean_mask(tokens, tf.strings.length(tokens) > 0)

    def get_config(self):
        config = super().get_config()
        config.update({"lexicon": self.lexicon, "negators": self.negators, "window": self.window})
        return config


def _table(keys, values, default):
    return tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(keys, tf.constant(values)), default_value=default
    )
