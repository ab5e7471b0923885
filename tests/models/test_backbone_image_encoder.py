import json
import re
import shutil

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

from multimodal_tf.errors import ConfigError
from multimodal_tf.models.backbone_image_encoder import ARCHITECTURES, BackboneImageEncoder
from multimodal_tf.models.backbone_weights import install_weights
from multimodal_tf.models.image_encoder import IMAGE_ENCODERS, ImageEncoder, get_image_encoder
from tests.conftest import SHARED, requires_shared
from tests.helpers import run_layer_test

MOBILENET_FILE = SHARED / "weights" / "mobilenet_v2_0.35_224_no_top_imagenet_tm.weights.h5"
TINY = {"hidden_dim": 4, "grid_size": 2}
# What each keras.applications model expects its input scaled with, outside the model.
OUTSIDE_SCALING = {
    "mobilenet_v2": keras.applications.mobilenet_v2.preprocess_input,
    "mobilenet_v3_small": lambda x: x,
    "mobilenet_v3_large": lambda x: x,
    "efficientnet_b0": lambda x: x,
    "resnet50": keras.applications.resnet50.preprocess_input,
}


def images(batch=2, size=64, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (batch, size, size, 3)).astype("float32")


def tiny_model(encoder, size):
    inputs = keras.Input((size, size, 3))
    tokens = encoder(inputs)
    outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling1D()(tokens))
    return keras.Model(inputs, outputs)


def assert_keras_round_trip_leaves_weights_file_alone(weights_file, tmp_path, size=64):
    """`.keras` save and load give the same outputs with the weights file gone."""
    local = tmp_path / weights_file.name
    shutil.copy(weights_file, local)
    encoder = BackboneImageEncoder("mobilenet_v2", backbone_weights=local, alpha=0.35, **TINY)
    model = tiny_model(encoder, size)
    x = images(size=size)
    expected = model(x, training=False)
    model.save(tmp_path / "model.keras")
    local.unlink()  # loading would raise ConfigError if it looked for the file
    restored = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(restored(x, training=False), expected, atol=1e-5)
    restored_encoder = restored.layers[1]
    assert restored_encoder.get_config() == encoder.get_config()
    assert restored_encoder.backbone_weights == str(local)
    for saved, loaded in zip(
        encoder.backbone.weights, restored_encoder.backbone.weights, strict=True
    ):
        np.testing.assert_array_equal(np.asarray(saved), np.asarray(loaded))


SLOW_ARCHITECTURES = ("efficientnet_b0", "resnet50")  # 4M and 24M parameters


@pytest.mark.parametrize(
    "architecture",
    [
        pytest.param(name, marks=pytest.mark.slow) if name in SLOW_ARCHITECTURES else name
        for name in ARCHITECTURES
    ],
)
def test_every_architecture_gives_a_token_grid_with_its_own_input_scaling(architecture):
    x = images()
    encoder, _ = run_layer_test(
        BackboneImageEncoder, {"architecture": architecture, **TINY}, x, (2, 4, 4)
    )
    # MobileNetV2 and ResNet50 are scaled by the encoder; MobileNetV3 and
    # EfficientNet by layers of their own, so the encoder must pass 0..255 on.
    reference = encoder.backbone(OUTSIDE_SCALING[architecture](x.copy()), training=False)
    np.testing.assert_allclose(encoder.feature_map(tf.constant(x)), reference, rtol=1e-5, atol=1e-5)
    assert encoder.backbone.trainable_weights == []
    # The graph is exported for TF Serving: core TensorFlow ops only.
    graph = (
        tf.function(lambda images: encoder(images, training=False))
        .get_concrete_function(tf.TensorSpec([None, 64, 64, 3], tf.float32))
        .graph
    )
    op_types = {op.type for op in graph.get_operations()}
    assert all(hasattr(tf.raw_ops, op_type) for op_type in op_types), op_types
    assert not [op_type for op_type in op_types if "PyFunc" in op_type]


def test_too_small_feature_map_says_which_image_size_works():
    encoder = BackboneImageEncoder("mobilenet_v3_small", hidden_dim=4, grid_size=4)
    with pytest.raises(ValueError, match=r"2x2 .* grid_size=4.*128x128 or grid_size <= 2"):
        encoder(images(batch=1, size=64))


def test_feature_map_is_a_32nd_of_the_image():
    encoder = BackboneImageEncoder("mobilenet_v2", alpha=0.35, **TINY)
    sizes = {size: encoder.build_feature_map((None, size, size, 3))[1:3] for size in (64, 96, 224)}
    assert sizes == {64: (2, 2), 96: (3, 3), 224: (7, 7)}


def test_missing_weights_file_is_a_config_error_naming_it(tmp_path):
    missing = tmp_path / "nowhere" / "backbone.weights.h5"
    with pytest.raises(ConfigError, match=re.escape(str(missing))):
        BackboneImageEncoder("mobilenet_v2", backbone_weights=missing)
    (tmp_path / "backbone.npz").write_bytes(b"")
    with pytest.raises(ConfigError, match=r"backbone\.npz"):
        BackboneImageEncoder("mobilenet_v2", backbone_weights=tmp_path / "backbone.npz")


def test_rejects_unknown_architecture_and_alpha_of_non_mobilenets():
    with pytest.raises(ValueError, match="resnet50"):
        BackboneImageEncoder("vgg16")
    with pytest.raises(ValueError, match="alpha"):
        BackboneImageEncoder("resnet50", alpha=0.5)


def test_keras_round_trip_does_not_read_the_weights_file_again(tmp_path):
    backbone = keras.applications.MobileNetV2(
        alpha=0.35, include_top=False, weights=None, input_shape=(None, None, 3)
    )
    weights_file = tmp_path / "source" / "mine.weights.h5"
    weights_file.parent.mkdir()
    backbone.save_weights(weights_file)
    assert_keras_round_trip_leaves_weights_file_alone(weights_file, tmp_path)


def test_get_image_encoder_by_name():
    assert IMAGE_ENCODERS == ("conv", *ARCHITECTURES)
    conv = get_image_encoder("conv", hidden_dim=4, grid_size=2, filters=(4,), name="image")
    assert isinstance(conv, ImageEncoder) and conv.name == "image" and conv.filters == (4,)
    backbone = get_image_encoder(
        "mobilenet_v3_small", hidden_dim=4, grid_size=2, trainable_backbone=True, alpha=0.75
    )
    assert isinstance(backbone, BackboneImageEncoder)
    assert (backbone.architecture, backbone.alpha, backbone.trainable_backbone) == (
        "mobilenet_v3_small",
        0.75,
        True,
    )
    assert get_image_encoder(backbone) is backbone
    with pytest.raises(ValueError, match="'conv', 'mobilenet_v2'"):
        get_image_encoder("vit")
    with pytest.raises(ValueError, match="trained from scratch"):
        get_image_encoder("conv", weights="imagenet")


@pytest.mark.slow
def test_efficientnet_imagenet_weights_compute_what_keras_applications_does(tmp_path, monkeypatch):
    # An ImageNet-style file (ImageNet means, standard deviations stored as
    # the variance), served by a stand-in for the download.
    source = keras.applications.EfficientNetB0(
        include_top=False, weights=None, input_shape=(None, None, 3)
    )
    normalization = next(
        layer for layer in source.layers if isinstance(layer, keras.layers.Normalization)
    )
    normalization.adapt_mean.assign([0.485, 0.456, 0.406])
    normalization.adapt_variance.assign([0.229, 0.224, 0.225])
    weights_file = tmp_path / "efficientnetb0_notop.weights.h5"
    source.save_weights(weights_file)
    # keras.applications downloads through this private module's `get_file`.
    monkeypatch.setattr(
        "keras.src.utils.file_utils.get_file", lambda *args, **kwargs: str(weights_file)
    )
    # The encoder's "imagenet" is Keras' file in the Keras cache, installed there from it.
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    install_weights(weights_file, "efficientnet_b0")
    keras_model = keras.applications.EfficientNetB0(
        include_top=False, weights="imagenet", input_shape=(None, None, 3)
    )

    def stem(backbone):
        return keras.Model(backbone.input, backbone.get_layer("stem_conv").output)

    x = images(size=32)
    expected = stem(keras_model)(x)
    for backbone_weights in ("imagenet", weights_file):
        encoder = BackboneImageEncoder(
            "efficientnet_b0", backbone_weights=backbone_weights, hidden_dim=4, grid_size=1
        )
        np.testing.assert_allclose(stem(encoder.backbone)(x), expected, rtol=1e-5, atol=1e-4)
        # Rebuilt from its config, the backbone has the same layers to load into.
        restored = BackboneImageEncoder.from_config(json.loads(json.dumps(encoder.get_config())))
        assert [type(layer) for layer in restored.backbone.layers] == [
            type(layer) for layer in encoder.backbone.layers
        ]


@pytest.mark.shared
@requires_shared(MOBILENET_FILE)
def test_pretrained_mobilenet_file_is_loaded_and_frozen():
    encoder = BackboneImageEncoder(
        "mobilenet_v2", backbone_weights=MOBILENET_FILE, alpha=0.35, **TINY
    )
    direct = keras.applications.MobileNetV2(
        alpha=0.35, include_top=False, weights=str(MOBILENET_FILE), input_shape=(96, 96, 3)
    )
    for ours, theirs in zip(encoder.backbone.weights, direct.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))
    with h5py.File(MOBILENET_FILE, "r") as weights_file:
        first_kernel = weights_file["layers/conv2d/vars/0"][...]
    np.testing.assert_array_equal(
        np.asarray(encoder.backbone.get_layer("Conv1").kernel), first_kernel
    )
    # Frozen: only the projection and the position embedding train, and
    # BatchNormalization uses its moving statistics even in training.
    x = images(batch=4)
    np.testing.assert_allclose(encoder(x, training=True), encoder(x, training=False), atol=1e-6)
    assert encoder.backbone.trainable_weights == []
    assert len(encoder.trainable_weights) == 3


@pytest.mark.shared
@requires_shared(MOBILENET_FILE)
def test_pretrained_mobilenet_can_be_fine_tuned():
    encoder = BackboneImageEncoder(
        "mobilenet_v2",
        backbone_weights=MOBILENET_FILE,
        trainable_backbone=True,
        alpha=0.35,
        **TINY,
    )
    assert len(encoder.backbone.trainable_weights) > 100
    x = images(batch=4)
    batch_norm = encoder.backbone.get_layer("bn_Conv1")
    moving_mean = np.array(batch_norm.moving_mean)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(encoder(x, training=True) ** 2)
    gradients = tape.gradient(loss, encoder.backbone.trainable_weights)
    # Every backbone weight trains, BatchNormalization's scale and offset included ...
    assert all(gradient is not None for gradient in gradients)
    assert np.any(np.asarray(tape_gradient_of(gradients, encoder, batch_norm.gamma)))
    # ... but it keeps its ImageNet statistics: inference mode, as in the Keras guide.
    np.testing.assert_array_equal(np.array(batch_norm.moving_mean), moving_mean)
    np.testing.assert_allclose(encoder(x, training=True), encoder(x, training=False), atol=1e-6)


def tape_gradient_of(gradients, encoder, variable):
    weights = encoder.backbone.trainable_weights
    return gradients[next(i for i, weight in enumerate(weights) if weight is variable)]


@pytest.mark.shared
@requires_shared(MOBILENET_FILE)
def test_pretrained_mobilenet_keras_round_trip_does_not_read_the_file_again(tmp_path):
    assert_keras_round_trip_leaves_weights_file_alone(MOBILENET_FILE, tmp_path, size=96)
