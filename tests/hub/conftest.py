"""Fixtures of the KerasHub text encoder tests: a tiny BERT preset made here, never downloaded.

Every fixture that needs keras-hub or tensorflow-text skips its tests with
`SKIP_REASON` where the [hub] extra is not installed; the tests of the
missing-extra message and of the op tables run either way.
"""

import numpy as np
import pytest

SKIP_REASON = "needs the [hub] extra: pip install -e '.[hub]'"
SEQUENCE_LENGTH = 12
HIDDEN_DIM = 16
WORDS = (
    "the a is not very so and of to it this that was red blue green circle square "
    "happy sad good bad great awful love hate cat dog sun rain hot cold day night"
).split()
# Two classes a linear head on frozen random features can still tell apart.
TRAIN_TEXTS = [
    "the red sun is hot and good",
    "a happy day, i love it",
    "great red circle",
    "so good, the sun was hot",
    "love this happy cat",
    "a hot day of sun",
    "very good and great",
    "the happy dog is good",
    "the blue rain is cold and bad",
    "a sad night, i hate it",
    "awful blue square",
    "so bad, the rain was cold",
    "hate this sad cat",
    "a cold night of rain",
    "very bad and awful",
    "the sad dog is bad",
]
TRAIN_LABELS = np.array([0] * 8 + [1] * 8)
# Served and Keras probabilities are compared on these: short and long (cut to
# SEQUENCE_LENGTH), upper case and accents (lower-cased), unknown words, empty.
PARITY_TEXTS = [
    "the red circle",
    "A Blue SQUARE is not very good at all: the cats and dogs are sad, the rain is cold",
    "café déjà vu, zzz",
    "",
    "hate it",
]


def require_hub_extra():
    """`(keras_hub, tensorflow_text)`, or skip the calling test or fixture."""
    keras_hub = pytest.importorskip("keras_hub", reason=SKIP_REASON)
    tensorflow_text = pytest.importorskip("tensorflow_text", reason=SKIP_REASON)
    return keras_hub, tensorflow_text


def vocabulary():
    """BERT's special tokens, the words above, then every letter and `##letter` piece."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, "##s", "##ed", "##ing"]
    tokens += list(letters) + [f"##{letter}" for letter in letters] + list(".,:!?'")
    return list(dict.fromkeys(tokens))


@pytest.fixture(scope="session")
def preset_dir(tmp_path_factory):
    """A KerasHub BERT preset folder: 2 layers, width 16, a 90-token WordPiece vocabulary.

    Written by `save_to_preset` as a user would bring a real preset onto a
    machine without network; random weights, a fixed seed.
    """
    keras_hub, _ = require_hub_extra()
    import keras

    keras.utils.set_random_seed(7)
    folder = tmp_path_factory.mktemp("tiny_bert_preset")
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=vocabulary(), lowercase=True)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=tokenizer.vocabulary_size(),
        num_layers=2,
        num_heads=2,
        hidden_dim=HIDDEN_DIM,
        intermediate_dim=32,
        max_sequence_length=32,
    )
    backbone.save_to_preset(str(folder))
    tokenizer.save_to_preset(str(folder))
    return folder


def text_classifier(preset_dir, truncate=None, fine_tune=False):
    """Raw text -> `HubTextEncoder(pooling="mean")` -> Dense softmax over 2 classes.

    `truncate=None` keeps the encoder's default truncation (what a user gets).
    """
    import keras

    from multimodal_tf.models.hub_text_encoder import HubTextEncoder

    text = keras.Input(shape=(), dtype="string", name="text")
    options = {} if truncate is None else {"truncate": truncate}
    encoder = HubTextEncoder(
        str(preset_dir),
        sequence_length=SEQUENCE_LENGTH,
        pooling="mean",
        fine_tune=fine_tune,
        name="hub_text_encoder",
        **options,
    )
    probabilities = keras.layers.Dense(2, activation="softmax", name="label")(encoder(text))
    model = keras.Model(text, probabilities)
    model.compile(keras.optimizers.Adam(0.05), "sparse_categorical_crossentropy")
    return model


def strings(texts):
    return np.array(list(texts), dtype=object)


@pytest.fixture(scope="session")
def trained(preset_dir):
    """The text classifier (frozen backbone) after 4 epochs of 2 steps, and its history.

    Returns a dict: `model`, `losses` (per epoch), `before` and `after` (every
    weight, by path, as NumPy arrays).
    """
    import keras

    model = text_classifier(preset_dir)
    before = {w.path: keras.ops.convert_to_numpy(w) for w in model.weights}
    history = model.fit(
        strings(TRAIN_TEXTS), TRAIN_LABELS, epochs=4, batch_size=8, shuffle=False, verbose=0
    )
    after = {w.path: keras.ops.convert_to_numpy(w) for w in model.weights}
    return {"model": model, "losses": history.history["loss"], "before": before, "after": after}


def export_text_model(model, folder):
    """Writes a SavedModel of `model` with `serving_default(text: tf.string [batch])`.

    The export that `serving/export.py` makes for a text model, reduced to the
    text input: `ExportArchive` tracking the Keras model (its backbone's
    variables, and the tokenizer's state, which the graph captures), one
    signature, `probabilities` out.
    """
    import keras
    import tensorflow as tf

    from multimodal_tf.serving.export import _trace_once

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "serving_default",
        lambda text: {"probabilities": model(text, training=False)},
        input_signature=[tf.TensorSpec([None], tf.string, name="text")],
    )
    _trace_once(archive, "serving_default")  # as export_saved_model does: one trace, not two
    archive.write_out(str(folder), verbose=False)
    return folder


@pytest.fixture(scope="session")
def exports(trained, tmp_path_factory):
    """SavedModels of the trained classifier (default truncation) and of its round-robin twin.

    The round-robin twin has the trained model's weights: the two differ only
    in the truncation op of their graphs. Returns a dict: `waterfall`,
    `round_robin` (folders) and `twin` (the round-robin Keras model).
    """
    folder = tmp_path_factory.mktemp("exports")
    model = trained["model"]
    twin = text_classifier(model_preset(model), truncate="round_robin")
    twin.set_weights(model.get_weights())
    return {
        "waterfall": export_text_model(model, folder / "waterfall"),
        "round_robin": export_text_model(twin, folder / "round_robin"),
        "twin": twin,
    }


def model_preset(model):
    return model.get_layer("hub_text_encoder").preset
