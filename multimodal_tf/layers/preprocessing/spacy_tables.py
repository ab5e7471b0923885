"""Fit-time spaCy knowledge, baked into plain tables that the in-graph standardizer applies.

spaCy never runs in the serving graph: these functions run once on the training
vocabulary and return Python data that becomes a TF lookup table. spaCy is imported
lazily so that importing this module (or its package) stays cheap.
"""

import functools

# Closed class of English negators, intersected with spaCy's stop words in `negation_words`.
_NEGATORS = (
    "cannot",
    "n't",
    "n‘t",
    "n’t",
    "neither",
    "never",
    "no",
    "nobody",
    "none",
    "noone",
    "nor",
    "not",
    "nothing",
    "nowhere",
)


@functools.lru_cache(maxsize=1)
def _english():
    import spacy

    # Tokenizer exceptions and punctuation rules only: no model, no lookups data.
    return spacy.blank("en")


def build_norm_table(tokens):
    """Maps each training token that spaCy splits or normalises to its space-joined norms.

    Each distinct token is run through the tokenizer of `spacy.blank("en")` and
    replaced by the lower-cased `norm_` of its pieces, joined by single spaces.
    A blank English pipeline applies only rules shipped inside spaCy:

    - English tokenizer exceptions (`spacy/lang/en/tokenizer_exceptions.py`):
      contractions with and without an apostrophe (straight or curly), each
      piece carrying a NORM: "don't"/"dont" -> "do not", "can't"/"cant" ->
      "can not", "won't"/"wont" -> "will not", "i'm" -> "i am", "ive" ->
      "i have", "gonna" -> "going to", "gotta" -> "got to", "y'all"/"yall" ->
      "you all", "'cause"/"'cuz" -> "because", "nothin" -> "nothing",
      "cannot" -> "can not". Some apostrophe-less forms split without a norm:
      "im" -> "i m", "thats" -> "that s", "id" -> "i 'd". "ill", "its",
      "well", "were", "hell", "shed" are excluded by spaCy and stay as they are.
    - Prefix, suffix and infix punctuation rules: "wow!!" -> "wow ! !",
      "well-known" -> "well - known", "😂😂" -> "😂 😂".
    - Base NORM exceptions (`spacy/lang/norm_exceptions.py`): curly quotes,
      full-width punctuation, currency symbols.

    Slang and chat abbreviations ("u", "ur", "cuz", "lol", "thx", "b4",
    "wanna") are not covered: their norms live in the `lexeme_norm` table of
    spacy-lookups-data, which is deliberately not used, so they map to
    themselves and are left out of the table.

    Args:
        tokens: iterable of str. Distinct whitespace tokens of the standardized
            training texts (duplicates and empty strings are ignored). A
            generator is fine; a single str is rejected.

    Returns:
        dict[str, str]. Token -> replacement, only for tokens whose replacement
        is non-empty and differs from the token, keys in sorted order. Values are
        lower-case and separated by single spaces.

    Example:
    >>> build_norm_table(["happy", "don't", "dont", "gonna", "!"])
    {"don't": 'do not', 'dont': 'do not', 'gonna': 'going to'}
    """
    if isinstance(tokens, (str, bytes)):
        raise ValueError(f"`tokens` must be an iterable of str, not a single string: {tokens!r}")
    distinct = set()
    for token in tokens:
        if not isinstance(token, str):
            raise ValueError(f"Every token must be a str. Received: {token!r}")
        if any(character.isspace() for character in token):
            raise ValueError(f"Tokens must not contain whitespace. Received: {token!r}")
        if token:
            distinct.add(token)
    # Sorting first makes the dict order, and the tokenizer's cache fill, deterministic.
    ordered = sorted(distinct)
    table = {}
    for token, doc in zip(ordered, _english().tokenizer.pipe(ordered), strict=True):
        # A norm may itself contain spaces (e.g. "S.C." -> "South Carolina").
        replacement = " ".join(" ".join(piece.norm_.lower() for piece in doc).split())
        if replacement and replacement != token:
            table[token] = replacement
    return table


def negation_words():
    """Lists spaCy's English stop words that express negation.

    They carry sentiment ("not good"), which is why stop words are kept in the
    text rather than removed.

    Returns:
        list[str]. Sorted negators found in `spacy.lang.en.stop_words.STOP_WORDS`,
        including the "n't" pieces that the tokenizer splits off contractions.

    Example:
    >>> negation_words()[:4]
    ['cannot', "n't", 'neither', 'never']
    """
    from spacy.lang.en.stop_words import STOP_WORDS

    return sorted(word for word in _NEGATORS if word in STOP_WORDS)
