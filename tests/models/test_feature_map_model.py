"""`MultimodalClassifier.feature_map_model()`: the same model over cached feature maps."""

import keras
import numpy as np
import pytest

from multimodal_tf.models.feature_map_model import FEATURE_MAP, FeatureMapTokens
from tests.helpers import features, run_serialization_test, tiny_model


def _backbone_model(folder, **kwargs):
    """A frozen MobileNetV2 0.35 from a local file (random weights: no download)."""
    backbone = keras.applications.MobileNetV2(
        alpha=0.35, include_top=False, weights=None, input_shape=(None, None, 3)
    )
    weights = folder / "mobilenet_v2_0.35.weights.h5"
    backbone.save_weights(weights)
    settings = dict(
        image_encoder="mobilenet_v2",
        backbone_alpha=0.35,
        image_weights=str(weights),
        image_size=32,
        grid_size=1,
        dropout_rate=0.0,
    )
    settings.update(kwargs)
    return tiny_model(**settings)


def _over_maps(model, batch):
    names = ["token_ids"] * ("text" in model.modalities) + ["image_present"]
    kept = {name: batch[name] for name in names}
    kept[FEATURE_MAP] = model.image_encoder.feature_map(batch["image"])
    return kept


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(text_encoder="bag", wide=True, wide_image=True),  # the pretrained default
        dict(text_encoder="bag", class_names={"mood": ["warm", "cold"], "hue": ["r", "b"]}),
        dict(modalities=("image",)),
    ],
    ids=["wide-image", "two-heads", "image-only"],
)
def test_it_predicts_what_the_model_predicts_from_the_images(tmp_path, kwargs):
    model = _backbone_model(tmp_path, **kwargs)
    over_maps = model.feature_map_model()
    batch = features(model)
    expected = model.predict(batch, verbose=0)
    got = over_maps.predict(_over_maps(model, batch), verbose=0)
    if isinstance(expected, dict):
        assert set(got) == set(expected)
        for name in expected:
            np.testing.assert_allclose(got[name], expected[name], rtol=1e-5, atol=1e-6)
    else:
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    # Training it trains the model's own weights, all of them but the frozen backbone's.
    assert {id(v) for v in over_maps.trainable_variables} == {
        id(v) for v in model.trainable_variables
    }


def test_training_it_changes_the_model_and_nothing_of_the_backbone(tmp_path):
    model = _backbone_model(tmp_path, text_encoder="bag", wide=True, wide_image=True)
    over_maps = model.feature_map_model()
    over_maps.compile(optimizer=model.optimizer, loss=model.loss)
    batch = features(model)
    backbone = [w.copy() for w in model.image_encoder.backbone.get_weights()]
    before = model.predict(batch, verbose=0)
    over_maps.fit(_over_maps(model, batch), np.eye(2)[[0, 1, 0, 1]], epochs=3, verbose=0)
    assert not np.allclose(model.predict(batch, verbose=0), before)
    for old, new in zip(backbone, model.image_encoder.backbone.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)


def test_only_a_frozen_backbone_has_a_frozen_feature_map(tmp_path):
    assert not tiny_model().image_encoder.frozen_feature_map  # the scratch conv trains
    assert _backbone_model(tmp_path).image_encoder.frozen_feature_map
    assert not _backbone_model(tmp_path, trainable_backbone=True).image_encoder.frozen_feature_map


def test_a_model_without_images_has_none():
    with pytest.raises(ValueError, match="needs a model with the image modality"):
        tiny_model(modalities=("text",)).feature_map_model()


def test_feature_map_tokens_serializes(tmp_path):
    encoder = _backbone_model(tmp_path).image_encoder
    layer = FeatureMapTokens(encoder, return_pooled=True)
    run_serialization_test(layer)
