import keras
import numpy as np
import pytest
import tensorflow as tf

from multimodal_tf.errors import ConfigError
from multimodal_tf.models.bag_text_encoder import BagOfNgramsEncoder
from multimodal_tf.models.base_text_encoder import BaseTextEncoder
from multimodal_tf.models.conv_text_encoder import ConvTextEncoder
from multimodal_tf.models.embeddings import load_word_vectors
from multimodal_tf.models.text_encoder import TEXT_ENCODERS, TextEncoder, get_text_encoder
from multimodal_tf.models.transformer_text_encoder import TransformerTextEncoder
from tests.conftest import SHARED, requires_shared
from tests.helpers import run_layer_test, run_model_saving_test

VOCABULARY_SIZE = 12
HIDDEN_DIM = 6
RNN_KWARGS = {"vocabulary_size": VOCABULARY_SIZE, "embedding_dim": 4, "lstm_units": 4}
ENCODERS = {
    "lstm": (TextEncoder, RNN_KWARGS),
    "bilstm": (TextEncoder, {**RNN_KWARGS, "bidirectional": True}),
    "gru": (TextEncoder, {**RNN_KWARGS, "rnn": "gru"}),
    "bigru": (TextEncoder, {**RNN_KWARGS, "rnn": "gru", "bidirectional": True}),
    "cnn": (
        ConvTextEncoder,
        {
            "vocabulary_size": VOCABULARY_SIZE,
            "embedding_dim": 4,
            "filters": 4,
            "kernel_sizes": (2, 3),
        },
    ),
    "transformer": (
        TransformerTextEncoder,
        {
            "vocabulary_size": VOCABULARY_SIZE,
            "embedding_dim": 8,
            "num_layers": 2,
            "num_heads": 2,
            "intermediate_dim": 8,
            "max_sequence_length": 16,
        },
    ),
}
TOKEN_IDS = np.array([[2, 3, 4, 0, 0], [5, 0, 0, 0, 0], [6, 7, 8, 9, 10]], "int32")


def make_encoder(kind, **overrides):
    encoder_cls, kwargs = ENCODERS[kind]
    return encoder_cls(**{**kwargs, "hidden_dim": HIDDEN_DIM, **overrides})


@pytest.mark.parametrize("kind", ENCODERS)
def test_shape_mask_and_config(kind):
    encoder_cls, kwargs = ENCODERS[kind]
    layer, _ = run_layer_test(
        encoder_cls, {**kwargs, "hidden_dim": HIDDEN_DIM}, TOKEN_IDS, (3, 5, HIDDEN_DIM)
    )
    assert layer.supports_masking
    np.testing.assert_array_equal(layer.compute_mask(TOKEN_IDS), TOKEN_IDS != 0)


@pytest.mark.parametrize("kind", ENCODERS)
def test_empty_texts_give_finite_outputs_and_gradients(kind):
    encoder = make_encoder(kind, dropout_rate=0.5)
    token_ids = np.zeros((2, 5), "int32")
    assert np.isfinite(encoder(token_ids)).all()
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(encoder(token_ids, training=True) ** 2)
    gradients = tape.gradient(loss, encoder.trainable_variables)
    assert all(np.isfinite(tf.convert_to_tensor(g)).all() for g in gradients if g is not None)


@pytest.mark.parametrize("kind", ENCODERS)
def test_trailing_padding_does_not_change_real_positions(kind):
    encoder = make_encoder(kind)
    padded = np.pad(TOKEN_IDS, ((0, 0), (0, 4)))
    short, long = np.asarray(encoder(TOKEN_IDS)), np.asarray(encoder(padded))
    real = TOKEN_IDS != 0
    np.testing.assert_allclose(long[:, :5][real], short[real], atol=1e-5)


@pytest.mark.parametrize("kind", ENCODERS)
def test_keras_file_round_trip(kind, tmp_path):
    inputs = keras.Input((5,), dtype="int32")
    tokens = make_encoder(kind, name="text_encoder")(inputs)
    outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling1D()(tokens))
    run_model_saving_test(keras.Model(inputs, outputs), TOKEN_IDS, tmp_path)


@pytest.mark.parametrize("kind", ["lstm", "cnn", "transformer"])
def test_set_embeddings_builds_and_assigns(kind):
    encoder = make_encoder(kind)
    dim = encoder.embedding_dim
    matrix = np.arange(VOCABULARY_SIZE * dim, dtype="float32").reshape(VOCABULARY_SIZE, dim)
    encoder.set_embeddings(matrix)
    # Calling the encoder afterwards must not build it again over the new weights.
    assert encoder(TOKEN_IDS).shape == (3, 5, HIDDEN_DIM)
    np.testing.assert_array_equal(encoder.embedding.embeddings, matrix)
    with pytest.raises(ValueError, match=rf"\({VOCABULARY_SIZE}, {dim}\).*\(3, {dim}\)"):
        encoder.set_embeddings(matrix[:3])


@pytest.mark.parametrize(
    "name, expected_cls, expected",
    [
        ("lstm", TextEncoder, {"rnn": "lstm", "bidirectional": False, "lstm_units": 5}),
        ("bilstm", TextEncoder, {"rnn": "lstm", "bidirectional": True}),
        ("gru", TextEncoder, {"rnn": "gru", "bidirectional": False}),
        ("cnn", ConvTextEncoder, {"embedding_dim": 8}),
        ("bag", BagOfNgramsEncoder, {"embedding_dim": 8, "token_dropout": 0.0}),
        ("transformer", TransformerTextEncoder, {"hidden_dim": 6, "dropout_rate": 0.1}),
    ],
)
def test_get_text_encoder(name, expected_cls, expected):
    encoder = get_text_encoder(
        name, VOCABULARY_SIZE, embedding_dim=8, hidden_dim=6, dropout_rate=0.1, lstm_units=5
    )
    assert type(encoder) is expected_cls
    assert expected.items() <= encoder.get_config().items()


def test_get_text_encoder_names_the_layer_and_passes_instances_through():
    assert set(TEXT_ENCODERS) == {"bag", "lstm", "bilstm", "gru", "cnn", "transformer", "hub"}
    encoder = get_text_encoder("transformer", VOCABULARY_SIZE, name="text_encoder", num_heads=2)
    assert (encoder.name, encoder.num_heads) == ("text_encoder", 2)
    assert get_text_encoder(encoder, VOCABULARY_SIZE) is encoder
    assert isinstance(encoder, BaseTextEncoder)


def test_bad_encoder_arguments_are_rejected():
    expected = "'rnnn'.*'bag', 'lstm', 'bilstm', 'gru', 'cnn', 'transformer'"
    with pytest.raises(ValueError, match=expected):
        get_text_encoder("rnnn", VOCABULARY_SIZE)
    with pytest.raises(ValueError, match="'lstm', 'gru'.*'rnn'"):
        TextEncoder(VOCABULARY_SIZE, rnn="rnn")
    with pytest.raises(ValueError, match="embedding_dim=6, num_heads=4"):
        TransformerTextEncoder(VOCABULARY_SIZE, embedding_dim=6)
    with pytest.raises(ValueError, match="max_sequence_length=4"):
        make_encoder("transformer", max_sequence_length=4)(TOKEN_IDS)
    with pytest.raises(ValueError, match="kernel_sizes"):
        ConvTextEncoder(VOCABULARY_SIZE, kernel_sizes=())


# === Word vectors ===


def write_vectors(folder, lines, name="vectors.txt"):
    path = folder / name
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


VECTORS = ["the 1 2 3", "good 4 5 6", "café -1 0.5 2", "bad 7 8 9"]


def test_load_word_vectors_rows_follow_the_vocabulary(tmp_path):
    path = write_vectors(tmp_path, VECTORS)
    matrix, num_found = load_word_vectors(path, ["good", "missing", "café", "the"])
    assert num_found == 3
    assert matrix.shape == (6, 3) and matrix.dtype == np.float32
    np.testing.assert_array_equal(matrix[0], 0.0)
    np.testing.assert_array_equal(matrix[[2, 4, 5]], [[4, 5, 6], [-1, 0.5, 2], [1, 2, 3]])
    # OOV and the missing token are random, spread like the vectors found.
    random_rows = matrix[[1, 3]]
    assert np.all(random_rows != 0) and 0.3 < random_rows.std() < 10
    again, _ = load_word_vectors(path, ["good", "missing", "café", "the"])
    np.testing.assert_array_equal(again, matrix)


def test_load_word_vectors_skips_headers_and_tokens_with_spaces(tmp_path):
    path = write_vectors(tmp_path, ["4 3", VECTORS[0], ". . . 1 1 1", *VECTORS[1:]])
    matrix, num_found = load_word_vectors(path, ["bad", "."], embedding_dim=3)
    assert num_found == 1
    np.testing.assert_array_equal(matrix[2], [7, 8, 9])


def test_load_word_vectors_stops_reading_once_everything_is_found(tmp_path):
    path = write_vectors(tmp_path, [*VECTORS, "broken 1"])
    assert load_word_vectors(path, ["the"])[1] == 1
    with pytest.raises(ConfigError, match="line 5"):
        load_word_vectors(path, ["the", "zzz"])


def test_load_word_vectors_errors_name_the_file_and_line(tmp_path):
    with pytest.raises(ConfigError, match="not found.*nowhere.txt"):
        load_word_vectors(tmp_path / "nowhere.txt", ["the"])
    path = write_vectors(tmp_path, ["the 1 2 3", "good 4 5"])
    with pytest.raises(ConfigError, match=r"vectors\.txt, line 2: .*3 values.*found 2"):
        load_word_vectors(path, ["good"])
    path = write_vectors(tmp_path, ["the 1 2 3", "good 4 x 6"])
    with pytest.raises(ConfigError, match=r"vectors\.txt, line 2: .*'good'.*not numbers"):
        load_word_vectors(path, ["good"])
    path = write_vectors(tmp_path, VECTORS)
    with pytest.raises(ConfigError, match=r"line 1: .*3 values.*set model\.embedding_dim: 3"):
        load_word_vectors(path, ["good"], embedding_dim=64)
    (tmp_path / "latin1.txt").write_bytes("the 1 2 3\ncaf\xe9 1 2 3\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin1\.txt, line 2: not UTF-8"):
        load_word_vectors(tmp_path / "latin1.txt", ["café"])
    with pytest.raises(ConfigError, match="empty"):
        load_word_vectors(write_vectors(tmp_path, [], name="empty.txt"), ["the"])


GLOVE = SHARED / "weights" / "glove.6B.100d.top2717.txt"


@pytest.mark.shared
@requires_shared(GLOVE)
def test_load_real_glove_vectors_into_an_encoder():
    matrix, num_found = load_word_vectors(GLOVE, ["the", "good", "zzzunknownzzz"], 100)
    assert num_found == 2 and matrix.shape == (5, 100)
    with GLOVE.open(encoding="utf-8") as handle:
        word, *values = handle.readline().split(" ")
    assert word == "the"
    np.testing.assert_array_equal(matrix[2], np.array(values, "float32"))
    encoder = TextEncoder(5, embedding_dim=100, lstm_units=4, hidden_dim=4)
    encoder.set_embeddings(matrix)
    np.testing.assert_array_equal(encoder.embedding.embeddings, matrix)


def test_bag_of_ngrams_gives_one_token_per_text():
    kwargs = {"vocabulary_size": VOCABULARY_SIZE, "embedding_dim": 4, "hidden_dim": HIDDEN_DIM}
    layer, _ = run_layer_test(BagOfNgramsEncoder, kwargs, TOKEN_IDS, (3, 1, HIDDEN_DIM))
    empty = np.array([[0, 0], [2, 0]], "int32")
    np.testing.assert_array_equal(layer.compute_mask(empty), [[False], [True]])
    assert np.isfinite(layer(empty)).all()
    # A bag: order and padding do not matter.
    np.testing.assert_allclose(
        layer(np.array([[2, 3, 4, 0]])), layer(np.array([[4, 0, 3, 2]])), atol=1e-6
    )


def test_bag_token_dropout_only_while_training():
    encoder = BagOfNgramsEncoder(VOCABULARY_SIZE, 4, HIDDEN_DIM, token_dropout=0.5, seed=1)
    ids = np.tile(np.arange(2, 12, dtype="int32"), (4, 1))
    np.testing.assert_allclose(encoder(ids), encoder(ids), atol=0)
    assert not np.allclose(encoder(ids, training=True), encoder(ids))


def test_bag_weighs_ngrams_by_idf_and_normalises_words_and_chars_apart():
    idf = [1.0, 2.0] + [1.0] * (VOCABULARY_SIZE - 4)  # ids 2, 3 are words
    grouped = BagOfNgramsEncoder(
        VOCABULARY_SIZE, 4, HIDDEN_DIM, idf_weights=idf, num_word_features=2
    )
    ids = np.array([[2, 3, 4, 5, 6, 0]], "int32")
    grouped(ids)  # builds the layer
    embeddings = np.asarray(grouped.embedding.embeddings)
    words = (1.0 * embeddings[2] + 2.0 * embeddings[3]) / np.sqrt(1.0 + 4.0)
    chars = embeddings[4:7].sum(axis=0) / np.sqrt(3.0)
    expected = np.asarray(grouped.projection(np.array([words + chars], "float32")))
    np.testing.assert_allclose(np.asarray(grouped(ids))[:, 0], expected, atol=1e-5)
    with pytest.raises(ValueError, match="one weight per vocabulary token"):
        BagOfNgramsEncoder(VOCABULARY_SIZE, idf_weights=[1.0])


def test_adapt_puts_words_before_char_ngrams():
    from multimodal_tf.models.preprocessor import MultimodalPreprocessor

    layer = MultimodalPreprocessor(sequence_length=None, text_features="ngrams")
    layer.adapt(["red fire", "red ice", "fire ice"], min_frequency=2)
    count = layer.num_word_features
    assert count == 3 and set(layer.vocabulary[:count]) == {"red", "fire", "ice"}
    assert all(token.startswith("~") for token in layer.vocabulary[count:])
    assert len(layer.idf_weights) == len(layer.vocabulary)
    assert MultimodalPreprocessor(vocabulary=["~a", "b"]).num_word_features is None
