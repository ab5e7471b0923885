"""Pretrained word vectors (GloVe text format) -> an embedding matrix for a vocabulary."""

from pathlib import Path

import numpy as np

from multimodal_tf.errors import ConfigError

# Spread of the random rows when the file has none of the vocabulary's words:
# that of Keras' default `Embedding` initializer, uniform(-0.05, 0.05).
FALLBACK_STDDEV = 0.03


def load_word_vectors(path, vocabulary, embedding_dim=None, seed=0):
    """Reads the vectors of `vocabulary` from a GloVe-format file into an embedding matrix.

    The file (UTF-8, one `word v1 ... vD` a line) is streamed, and reading stops
    once every token is found, so a large file costs little memory. Row 0 is
    padding (zeros) and row 1 the out-of-vocabulary token, as in
    `MultimodalPreprocessor`; tokens the file lacks, and row 1, get random
    normal rows as spread out as the vectors found. Pass the matrix to an
    encoder's `set_embeddings`.

    Args:
        path: str or `Path`. The vectors file.
        vocabulary: list of str. Tokens of ids 2, 3, ... (`preprocessor.vocabulary`).
        embedding_dim: int or None. Expected vector width; `None` takes the file's.
        seed: int. Seed of the random rows.

    Returns:
        A tuple `(matrix, num_found)`: float32 `[len(vocabulary) + 2, D]` and
        the number of vocabulary tokens found in the file.

    Example:
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "vectors.txt"
    >>> _ = path.write_text("red 1 0\\nblue 0 1\\n", encoding="utf-8")
    >>> matrix, num_found = load_word_vectors(path, ["blue", "green"])
    >>> num_found, matrix.shape, matrix[2].tolist()
    (1, (4, 2), [0.0, 1.0])
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Word vectors file not found: {path}")
    rows = {}
    for index, token in enumerate(vocabulary):
        rows.setdefault(str(token), index + 2)
    found, dim = {}, None
    with path.open("rb") as handle:
        for line_number, raw in enumerate(handle, start=1):
            where = f"{path}, line {line_number}"
            try:
                parts = raw.decode("utf-8").rstrip().split(" ")
            except UnicodeDecodeError as error:
                raise ConfigError(f"{where}: not UTF-8 ({error}).") from None
            if parts == [""]:
                continue
            # word2vec / fastText `.vec` files start with a "count dim" header.
            if line_number == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                continue
            if dim is None:
                dim = len(parts) - 1
                if embedding_dim is not None and dim != embedding_dim:
                    raise ConfigError(
                        f"{where}: the vectors have {dim} values but embedding_dim is "
                        f"{embedding_dim}; set model.embedding_dim: {dim}."
                    )
            if len(parts) > dim + 1 and not _is_number(parts[-dim - 1]):
                # A token with spaces (glove.840B has ". . ."): the tokenizer
                # splits on whitespace, so no vocabulary token can match it.
                continue
            if len(parts) != dim + 1:
                raise ConfigError(
                    f"{where}: expected a word and {dim} values (as on the first line); "
                    f"found {len(parts) - 1} values."
                )
            word = parts[0]
            if word in rows and word not in found:
                try:
                    found[word] = np.array(parts[1:], dtype="float32")
                except ValueError:
                    raise ConfigError(f"{where}: the values of {word!r} are not numbers.") from None
                if len(found) == len(rows):
                    break
    if dim is None:
        raise ConfigError(f"Word vectors file is empty: {path}")
    stddev = np.std(list(found.values())) if found else FALLBACK_STDDEV
    matrix = np.random.default_rng(seed).normal(0.0, stddev, (len(vocabulary) + 2, dim))
    matrix = matrix.astype("float32")
    matrix[0] = 0.0
    for word, vector in found.items():
        matrix[rows[word]] = vector
    return matrix, len(found)


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True
