import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from multimodal_tf.models.classifier import MultimodalClassifier
from multimodal_tf.models.preprocessor import MultimodalPreprocessor
from tests.conftest import SHARED, requires_shared, write_manifest
from tests.helpers import (
    IMAGES,
    LABELS,
    TEXTS,
    compiled_for_saving,
    features,
    run_export_test,
    run_model_saving_test,
    run_serialization_test,
    tiny_model,
)

MOBILENET = SHARED / "weights" / "mobilenet_v2_0.35_224_no_top_imagenet_tm.weights.h5"
GLOVE = SHARED / "weights" / "glove.6B.100d.top2717.txt"


def test_fit_reduces_the_loss():
    model = tiny_model()
    history = model.fit(features(model), LABELS, epochs=15, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert set(history.history) >= {"accuracy", "macro_f1", "loss"}


@pytest.mark.parametrize("source", ["dataset", "arrays"])
def test_fit_traces_each_step_once(source, monkeypatch):
    # Keras builds the optimizer and metrics inside the first trace unless the
    # model builds them first; the second trace cost about 4 s per `fit`.
    traces = {"train": 0, "test": 0}
    train_step, test_step = MultimodalClassifier.train_step, MultimodalClassifier.test_step

    def counting(kind, step):
        def wrapped(self, data):
            traces[kind] += 1
            return step(self, data)

        return wrapped

    monkeypatch.setattr(MultimodalClassifier, "train_step", counting("train", train_step))
    monkeypatch.setattr(MultimodalClassifier, "test_step", counting("test", test_step))
    model = tiny_model()
    if source == "dataset":
        dataset = tf.data.Dataset.from_tensor_slices((features(model), LABELS)).batch(2)
        fit_data = dict(x=dataset, validation_data=dataset, shuffle=False)
    else:  # tensors and NumPy labels, with class weights: Keras makes the dataset
        fit_data = dict(
            x=features(model),
            y=LABELS,
            batch_size=2,
            validation_data=(features(model), LABELS),
            class_weight={0: 1.0, 1: 2.0},
        )
    history = model.fit(**fit_data, epochs=2, verbose=0)
    assert traces == {"train": 1, "test": 1}
    assert np.isfinite(history.history["val_loss"]).all()


@pytest.mark.parametrize("modalities", [("text", "image"), ("text",), ("image",)])
def test_serialization_and_keras_saving(modalities, tmp_path):
    model = tiny_model(modalities)
    model.fit(features(model), LABELS, epochs=1, verbose=0)
    restored_from_config = run_serialization_test(model)
    assert restored_from_config.modalities == tuple(modalities)
    restored = run_model_saving_test(model, features(model), tmp_path)
    assert restored.preprocessor.vocabulary == model.preprocessor.vocabulary
    # The restored model is compiled and trains on.
    restored.fit(features(model), LABELS, epochs=1, verbose=0)


def test_unimodal_model_ignores_the_other_feature():
    model = tiny_model(("text",))
    batch = features(model)
    altered = dict(batch, image=tf.zeros_like(batch["image"]))
    np.testing.assert_allclose(model.predict(batch, verbose=0), model.predict(altered, verbose=0))


def test_export_matches_keras_model_in_a_process_without_multimodal_tf(tmp_path):
    model = tiny_model()
    model.fit(features(model), LABELS, epochs=3, verbose=0)
    version_dir = run_export_test(model, TEXTS, IMAGES, tmp_path, isolated=True)
    assert (version_dir / "assets.extra" / "labels.txt").read_text().split() == ["warm", "cold"]


def test_a_lexicon_in_the_bag_serves_from_lookup_tables_without_python(tmp_path):
    preprocessor = MultimodalPreprocessor(
        sequence_length=None,
        image_size=(16, 16),
        text_features="ngrams",
        lexicon={"warm": 0.9, "cold": -1.1, "lovely": 2.8, ":(": -1.9},
        lexicon_negators=["not"],
    )
    preprocessor.adapt(TEXTS + ["not warm"], min_frequency=1)
    model = MultimodalClassifier(
        ["warm", "cold"],
        preprocessor,
        text_encoder="bag",
        hidden_dim=8,
        embedding_dim=4,
        image_filters=(4, 8),
        grid_size=2,
        num_heads=2,
    )
    model = compiled_for_saving(model)
    model.fit(features(model), LABELS, epochs=3, verbose=0)
    # `lovely` and emoticons are in no training text: only valence tokens reach the model.
    texts = ["warm and lovely", "not warm", "cold , not lovely", "lovely :-("]
    run_export_test(model, texts, IMAGES, tmp_path, isolated=True)


@pytest.mark.parametrize(
    "kwargs, message",
    [({"modalities": ("text", "audio")}, "modalities"), ({"modalities": ()}, "modalities")],
)
def test_bad_arguments_are_clear_errors(kwargs, message):
    preprocessor = MultimodalPreprocessor(vocabulary=["a"])
    with pytest.raises(ValueError, match=message):
        MultimodalClassifier(["a", "b"], preprocessor, **kwargs)


def test_needs_two_classes():
    with pytest.raises(ValueError, match="two classes"):
        MultimodalClassifier(["only"], MultimodalPreprocessor(vocabulary=["a"]))


def test_config_is_json():
    """The config survives JSON: the model it rebuilds has the same config and weights shapes."""
    model = tiny_model()
    config = json.loads(json.dumps(model.get_config()))
    rebuilt = MultimodalClassifier.from_config(config)
    assert json.loads(json.dumps(rebuilt.get_config())) == config
    assert [tuple(w.shape) for w in rebuilt.weights] == [tuple(w.shape) for w in model.weights]


def test_text_with_no_known_token_still_gives_probabilities():
    model = tiny_model()
    batch = model.preprocessor(
        {"text": tf.constant(["!!! ???", "zzz"]), "image": tf.constant(IMAGES[:2])}
    )
    probabilities = model.predict(batch, verbose=0)
    assert np.isfinite(probabilities).all()
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, rtol=1e-5)


# Each fusion with a different text encoder, so every part goes through the
# three shared helpers (config round trip, .keras round trip, SavedModel parity).
PARTS = [
    ("concat", "cnn"),
    ("attention", "bag"),
    ("attention", "lstm"),
    ("cross_attention", "transformer"),
    ("gated", "gru"),
    ("late", "bilstm"),
]


@pytest.mark.parametrize("fusion, text_encoder", PARTS)
def test_every_fusion_and_text_encoder_saves_and_serves(fusion, text_encoder, tmp_path):
    model = tiny_model(
        fusion=fusion,
        text_encoder=text_encoder,
        modality_dropout=0.2,
        token_dropout=0.2,
        image_augmentation=text_encoder == "bag",  # identity in the export
    )
    model.fit(features(model), LABELS, epochs=2, verbose=0)
    restored = run_serialization_test(model)
    assert type(restored.fusion).__name__ == type(model.fusion).__name__
    run_model_saving_test(model, features(model), tmp_path)
    # Raw inputs, including a row without an image and a row without text.
    run_export_test(model, TEXTS + ["", "warm red"], IMAGES + [IMAGES[0], b""], tmp_path)


def test_parts_can_be_passed_as_instances():
    from multimodal_tf.layers.fusion import GatedFusion
    from multimodal_tf.models.conv_text_encoder import ConvTextEncoder

    preprocessor = MultimodalPreprocessor(sequence_length=4, image_size=(16, 16))
    preprocessor.adapt(TEXTS, min_frequency=1)
    model = MultimodalClassifier(
        ["warm", "cold"],
        preprocessor,
        text_encoder=ConvTextEncoder(preprocessor.vocabulary_size, 4, hidden_dim=8, filters=4),
        fusion=GatedFusion(hidden_dim=8),
        hidden_dim=8,
        image_filters=(4, 8),
        grid_size=2,
    )
    assert model.predict(features(model), verbose=0).shape == (4, 2)
    assert run_serialization_test(model).fusion.hidden_dim == 8


@pytest.mark.slow  # a real MobileNetV2, saved and served, ~40 s on 2 cores
@pytest.mark.shared
@requires_shared(MOBILENET)
def test_pretrained_backbone_classifier_saves_and_serves(tmp_path, monkeypatch):
    model = tiny_model(
        image_size=64,
        image_encoder="mobilenet_v2",
        image_weights=str(MOBILENET),
        backbone_alpha=0.35,
        grid_size=2,
    )
    backbone_kernel = next(
        w for w in model.image_encoder.weights if "Conv1" in w.path and "kernel" in w.path
    )
    assert model.image_encoder.backbone.trainable is False
    model.fit(features(model), LABELS, epochs=1, verbose=0)
    run_serialization_test(model)
    restored = run_model_saving_test(model, features(model), tmp_path)
    restored_kernel = next(
        w for w in restored.image_encoder.weights if w.path == backbone_kernel.path
    )
    np.testing.assert_allclose(restored_kernel.numpy(), backbone_kernel.numpy())
    run_export_test(model, TEXTS, IMAGES, tmp_path)


@pytest.mark.shared
@requires_shared(GLOVE)
def test_glove_initialises_the_embedding_and_is_not_reread_on_load(tmp_path, monkeypatch):
    model = tiny_model(embedding_dim=100, text_embeddings=str(GLOVE))
    vocabulary = model.preprocessor.vocabulary
    vectors = {}
    with GLOVE.open(encoding="utf-8") as handle:
        for line in handle:
            word, *values = line.rstrip("\n").split(" ")
            if word in vocabulary:
                vectors[word] = np.array(values, "float32")
    assert vectors, "the tiny vocabulary should share words with GloVe"
    embeddings = model.text_encoder.embedding.embeddings.numpy()
    for word, vector in vectors.items():
        np.testing.assert_allclose(embeddings[vocabulary.index(word) + 2], vector, atol=1e-6)
    assert model.text_embedding_coverage == pytest.approx(len(vectors) / len(vocabulary))
    model.save(tmp_path / "model.keras")
    import multimodal_tf.models.classifier as classifier_module

    def fail(*args, **kwargs):
        raise AssertionError("GloVe file read again while loading a saved model")

    monkeypatch.setattr(classifier_module, "load_word_vectors", fail)
    import keras

    restored = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(restored.text_encoder.embedding.embeddings.numpy(), embeddings)


def test_multi_head_multi_label_model_trains_saves_and_serves(tmp_path):
    model = tiny_model(
        class_names={"temperature": ["warm", "cold"], "colour": ["red", "blue", "white"]},
        multi_label=["colour"],
    )
    labels = {
        "temperature": LABELS,
        "colour": np.array([[1, 0, 0], [0, 1, 1], [1, 0, 0], [0, 1, 1]], "float32"),
    }
    history = model.fit(features(model), labels, epochs=2, verbose=0)
    assert {"temperature_macro_f1", "colour_macro_f1"} <= set(history.history)
    outputs = model.predict(features(model), verbose=0)
    assert outputs["temperature"].shape == (4, 2) and outputs["colour"].shape == (4, 3)
    np.testing.assert_allclose(outputs["temperature"].sum(axis=1), 1.0, rtol=1e-5)
    model.get_layer("colour").set_thresholds([0.0, 1.0, 1.0])  # always "red", never the others
    run_serialization_test(model)
    restored = run_model_saving_test(model, features(model), tmp_path)
    np.testing.assert_allclose(restored.get_layer("colour").thresholds.numpy(), [0.0, 1.0, 1.0])

    from multimodal_tf.serving.export import export_saved_model

    served = tf.saved_model.load(str(export_saved_model(model, tmp_path / "served")))
    out = served.signatures["serving_default"](text=tf.constant(TEXTS), image=tf.constant(IMAGES))
    np.testing.assert_allclose(out["colour_probabilities"], outputs["colour"], atol=1e-5)
    assert [v.decode() for v in out["colour_label"].numpy()] == ["red"] * 4
    expected = [model.class_names["temperature"][i] for i in outputs["temperature"].argmax(-1)]
    assert [v.decode() for v in out["temperature_label"].numpy()] == expected

    # Batch prediction scores single-task exports and says so for this one.
    from multimodal_tf.errors import DataError
    from multimodal_tf.serving.predict import predict_manifest

    (tmp_path / "a.png").write_bytes(IMAGES[1])
    manifest = write_manifest(tmp_path, [{"id": "1", "text": "red", "image": "a.png"}])
    with pytest.raises(DataError, match="multi-task export.*colour_label"):
        predict_manifest(tmp_path / "served" / "1", manifest, tmp_path / "out.csv")


def test_wide_and_deep_model_trains_saves_and_serves(tmp_path):
    model = tiny_model(text_encoder="bag", wide=True)
    wide = model.get_layer("label_wide")
    assert not np.any(wide.kernel.numpy())
    deep = tiny_model(text_encoder="bag")
    wide_ids = {id(variable) for variable in wide.weights}
    deep.set_weights([v.numpy() for v in model.weights if id(v) not in wide_ids])
    # An untrained wide path adds nothing: the same probabilities as the deep model.
    np.testing.assert_allclose(
        model.predict(features(model), verbose=0),
        deep.predict(features(model), verbose=0),
        atol=1e-6,
    )
    model.fit(features(model), LABELS, epochs=3, verbose=0)
    assert np.any(wide.kernel.numpy())
    run_serialization_test(model)
    run_model_saving_test(model, features(model), tmp_path)
    run_export_test(model, TEXTS, IMAGES, tmp_path)


def test_wide_and_deep_has_one_wide_path_per_head():
    model = tiny_model(
        class_names={"temperature": ["warm", "cold"], "colour": ["red", "blue", "white"]},
        wide=True,
    )
    assert model.get_layer("temperature_wide").num_classes == 2
    assert model.get_layer("colour_wide").num_classes == 3


def test_wide_l2_reaches_the_models_loss_and_survives_saving(tmp_path):
    model = tiny_model(text_encoder="bag", wide=True, wide_l2=0.5)
    wide = model.get_layer("label_wide")
    assert wide.l2 == 0.5 and not any(float(loss) for loss in model.losses)  # kernel is 0
    wide.kernel.assign(np.ones_like(wide.kernel.numpy()))
    penalty = 0.5 * wide.rate_multiplier**2 * wide.kernel.numpy().size
    np.testing.assert_allclose(float(sum(model.losses)), penalty, rtol=1e-5)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert loaded.wide_l2 == 0.5 and loaded.get_layer("label_wide").l2 == 0.5


def test_wide_needs_the_text_modality():
    with pytest.raises(ValueError, match="wide=True.*no text"):
        tiny_model(("image",), wide=True)
