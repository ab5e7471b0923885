"""`model.wide` and `training.wide_epochs` in the run config: checks, staged training, resume."""

import csv
import shutil
import warnings

import keras
import numpy as np
import pytest

from multimodal_tf.errors import ConfigError
from multimodal_tf.training.ablation import _variant_config
from multimodal_tf.training.callbacks import AtomicBackupAndRestore
from multimodal_tf.training.fit import train
from multimodal_tf.training.wide_first import WIDE_HISTORY_FILE, fit_wide_first


def test_wide_without_text_builds_no_wide_path_and_says_so(
    tiny_manifest, tiny_config, tmp_path, capsys
):
    tiny_config.model.wide = True
    tiny_config.training.wide_epochs = 3
    tiny_config.model.modalities = ("image",)
    result = train(tiny_manifest, tiny_config, tmp_path / "run", verbose=0)
    assert "['image'] has none: this model has no wide path" in capsys.readouterr().out
    assert not result.model.wide and not (tmp_path / "run" / WIDE_HISTORY_FILE).exists()


def test_ablation_keeps_wide_where_there_is_text(tiny_config):
    tiny_config.model.wide = True
    wide = {
        variant: _variant_config(tiny_config, variant, seed=1).model.wide
        for variant in ("text_only", "image_only", "fusion=concat")
    }
    assert wide == {"text_only": True, "image_only": False, "fusion=concat": True}


def test_negative_wide_epochs_is_a_config_error(tiny_manifest, tiny_config, tmp_path):
    tiny_config.training.wide_epochs = -1
    with pytest.raises(ConfigError, match=r"wide_epochs must be 0 .* got -1"):
        train(tiny_manifest, tiny_config, tmp_path / "run", verbose=0)
    assert not (tmp_path / "run").exists()


def test_negative_wide_ema_epochs_is_a_config_error(tiny_manifest, tiny_config, tmp_path):
    tiny_config.training.wide_ema_epochs = -2
    with pytest.raises(ConfigError, match=r"wide_ema_epochs must be 0 .* got -2"):
        train(tiny_manifest, tiny_config, tmp_path / "run", verbose=0)


def test_the_wide_paths_average_spans_its_epochs_in_steps_and_needs_a_known_length():
    import tensorflow as tf

    from multimodal_tf.training.wide_first import ema_momentum

    hundred_steps = tf.data.Dataset.range(400).batch(4)
    assert ema_momentum(4, hundred_steps) == pytest.approx(1 - 1 / 400)
    assert ema_momentum(0, hundred_steps) is None
    assert ema_momentum(4, hundred_steps.filter(lambda x: True)) is None  # unknown length
    with pytest.raises(ValueError, match="ema_epochs must be 0 .* got -1"):
        ema_momentum(-1, hundred_steps)


def test_wide_c_is_logistic_regressions_c_on_the_training_rows(tiny_config):
    from multimodal_tf.models.preprocessor import MultimodalPreprocessor
    from multimodal_tf.models.wide_text_logits import wide_l2_for
    from multimodal_tf.training.run_model import build_model

    preprocessor = MultimodalPreprocessor(sequence_length=8, image_size=(16, 16))
    preprocessor.adapt(["warm fire", "cold snow"], min_frequency=1)
    config = tiny_config.model
    config.wide, config.wide_c = True, 4.0
    model = build_model(config, ["warm", "cold"], preprocessor, num_train=500)
    assert model.wide_l2 == pytest.approx(1 / (2 * 4.0 * 500)) == wide_l2_for(4.0, 500)
    assert build_model(config, ["warm", "cold"], preprocessor).wide_l2 == 0.0  # no rows given
    config.wide_c = 0.0  # no penalty at all
    assert build_model(config, ["warm", "cold"], preprocessor, num_train=500).wide_l2 == 0.0
    with pytest.raises(ValueError, match="C > 0"):
        wide_l2_for(0.0, 500)


def _wide_config(config, wide_epochs=6):
    config.model.text_encoder = "bag"
    config.data.sequence_length = 64
    config.model.wide = True
    config.training.wide_epochs = wide_epochs
    config.training.epochs = 3
    config.training.early_stopping_patience = 3
    return config


@pytest.mark.parametrize("ema_epochs", [0.0, 2.0])
def test_fit_wide_first_keeps_its_best_epoch_and_the_deep_fit_leaves_it_alone(
    tiny_manifest, tiny_config, tmp_path, ema_epochs
):
    config = _wide_config(tiny_config)
    batches, build = _first_stage_setup(tiny_manifest, config, tmp_path)
    keras.utils.set_random_seed(1)
    model = build()
    best = fit_wide_first(
        model,
        batches("train"),
        batches("val"),
        epochs=6,
        patience=2,
        learning_rate=0.01,
        ema_epochs=ema_epochs,
        log_file=tmp_path / "wide.csv",
        verbose=0,
    )
    rows = list(csv.DictReader((tmp_path / "wide.csv").open()))
    scores = [float(row["val_macro_f1"]) for row in rows]
    assert 1 <= len(rows) <= 6 and best["val_macro_f1"] == pytest.approx(max(scores))
    assert best["epoch"] == scores.index(max(scores)) + 1
    wide = model.get_layer("label_wide")
    assert not wide.trainable and np.any(wide.kernel.numpy())
    # The kept weights are the best epoch's (with `ema_epochs`, the average that
    # validation read, not the last step's): the linear model scores that again.
    linear = model.wide_model()
    linear.compile(loss=model.default_loss(), metrics=model.default_metrics())
    again = linear.evaluate(_token_ids(batches("val")), return_dict=True, verbose=0)
    assert again["macro_f1"] == pytest.approx(best["val_macro_f1"], abs=1e-5)
    assert again["loss"] == pytest.approx(float(rows[best["epoch"] - 1]["val_loss"]), rel=1e-4)

    kernel = wide.kernel.numpy().copy()
    deep = [v.numpy().copy() for v in model.trainable_weights]
    model.compile(learning_rate=0.01)
    model.fit(batches("train"), epochs=2, verbose=0, shuffle=False)
    np.testing.assert_array_equal(wide.kernel.numpy(), kernel)
    after = [v.numpy() for v in model.trainable_weights]
    assert any(not np.array_equal(a, b) for a, b in zip(after, deep, strict=True))


def _first_stage_setup(manifest, config, folder):
    """`(batches(split), build())`: batches of 8 and a fresh model, as `train()` makes them."""
    from multimodal_tf.data.source import TrainingData
    from multimodal_tf.training.run_model import adapted_preprocessor, build_model

    source = TrainingData.load(manifest, config.data, folder, verbose=0)
    preprocessor = adapted_preprocessor(config, source.train_texts())
    names = source.class_names

    def batches(split):
        return source.dataset(split, preprocessor, names, 8, split == "train", 1)

    return batches, lambda: build_model(config.model, names, preprocessor)


def _token_ids(batches):
    return batches.map(lambda features, labels: ({"token_ids": features["token_ids"]}, labels))


def test_a_run_saves_a_frozen_wide_path_and_a_resumed_run_keeps_it(
    tiny_manifest, tiny_config, tmp_path, monkeypatch
):
    from multimodal_tf.training import wide_first
    from tests.helpers import interrupt_train_at

    config = _wide_config(tiny_config)
    config.model.modalities = ("text",)  # the wide path reads all of it: the deep path is judged
    config.training.early_stopping_patience = 10
    restore = interrupt_train_at(monkeypatch, epoch=1)
    with pytest.raises(RuntimeError, match="interrupted"):
        train(tiny_manifest, config, tmp_path / "run", verbose=0)
    backup = tmp_path / "run" / "backup"
    assert AtomicBackupAndRestore.saved_epoch(backup) == 1
    first_log = (tmp_path / "run" / WIDE_HISTORY_FILE).read_text()

    restore()
    calls = []
    monkeypatch.setattr(wide_first, "fit_wide_first", lambda *a, **k: calls.append(1))
    result = train(tiny_manifest, config, tmp_path / "run", verbose=0)
    assert not calls  # the backup holds the wide path: it is not trained again
    assert (tmp_path / "run" / WIDE_HISTORY_FILE).read_text() == first_log
    with warnings.catch_warnings():
        # The frozen path is frozen again on load, so the optimizer state fits.
        warnings.filterwarnings("error", message="Skipping variable loading")
        loaded = keras.saving.load_model(tmp_path / "run" / "model.keras")
    wide = loaded.get_layer("label_wide")
    assert not wide.trainable and np.any(wide.kernel.numpy())
    assert loaded.get_config()["frozen_layers"] == ["label_wide"]
    np.testing.assert_allclose(
        wide.kernel.numpy(), result.model.get_layer("label_wide").kernel.numpy()
    )
    # The verdict on the deep path is recorded (without drop_deep_if_worse it is not
    # judged: test_a_second_stage_that_cannot_beat_the_first_stops_after_its_patience).
    verdict = result.metrics["deep_path"]
    assert set(verdict) == {"wide", "deep", "kept"} and verdict["kept"] == (
        verdict["deep"] >= verdict["wide"]
    )


def test_the_wide_model_is_a_keras_model_that_saves(tmp_path):
    from multimodal_tf.models.wide_model import WideModel
    from tests.helpers import features, tiny_model

    model = tiny_model(text_encoder="bag", wide=True)
    model.get_layer("label_wide").kernel.assign(
        np.random.default_rng(0).normal(size=model.get_layer("label_wide").kernel.shape)
    )
    linear = model.wide_model()
    assert isinstance(linear, WideModel)
    token_ids = {"token_ids": features(model)["token_ids"]}
    linear.save(tmp_path / "wide.keras")
    loaded = keras.saving.load_model(tmp_path / "wide.keras")
    assert isinstance(loaded, WideModel)
    np.testing.assert_allclose(
        loaded.predict(token_ids, verbose=0), linear.predict(token_ids, verbose=0), rtol=1e-6
    )


def _local_backbone_file(folder):
    """A MobileNetV2 0.35 no-top weights file written here: no download, random weights."""
    backbone = keras.applications.MobileNetV2(
        alpha=0.35, include_top=False, weights=None, input_shape=(None, None, 3)
    )
    path = folder / "mobilenet_v2_0.35.weights.h5"
    backbone.save_weights(path)
    return path


def _wide_image_config(config, weights_file):
    config = _wide_config(config, wide_epochs=3)
    config.data.image_size = (32, 32)
    config.model.image_encoder = "mobilenet_v2"
    config.model.backbone_alpha = 0.35
    config.model.grid_size = 1
    config.model.image_weights = str(weights_file)
    return config


@pytest.mark.slow
def test_with_backbone_weights_the_wide_path_reads_pooled_image_features_and_serves(
    tiny_manifest, tiny_config, tmp_path, capsys, imagenet_cache
):
    from tests.helpers import run_export_test, run_model_saving_test

    # ImageNet weights (from the test's Keras cache): a randomly initialised backbone's
    # pooled features are the same for every image, so nothing would show that the
    # served graph reads the image as the Keras model does.
    config = _wide_image_config(tiny_config, "imagenet")
    result = train(tiny_manifest, config, tmp_path / "run", verbose=1)
    printed = capsys.readouterr().out
    assert "over the text and the backbone's pooled image features" in printed
    assert "its weights averaged over about 4 epochs (training.wide_ema_epochs)" in printed
    # With augmentation off (auto), one backbone pass gives both stages what they read.
    assert "feature maps are computed once and cached for both stages" in printed
    model = result.model
    assert model.wide_image and model.wide_layer_names() == ["label_wide", "label_wide_image"]
    layer = model.get_layer("label_wide_image")
    # Standardized with the training images' statistics, trained first, then frozen.
    assert not layer.trainable and np.any(layer.variance.numpy() != 1.0)
    assert np.any(layer.kernel.numpy())
    assert model.get_config()["frozen_layers"] == ["label_wide", "label_wide_image"]
    texts = ["sunny warm fire", "icy cold snow"]
    images = [(tiny_manifest.parent / "images" / name).read_bytes() for name in ("0.jpg", "1.png")]
    features = model.preprocessor(
        {"text": np.array(texts, dtype=object), "image": np.array(images, dtype=object)}
    )
    run_model_saving_test(model, features, tmp_path)
    run_export_test(model, texts, images, tmp_path)


def test_the_first_stage_computes_the_frozen_backbones_features_once_when_they_fit(
    tiny_manifest, tiny_config, tmp_path, monkeypatch
):
    from multimodal_tf.training import wide_first

    config = _wide_image_config(tiny_config, _local_backbone_file(tmp_path))
    batches, build = _first_stage_setup(tiny_manifest, config, tmp_path)

    def first_stage(cache_bytes):
        keras.utils.set_random_seed(1)
        model = build()
        calls = []
        encoder_call = type(model.image_encoder).call

        def counting_call(self, images, *args, **kwargs):
            calls.append(1)  # once per trace or eager call
            return encoder_call(self, images, *args, **kwargs)

        monkeypatch.setattr(type(model.image_encoder), "call", counting_call)
        best = fit_wide_first(
            model,
            batches("train"),
            batches("val"),
            epochs=3,
            patience=3,
            learning_rate=0.01,
            verbose=0,
            batch_size=8,
            cache_bytes=cache_bytes,
        )
        monkeypatch.undo()
        return model, best, len(calls)

    streamed, _, streamed_calls = first_stage(cache_bytes=0)
    cached, best, cached_calls = first_stage(cache_bytes=2**30)
    # Cached: the encoder is traced once per split's pipeline (and once for the
    # standardization's pass, which fills the training cache), not run per epoch.
    assert cached_calls < streamed_calls
    layer = cached.get_layer("label_wide_image")
    for name in ("mean", "variance"):  # statistics do not depend on the rows' order
        np.testing.assert_allclose(
            getattr(layer, name).numpy(),
            getattr(streamed.get_layer("label_wide_image"), name).numpy(),
            rtol=1e-4,
            atol=1e-5,
        )
    # The model over cached features is the linear path over images: same weights.
    linear = cached.wide_model()
    linear.compile(loss=cached.default_loss(), metrics=cached.default_metrics())
    val = wide_first._wide_features(batches("val"), cached)  # what the linear path reads
    again = linear.evaluate(val, return_dict=True, verbose=0)
    assert again["macro_f1"] == pytest.approx(best["val_macro_f1"], abs=1e-5)
    rows = wide_first.pooled_batches(batches("val"), cached, 8)
    features, _ = next(iter(rows))
    images = next(iter(batches("val")))[0]["image"]
    np.testing.assert_allclose(
        features["image_pooled"].numpy(),
        cached.image_encoder(images, return_pooled=True)[1].numpy(),
        rtol=1e-4,
        atol=1e-4,
    )


def test_a_verbose_first_stage_says_whether_it_caches_the_backbones_features():
    from multimodal_tf.training.wide_first import _cache_note

    assert "computed once and cached (43 MB)" in _cache_note(43 * 2**20, 2**30)
    assert "43 MB do not fit in data.cache_decoded_images_mb (1 MB)" in _cache_note(
        43 * 2**20, 2**20
    )
    assert "recomputed every epoch (no cache" in _cache_note(None, 2**30)


def test_wide_image_needs_backbone_weights_and_a_wide_path(tiny_config, tmp_path):
    from multimodal_tf.models.classifier import MultimodalClassifier
    from multimodal_tf.training.run_model import build_model
    from tests.helpers import tiny_model

    config = _wide_image_config(tiny_config, _local_backbone_file(tmp_path))
    preprocessor = tiny_model(text_encoder="bag", image_size=32).preprocessor
    assert build_model(config.model, ["a", "b"], preprocessor).wide_image
    config.model.image_weights = ""  # a randomly initialised backbone has nothing to read yet
    assert not build_model(config.model, ["a", "b"], preprocessor).wide_image
    with pytest.raises(ValueError, match="needs `wide=True` and the image modality"):
        MultimodalClassifier(["a", "b"], preprocessor, wide_image=True)


def test_auto_image_augmentation_is_off_only_for_a_frozen_pretrained_backbone(tiny_config):
    from multimodal_tf.training.run_model import image_augmentation_for

    model = tiny_config.model
    assert model.image_augmentation == "auto"
    assert image_augmentation_for(model)  # the scratch conv encoder trains
    model.image_encoder, model.image_weights = "mobilenet_v2", "backbone.weights.h5"
    assert not image_augmentation_for(model)
    model.trainable_backbone = True  # fine-tuned: it learns from the augmented images
    assert image_augmentation_for(model)
    model.image_weights = ""  # a backbone trained from scratch
    model.trainable_backbone = False
    assert image_augmentation_for(model)
    model.image_weights = "backbone.weights.h5"
    for setting in (True, False):  # what the user says wins
        model.image_augmentation = setting
        assert image_augmentation_for(model) is setting


def _write_log(path, values):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["epoch", "val_macro_f1"])
        writer.writerows(enumerate(values))


def test_the_deep_path_is_dropped_if_it_does_worse_than_the_wide_path_on_val(
    tiny_manifest, tiny_config, tmp_path, capsys
):
    from multimodal_tf.data.dataset import make_dataset
    from multimodal_tf.data.manifest import read_manifest
    from multimodal_tf.training.deep_path import keep_deep_path_if_better
    from multimodal_tf.training.evaluate import predict_records

    trained = tmp_path / "trained"
    config = _wide_config(tiny_config)
    config.training.drop_deep_if_worse = False  # judged below, on logs written here
    model = train(tiny_manifest, config, trained, verbose=0).model
    records = read_manifest(tiny_manifest)
    features = next(iter(make_dataset(records, model.preprocessor, model.class_names, 64)))[0]
    linear = model.wide_model().predict({"token_ids": features["token_ids"]}, verbose=0)
    whole = predict_records(model, records)[0]
    # One training, judged three ways on copies of its run folder; a tie keeps the
    # whole model: the one the user asked for.
    for deep_best, kept in [(0.70, True), (0.55, False), (0.60, True)]:
        run = tmp_path / f"deep-{deep_best}"
        shutil.copytree(trained, run)
        capsys.readouterr()
        _write_log(run / WIDE_HISTORY_FILE, [0.5, 0.6, 0.58])
        _write_log(run / "history.csv", [0.4, deep_best])
        verdict = keep_deep_path_if_better(run / "model.keras", run)
        assert verdict == {"wide": 0.6, "deep": deep_best, "kept": kept}
        assert ("wide path alone" in capsys.readouterr().out) is not kept, deep_best
        saved = keras.saving.load_model(run / "model.keras")
        if kept:
            np.testing.assert_allclose(predict_records(saved, records)[0], whole, atol=1e-6)
        else:  # exactly the frozen linear model
            np.testing.assert_allclose(saved.predict(features, verbose=0), linear, atol=1e-5)


@pytest.mark.parametrize(
    "drop, modalities, judged",
    [(True, ("text",), True), (False, ("text",), False), (True, ("text", "image"), False)],
    ids=["drop", "no-drop", "wide-path-without-the-image"],
)
def test_a_second_stage_that_cannot_beat_the_first_stops_after_its_patience(
    tiny_manifest, tiny_config, tmp_path, monkeypatch, capsys, drop, modalities, judged
):
    from multimodal_tf.training import fit
    from multimodal_tf.training.callbacks import ResumableEarlyStopping

    config = _wide_config(tiny_config)
    config.model.modalities = modalities
    config.training.epochs, config.training.early_stopping_patience = 6, 2
    config.training.drop_deep_if_worse = drop
    # A first stage no epoch can beat (the verdict itself still reads the real log).
    monkeypatch.setattr(fit, "first_stage_best", lambda folder: 1.01)
    stops, original = [], fit.training_callbacks

    def recording(*args, **kwargs):
        callbacks, initial_epoch = original(*args, **kwargs)
        stops.extend(c for c in callbacks if isinstance(c, ResumableEarlyStopping))
        return callbacks, initial_epoch

    monkeypatch.setattr(fit, "training_callbacks", recording)
    result = train(tiny_manifest, config, tmp_path / "run", verbose=0)
    epochs = len(list(csv.DictReader((tmp_path / "run" / "history.csv").open())))
    assert stops[0].baseline == (1.01 if judged else None)
    # Told not to judge, or when dropping the deep path would drop the image (the wide path
    # here reads only the text), it records no verdict and keeps the deep path.
    assert ("deep_path" in result.metrics) == judged
    assert ("image" in result.metrics["predicted_by"].get("deep", [])) == ("image" in modalities)
    assert ("training.drop_deep_if_worse never drops a modality" in capsys.readouterr().out) == (
        drop and not judged
    )
    if judged:  # stopped once its patience ran out below the baseline, long before epoch 6
        assert epochs <= config.training.early_stopping_patience + 1


def test_dropping_the_deep_path_never_leaves_a_half_written_model(tmp_path, monkeypatch):
    from multimodal_tf.training.deep_path import keep_deep_path_if_better
    from tests.helpers import tiny_model

    tiny_model(text_encoder="bag", wide=True).save(tmp_path / "model.keras")
    before = (tmp_path / "model.keras").read_bytes()
    _write_log(tmp_path / WIDE_HISTORY_FILE, [0.6])
    _write_log(tmp_path / "history.csv", [0.5])  # worse: the deep path is dropped, re-saved

    def killed_while_saving(self, filepath, *args, **kwargs):
        with open(filepath, "wb") as handle:
            handle.write(b"PK\x03\x04 the first bytes of a .keras zip")
        raise KeyboardInterrupt("killed while saving")

    monkeypatch.setattr(keras.Model, "save", killed_while_saving)
    with pytest.raises(KeyboardInterrupt):
        keep_deep_path_if_better(tmp_path / "model.keras", tmp_path)
    # The old file, whole; no temporary file left for a later step to trip on.
    assert (tmp_path / "model.keras").read_bytes() == before
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "history.csv",
        "model.keras",
        WIDE_HISTORY_FILE,
    ]
