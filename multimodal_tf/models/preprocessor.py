"""Raw text + encoded image bytes -> model tensors, inside the TF graph."""

import collections
import math

import keras
import tensorflow as tf

from multimodal_tf.layers.preprocessing.image_decoder import ImageDecoder
from multimodal_tf.layers.preprocessing.lexicon import PREFIX as LEXICON_PREFIX
from multimodal_tf.layers.preprocessing.lexicon import LexiconTagger, surviving_entries
from multimodal_tf.layers.preprocessing.text_standardizer import EMOTICON_TOKENS, TextStandardizer

PAD_TOKEN = ""
OOV_TOKEN = "[UNK]"
TEXT_FEATURES = ("words", "ngrams")
CHAR_PREFIX = "~"  # marks character n-grams; `~` never survives standardization


def text_feature_strings(text, features="words", char_ngrams=(2, 5), lexicon_tagger=None):
    """Standardized text `[batch]` -> ragged `[batch, None]` feature strings.

    `words` gives the whitespace tokens. `ngrams` gives the words, the word
    bigrams (`"so happy"`) and the character n-grams of each word padded with
    spaces (scikit-learn's `char_wb`, prefixed with `~`), the features of a
    TF-IDF + logistic regression text classifier; with a `LexiconTagger`, the
    valence tokens of the words it finds (`^lex+3`) follow the words.
    """
    words = tf.strings.split(text)
    if features == "words":
        return words
    lexicon = [lexicon_tagger(words)] if lexicon_tagger is not None else []
    bigrams = tf.strings.ngrams(words, 2, separator=" ")
    padded = tf.strings.join([CHAR_PREFIX + " ", words.flat_values, " "])
    chars = tf.strings.unicode_split(padded, "UTF-8")[:, 1:]  # prefix char split off
    low, high = char_ngrams
    grams = tf.concat(
        [tf.strings.ngrams(chars, width, separator="") for width in range(low, high + 1)], axis=1
    )
    grams = grams.with_flat_values(tf.strings.join([CHAR_PREFIX, grams.flat_values]))
    grams = words.with_flat_values(grams).merge_dims(1, 2)
    return tf.concat([words, *lexicon, bigrams, grams], axis=1)


@keras.saving.register_keras_serializable(package="multimodal_tf")
class MultimodalPreprocessor(keras.layers.Layer):
    """Turns `{"text": str, "image": encoded bytes}` into `{"token_ids", "image", "image_present"}`.

    The one decode/standardize path of the package: `tf.data` pipelines map it
    over raw samples at training time and the exported SavedModel runs the same
    layer on raw request tensors. Only core TensorFlow ops run inside it; the
    vocabulary is built beforehand by `adapt()` and stored in the config.

    Args:
        vocabulary: list of str or None. Tokens (features) in index order,
            without the padding and out-of-vocabulary tokens (ids 0 and 1).
            `None` until `adapt()` is called.
        sequence_length: int or None. Token ids are padded or truncated to
            this length; `None` lets `adapt()` choose the 99th percentile of
            the training texts' lengths (rounded up to a multiple of 8).
        image_size: tuple of two ints. Decoded images are resized to this.
        max_vocabulary_size: int. `adapt()` keeps at most this many tokens
            (padding and OOV included).
        min_frequency: int. `adapt()` drops tokens seen fewer times than this.
        text_features: str. `"words"`: word ids in text order, for sequence
            encoders (LSTM, CNN, Transformer). `"ngrams"`: ids of words, word
            bigrams and character 2-5-grams (see `text_feature_strings`), for
            the bag-of-n-grams encoder; unknown n-grams are dropped.
        norm_table: dict or None. spaCy-built `{token: replacement}` table of
            the `TextStandardizer`; `adapt(..., spacy_norms=True)` builds it.
        idf_weights: list of float or None. Inverse document frequency of
            each vocabulary token, `log((1 + n) / (1 + df)) + 1` as in
            scikit-learn; `adapt()` computes it and the bag encoder uses it.
        lexicon: dict or None. `{word: valence}` (`load_lexicon()`); with
            `text_features="ngrams"` each lexicon word of a text adds a
            valence token to its features (`LexiconTagger`). `adapt()` keeps
            the words its standardizer leaves as they are (the only ones
            standardized text can hold). Ignored for `"words"`, whose
            sequence encoders read words in order.
        lexicon_negators: list of str. Words that flip the valence of the
            lexicon words up to three words after them (`"not"`).
        emoticons: bool. The standardizer turns ASCII emoticons into word
            tokens (`:-)` -> `xsmile`; `TextStandardizer`). A preprocessor
            saved before this option existed loads with it off.
        pass_text: bool. Also output the raw text as `"text"` (tf.string
            `[batch]`), for a text encoder with its own tokenizer
            (`HubTextEncoder`, `model.text_encoder: hub`); the token ids still
            feed the wide path.
        text_tokens: int or None. That encoder's tokens per text, chosen from
            the training texts with the bag's vocabulary (`choose_sequence_length`
            in `adapted_preprocessor`); kept here with the other lengths.

    Example:
    >>> preprocessor = MultimodalPreprocessor(sequence_length=4, image_size=(8, 8))
    >>> preprocessor.adapt(["a red circle", "a blue square"], min_frequency=1)
    >>> png = tf.io.encode_png(tf.zeros([10, 10, 3], tf.uint8))
    >>> out = preprocessor({"text": tf.constant(["A red square"]),
    ...                     "image": tf.stack([png])})
    >>> out["token_ids"].numpy().tolist()
    [[2, 5, 6, 0]]
    """

    def __init__(
        self,
        vocabulary=None,
        sequence_length=32,
        image_size=(64, 64),
        max_vocabulary_size=20000,
        min_frequency=2,
        text_features="words",
        norm_table=None,
        idf_weights=None,
        lexicon=None,
        lexicon_negators=(),
        emoticons=True,
        pass_text=False,
        text_tokens=None,
        **kwargs,
    ):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        if text_features not in TEXT_FEATURES:
            raise ValueError(
                f"`text_features` must be one of {TEXT_FEATURES}; received {text_features!r}."
            )
        # === Layers ===
        self.text_standardizer = TextStandardizer(
            emoticons=emoticons, norm_table=norm_table, name="text_standardizer"
        )
        self.lexicon_tagger = None
        if lexicon and text_features == "ngrams":
            self._set_lexicon(lexicon, lexicon_negators)
        self.token_lookup = None
        self.image_decoder = ImageDecoder(image_size=image_size, name="image_decoder")
        # === Config ===
        self.vocabulary = None
        self.sequence_length = None if sequence_length is None else int(sequence_length)
        self.image_size = tuple(int(size) for size in image_size)
        self.max_vocabulary_size = int(max_vocabulary_size)
        self.min_frequency = int(min_frequency)
        self.text_features = text_features
        self.idf_weights = None if idf_weights is None else [float(w) for w in idf_weights]
        self.pass_text = bool(pass_text)
        self.text_tokens = None if text_tokens is None else int(text_tokens)
        self.adapt_summary = None  # set by `adapt()`; not part of the config
        if vocabulary is not None:
            self.set_vocabulary(vocabulary)
        # No weights: the only state is the vocabulary and norm tables.
        self.built = True

    def graph_state(self):
        """What decides the graph this layer builds: its lookup tables and sizes.

        Changes whenever `adapt()`, `set_vocabulary()` or a lexicon replaces a
        table, or the norm table's entries change, so a cached trace of this
        layer (`shared_preprocess`) can tell that it is stale.
        """
        return (
            self.token_lookup,
            self.lexicon_tagger,
            self.text_standardizer.norm_table,
            self.sequence_length,
            self.text_features,
            self.image_size,
        )

    @property
    def emoticons(self):
        return self.text_standardizer.emoticons

    @property
    def norm_table(self):
        return self.text_standardizer.norm_table

    @property
    def num_word_features(self):
        """How many vocabulary tokens (ids 2...) are words or bigrams, before the char n-grams.

        `None` when character n-grams and words are interleaved (a vocabulary
        not made by `adapt()`).
        """
        if self.vocabulary is None:
            return None
        is_char = [token.startswith(CHAR_PREFIX) for token in self.vocabulary]
        count = is_char.index(True) if True in is_char else len(is_char)
        return count if all(is_char[count:]) else None

    @property
    def vocabulary_size(self):
        """Number of token ids the model's embedding must hold."""
        if self.vocabulary is None:
            raise ValueError("The vocabulary is not set: call `adapt()` first.")
        return len(self.vocabulary) + 2

    def set_vocabulary(self, vocabulary):
        vocabulary = [str(token) for token in vocabulary]
        if PAD_TOKEN in vocabulary or OOV_TOKEN in vocabulary:
            raise ValueError(
                f"`vocabulary` must not contain the padding token {PAD_TOKEN!r} "
                f"or the OOV token {OOV_TOKEN!r}; they are added at ids 0 and 1."
            )
        self.token_lookup = keras.layers.StringLookup(
            vocabulary=vocabulary,
            mask_token=PAD_TOKEN,
            oov_token=OOV_TOKEN,
            num_oov_indices=1,
            name="token_lookup",
        )
        self.vocabulary = vocabulary

    def _set_lexicon(self, lexicon, negators):
        self.lexicon_tagger = LexiconTagger(lexicon, negators=negators, name="lexicon_tagger")

    def features(self, text):
        """Standardized features of raw text `[batch]`: ragged `[batch, None]` strings."""
        return text_feature_strings(
            self.text_standardizer(text), self.text_features, lexicon_tagger=self.lexicon_tagger
        )

    def adapt(self, texts, min_frequency=None, batch_size=256, spacy_norms=False):
        """Builds the vocabulary (and sequence length) from training texts only.

        Args:
            texts: iterable of str or a `tf.data.Dataset` of scalar strings.
            min_frequency: int or None. Overrides the constructor's value.
            batch_size: int. Texts standardized per step.
            spacy_norms: bool. First build the standardizer's `norm_table`
                with spaCy (`build_norm_table`) from the training tokens.
        """
        if min_frequency is not None:
            self.min_frequency = int(min_frequency)
        if not isinstance(texts, tf.data.Dataset):
            texts = tf.data.Dataset.from_tensor_slices(tf.constant(list(texts), dtype=tf.string))
        batches = texts.batch(batch_size)
        if spacy_norms:
            from multimodal_tf.layers.preprocessing.spacy_tables import build_norm_table

            self.text_standardizer.set_norm_table(None)
            tokens = set()
            for batch in batches.map(self.text_standardizer).as_numpy_iterator():
                for text in batch:
                    tokens.update(text.decode("utf-8").split())
            self.text_standardizer.set_norm_table(build_norm_table(sorted(tokens)))
        if self.lexicon_tagger is not None:  # keep the entries standardized text can hold
            tagger = self.lexicon_tagger
            self._set_lexicon(
                surviving_entries(tagger.lexicon, self.text_standardizer), tagger.negators
            )
        counts, documents = collections.Counter(), collections.Counter()
        rows = []
        for batch in batches.map(self.features).as_numpy_iterator():
            for row in batch:
                counts.update(row)
                documents.update(set(row))
                rows.append(row)
        kept = [(token, count) for token, count in counts.items() if count >= self.min_frequency]
        # Most frequent first, ties broken alphabetically so that runs repeat.
        kept.sort(key=lambda item: (-item[1], item[0]))
        kept = kept[: self.max_vocabulary_size - 2]
        # Words and bigrams first, then character n-grams: the bag encoder
        # normalises the two groups apart, as a TF-IDF feature union does.
        kept.sort(key=lambda item: item[0].startswith(CHAR_PREFIX.encode()))
        self.set_vocabulary([token.decode("utf-8") for token, _ in kept])
        self.idf_weights = [
            round(math.log((1 + len(rows)) / (1 + documents[token])) + 1, 6) for token, _ in kept
        ]
        if self.sequence_length is None:
            self.sequence_length = _auto_length(rows, {token for token, _ in kept})
        emoticons = {token.encode() for token in EMOTICON_TOKENS}
        self.adapt_summary = {  # what the vocabulary does not keep: coverage of the texts
            "texts": len(rows),
            "with_valence_token": sum(
                any(token.startswith(LEXICON_PREFIX.encode()) for token in row) for row in rows
            ),
            "with_emoticon": sum(not emoticons.isdisjoint(row) for row in rows),
        }

    def describe_adapt(self):
        """One line on what `adapt()` found: vocabulary, length, lexicon and emoticon coverage."""
        summary = self.adapt_summary
        if not summary:
            return "The vocabulary is not adapted in this session."
        texts = max(1, summary["texts"])
        kind = {"ngrams": "n-grams", "words": "words"}[self.text_features]
        line = (
            f"text: {len(self.vocabulary):,} {kind} from {summary['texts']:,} training texts, "
            f"sequence length {self.sequence_length}"
        )
        if self.lexicon_tagger is not None:
            line += (
                f"; lexicon: {len(self.lexicon_tagger.lexicon):,} entries, a valence token in "
                f"{summary['with_valence_token'] / texts:.1%} of the texts"
            )
        if self.emoticons:
            line += f"; emoticons in {summary['with_emoticon'] / texts:.1%}"
        return line + "."

    def call(self, inputs):
        outputs = {}
        if "text" in inputs:
            if self.token_lookup is None or self.sequence_length is None:
                raise ValueError("The vocabulary is not set: call `adapt()` first.")
            text = tf.convert_to_tensor(inputs["text"], dtype=tf.string)
            # Work on a batch even for one sample; ragged rows then pad alike.
            is_scalar = text.shape.rank == 0
            token_ids = self.token_lookup(self.features(text[None] if is_scalar else text))
            if self.text_features == "ngrams":  # most unknown n-grams are noise
                token_ids = tf.ragged.boolean_mask(token_ids, token_ids != 1)
            token_ids = tf.cast(token_ids, tf.int32).to_tensor(
                default_value=0, shape=[None, self.sequence_length]
            )
            outputs["token_ids"] = token_ids[0] if is_scalar else token_ids
            if self.pass_text:  # raw, as the request gave it (cut to max_text_bytes)
                outputs["text"] = text
        if "image" in inputs:
            image = tf.convert_to_tensor(inputs["image"], dtype=tf.string)
            outputs["image"] = self.image_decoder(image)
            outputs["image_present"] = tf.cast(tf.strings.length(image) > 0, tf.float32)
        return outputs

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary": self.vocabulary,
                "sequence_length": self.sequence_length,
                "image_size": self.image_size,
                "max_vocabulary_size": self.max_vocabulary_size,
                "min_frequency": self.min_frequency,
                "text_features": self.text_features,
                "norm_table": self.norm_table,
                "idf_weights": self.idf_weights,
                "lexicon": self.lexicon_tagger.lexicon if self.lexicon_tagger else None,
                "lexicon_negators": self.lexicon_tagger.negators if self.lexicon_tagger else [],
                "emoticons": self.emoticons,
                "pass_text": self.pass_text,
                "text_tokens": self.text_tokens,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config.setdefault("emoticons", False)  # saved before the option: standardize as then
        return cls(**config)


def _auto_length(rows, kept):
    """99th percentile of in-vocabulary features per row, rounded up to a multiple of 8."""
    lengths = sorted(sum(token in kept for token in row) for row in rows) or [1]
    length = lengths[min(len(lengths) - 1, math.ceil(0.99 * len(lengths)) - 1)]
    return max(8, -(-length // 8) * 8)
