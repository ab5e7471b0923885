"""The second stage over cached feature maps of a frozen pretrained backbone."""

import keras
import numpy as np
import pytest

from multimodal_tf.models.classifier import MultimodalClassifier
from multimodal_tf.training import fit
from multimodal_tf.training.callbacks import AtomicBackupAndRestore, read_history
from multimodal_tf.training.feature_maps import (
    _cache_note,
    caches_feature_maps,
    fit_second_stage,
)
from multimodal_tf.training.fit import train
from tests.training.test_wide_training import _local_backbone_file, _wide_image_config


def _config(tiny_config, folder):
    """The pretrained default in small: wide path with image features, then the rest."""
    config = _wide_image_config(tiny_config, _local_backbone_file(folder))
    config.training.epochs = 3
    config.training.early_stopping_patience = 3
    config.training.drop_deep_if_worse = False  # the saved model is the second stage's best
    config.training.wide_epochs = 1
    return config


def _fit_once(model, batches, callbacks=(), cache_bytes=2**30, verbose=0):
    """`fit_second_stage` for one epoch over `batches(split)` of 8 rows, as `train()` calls it."""
    from multimodal_tf.training.feature_maps import fit_second_stage

    model.compile()
    return fit_second_stage(
        model,
        batches("train"),
        batches("val"),
        list(callbacks),
        epochs=1,
        batch_size=8,
        cache_bytes=cache_bytes,
        verbose=verbose,
    )


def test_without_room_for_the_maps_the_model_itself_is_fit(
    tiny_manifest, tiny_config, tmp_path, capsys
):
    # With room, the map model is fit: the killed-run test below checks that in train().
    from tests.training.test_wide_training import _first_stage_setup

    batches, build = _first_stage_setup(tiny_manifest, _config(tiny_config, tmp_path), tmp_path)
    model = build()
    history = _fit_once(model, batches, cache_bytes=0, verbose=1)
    printed = capsys.readouterr().out
    assert "feature maps (0 MB) do not fit in data.cache_decoded_images_mb (0 MB)" in printed
    assert history.model is model  # the classifier itself, over the images


@pytest.mark.slow
def test_the_rest_of_the_training_runs_over_cached_maps_and_a_killed_run_resumes(
    tiny_manifest, tiny_config, tmp_path, capsys, monkeypatch
):
    from multimodal_tf.training import feature_maps, wide_first
    from tests.helpers import interrupt_train_at

    def not_again(*args, **kwargs):
        raise AssertionError("the backbone ran over the images a second time")

    caches = []

    class CountedCache(feature_maps.FeatureMapCache):
        def __init__(self, *args, **kwargs):
            caches.append(self)
            super().__init__(*args, **kwargs)

    # One pass of the backbone serves both stages: neither computes its own.
    monkeypatch.setattr(wide_first, "pooled_batches", not_again)
    monkeypatch.setattr(feature_maps, "FeatureMapCache", CountedCache)
    config = _config(tiny_config, tmp_path)
    assert config.model.image_augmentation == "auto"  # off for the frozen backbone
    restore = interrupt_train_at(monkeypatch, epoch=2)
    with pytest.raises(RuntimeError, match="interrupted"):
        train(tiny_manifest, config, tmp_path / "run", verbose=1)
    printed = capsys.readouterr().out
    assert "feature maps are computed once and cached for both stages" in printed
    assert "The rest of the training reads the feature maps cached in the first stage" in printed
    assert len(caches) == 1
    backup = tmp_path / "run" / "backup"
    assert AtomicBackupAndRestore.saved_epoch(backup) == 2
    # The backup is the classifier's: it loads into a model that takes images.
    weights = next(backup.glob("epoch-*.weights.h5"))

    # The same command again resumes the second stage over maps cached anew.
    restore()
    fitted = []

    def recording(*args, **kwargs):
        history = fit_second_stage(*args, **kwargs)
        fitted.append(history.model)
        return history

    monkeypatch.setattr(fit, "fit_second_stage", recording)
    result = train(tiny_manifest, config, tmp_path / "run", verbose=0)
    # With room for the maps, what was fit is the model over them, not the classifier.
    assert len(fitted) == 1 and not isinstance(fitted[0], MultimodalClassifier)
    assert not backup.exists() and not weights.exists()
    history = read_history(tmp_path / "run" / "history.csv")
    assert history["epoch"] == [0, 1, 2]  # two epochs before the kill, one after it
    assert "image" in result.model.input
    # The checkpoint saved the classifier, images in, at the second stage's best epoch.
    loaded = keras.saving.load_model(tmp_path / "run" / "model.keras")
    assert isinstance(loaded, MultimodalClassifier) and "image" in loaded.input
    assert result.metrics["val"]["macro_f1"] == pytest.approx(
        max(history["val_macro_f1"]), abs=1e-5
    )


def test_only_a_frozen_backbone_without_augmentation_caches_its_maps(tmp_path):
    from tests.helpers import tiny_model
    from tests.models.test_feature_map_model import _backbone_model

    assert caches_feature_maps(_backbone_model(tmp_path))
    assert not caches_feature_maps(_backbone_model(tmp_path, image_augmentation=True))
    assert not caches_feature_maps(_backbone_model(tmp_path, trainable_backbone=True))
    assert not caches_feature_maps(tiny_model())  # the scratch conv trains
    assert not caches_feature_maps(tiny_model(modalities=("text",)))


def test_maps_are_cached_only_for_a_model_built_without_a_strategy(tmp_path):
    import tensorflow as tf

    from multimodal_tf.training.feature_maps import feature_map_cache_bytes
    from tests.models.test_feature_map_model import _backbone_model

    batches = tf.data.Dataset.range(10).batch(4)  # 3 batches of at most 4 rows
    model = _backbone_model(tmp_path, modalities=("image",))
    row = 4 * (1 * 1 * 1280 + 1)  # a 1x1x1280 map and image_present, float32
    assert feature_map_cache_bytes(model, [batches, batches], 4) == 2 * 3 * 4 * row
    assert feature_map_cache_bytes(model, [batches.repeat()], 4) is None
    with tf.distribute.MirroredStrategy(["/cpu:0"]).scope():
        mirrored = _backbone_model(tmp_path, modalities=("image",))
    assert feature_map_cache_bytes(mirrored, [batches], 4) is None


def test_a_verbose_run_says_whether_it_caches_the_maps():
    assert "computed once and cached (333 MB)" in _cache_note(333 * 2**20, 2**30)
    assert "feature maps (333 MB) do not fit in data.cache_decoded_images_mb (1 MB)" in (
        _cache_note(333 * 2**20, 2**20)
    )
    assert "no cache under a tf.distribute strategy" in _cache_note(None, 2**30)


def test_the_cached_maps_are_the_encoders_maps(tiny_manifest, tiny_config, tmp_path):
    from multimodal_tf.training.feature_maps import FeatureMapCache
    from tests.training.test_wide_training import _first_stage_setup

    config = _config(tiny_config, tmp_path)
    batches, build = _first_stage_setup(tiny_manifest, config, tmp_path)
    model = build()
    rows = FeatureMapCache(model, batches("train"), batches("val"), 8).maps("val")
    (features, labels), (images, expected) = next(iter(rows)), next(iter(batches("val")))
    assert set(features) == {"token_ids", "image_present", "image_feature_map"}
    np.testing.assert_allclose(
        features["image_feature_map"].numpy(),
        model.image_encoder.feature_map(images["image"]).numpy(),
        rtol=1e-4,
        atol=1e-4,
    )
    np.testing.assert_array_equal(labels.numpy(), expected.numpy())


def test_one_cache_gives_both_stages_what_each_would_compute(tiny_manifest, tiny_config, tmp_path):
    from multimodal_tf.models.wide_model import POOLED_FEATURES
    from multimodal_tf.training.feature_maps import (
        FEATURE_MAP,
        FeatureMapCache,
        _to_map,
        share_feature_maps,
    )
    from multimodal_tf.training.wide_first import pooled_batches
    from tests.training.test_wide_training import _first_stage_setup

    batches, build = _first_stage_setup(tiny_manifest, _config(tiny_config, tmp_path), tmp_path)
    model = build()
    cache = FeatureMapCache(model, batches("train"), batches("val"), 8)
    pairs = [
        (cache.pooled("val"), pooled_batches(batches("val"), model, 8), POOLED_FEATURES),
        # The maps as the encoder computes them, batch by batch, uncached.
        (cache.maps("val"), batches("val").map(lambda f, y: (_to_map(model)(f), y)), FEATURE_MAP),
    ]
    for shared_rows, own_rows, name in pairs:
        for (shared, labels), (own, expected) in zip(shared_rows, own_rows, strict=True):
            assert set(shared) == set(own)
            np.testing.assert_allclose(shared[name], own[name], rtol=1e-5, atol=1e-5)
            np.testing.assert_array_equal(shared["token_ids"], own["token_ids"])
            np.testing.assert_array_equal(labels, expected)
    assert int(cache.maps("train", shuffle=True).cardinality()) == int(
        batches("train").cardinality()
    )
    # Shared only when asked for, and only when the maps and pooled features fit.
    train_batches, val_batches = batches("train"), batches("val")
    assert share_feature_maps(model, train_batches, val_batches, 8, 2**30, None) is None
    shared = {}
    assert share_feature_maps(model, train_batches, val_batches, 8, 0, shared) is None
    assert not shared
    cache = share_feature_maps(model, train_batches, val_batches, 8, 2**30, shared)
    assert shared == {"cache": cache}
