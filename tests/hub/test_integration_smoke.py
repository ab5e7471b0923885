"""`model.text_encoder: hub` end to end: train -> .keras -> export --check-ops -> served."""

import numpy as np
import pytest
import tensorflow as tf

from multimodal_tf.serving.op_check import UnsupportedOpsError
from tests.conftest import MOBILENET_FILE, image_bytes, make_tiny_config, requires_shared
from tests.hub.conftest import require_hub_extra

require_hub_extra()

from multimodal_tf.models.hub_text_encoder import (  # noqa: E402
    HubTextEncoder,
    choose_sequence_length,
)

pytestmark = pytest.mark.slow


def _served_elsewhere(version, texts, images, folder):
    """The export's probabilities, computed by an isolated process (`python -I`)."""
    import subprocess
    import sys
    import textwrap

    from multimodal_tf.serving import op_check

    np.save(folder / "images.npy", np.array(images, dtype=object), allow_pickle=True)
    libraries = [str(path) for path in op_check.serving_op_libraries("2.19")]
    script = textwrap.dedent(
        f"""
        import sys
        for name in ("multimodal_tf", "keras", "keras_hub", "tensorflow_text"):
            sys.modules[name] = None  # importing it now raises ImportError
        import numpy as np
        import tensorflow as tf
        for library in {libraries!r}:
            tf.load_op_library(library)
        images = np.load({str(folder / "images.npy")!r}, allow_pickle=True)
        served = tf.saved_model.load({str(version)!r}).signatures["serving_default"]
        out = served(text=tf.constant({list(texts)!r}), image=tf.constant(list(images)))
        np.save({str(folder / "served.npy")!r}, out["probabilities"].numpy())
        """
    )
    subprocess.run([sys.executable, "-I", "-c", script], check=True, cwd=folder)
    return np.load(folder / "served.npy")


@pytest.mark.parametrize("wide", [True, False])
def test_train_export_and_serve_a_hub_text_model(tiny_manifest, preset_dir, tmp_path, wide):
    import keras

    from multimodal_tf.config import load_config, save_config
    from multimodal_tf.serving.export import export_saved_model
    from multimodal_tf.training.fit import train

    config = make_tiny_config()
    config.model.text_encoder = "hub"
    config.model.text_preset = str(preset_dir)
    config.model.wide = wide
    config.training.epochs = 1
    config.training.wide_epochs = 2
    config.training.drop_deep_if_worse = False
    save_config(config, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml").model.text_encoder == "hub"
    result = train(tiny_manifest, config, tmp_path / "run", verbose=0)
    model = result.model
    assert isinstance(model.text_encoder, HubTextEncoder)
    texts_seen = ["sunny warm fire", "hot red summer", "icy cold snow", "blue winter frost"]
    assert model.preprocessor.pass_text and model.preprocessor.text_tokens >= 8
    assert model.preprocessor.text_tokens >= choose_sequence_length(preset_dir, texts_seen)
    assert model.text_encoder.sequence_length == model.preprocessor.text_tokens
    loaded = keras.saving.load_model(tmp_path / "run" / "model.keras")
    texts = ["sunny warm fire", "icy cold snow", "", "hot red summer #3"]
    images = [image_bytes((220, 40, 40)), image_bytes((40, 40, 220))] * 2
    features = model.preprocessor({"text": tf.constant(texts), "image": tf.constant(images)})
    expected = model.predict(features, verbose=0)
    np.testing.assert_allclose(loaded.predict(features, verbose=0), expected, atol=1e-6)
    version = export_saved_model(model, tmp_path / "served", check_ops="2.19")
    served = tf.saved_model.load(str(version)).signatures["serving_default"]
    out = served(text=tf.constant(texts), image=tf.constant(images))
    np.testing.assert_allclose(out["probabilities"].numpy(), expected, atol=1e-5)
    # The same in a process that cannot import multimodal_tf, keras, keras_hub or
    # tensorflow_text and has only the TF Text op libraries TF Serving 2.19 links.
    np.testing.assert_allclose(
        _served_elsewhere(version, texts, images, tmp_path), expected, atol=1e-5
    )

    # `multimodal-tf predict` with that export scores the manifest as the Keras model does.
    import csv

    from multimodal_tf.cli import main
    from multimodal_tf.data.manifest import read_manifest

    predictions = tmp_path / "predictions.csv"
    argv = ["predict", "--model", str(version), "--manifest", str(tiny_manifest)]
    assert main([*argv, "--out", str(predictions)]) == 0
    rows = {row["id"]: row for row in csv.DictReader(predictions.open())}
    records = read_manifest(tiny_manifest)
    features = model.preprocessor(
        {
            "text": tf.constant([r.text for r in records]),
            "image": tf.constant([open(r.image, "rb").read() for r in records]),
        }
    )
    keras_probabilities = model.predict(features, verbose=0)
    for record, row in zip(records, keras_probabilities, strict=True):
        predicted = [float(rows[record.id][f"probability_{c}"]) for c in model.class_names]
        np.testing.assert_allclose(predicted, row, atol=1e-5)


def test_round_robin_export_is_refused_before_publishing(tiny_manifest, preset_dir, tmp_path):
    from multimodal_tf.serving.export import export_saved_model
    from multimodal_tf.training.fit import train

    config = make_tiny_config()
    config.model.text_encoder = "hub"
    config.model.text_preset = str(preset_dir)
    config.model.wide = False  # one training stage: the export is what is checked
    config.training.epochs = 1
    result = train(tiny_manifest, config, tmp_path / "run", verbose=0)
    model = result.model
    encoder = model.text_encoder
    assert isinstance(encoder, HubTextEncoder)
    encoder.packer.truncate = "round_robin"
    with pytest.raises(UnsupportedOpsError, match="RoundRobinTrim"):
        export_saved_model(model, tmp_path / "served", check_ops="2.19")
    assert not [p for p in (tmp_path / "served").iterdir() if p.name.isdigit()]
    assert export_saved_model(model, tmp_path / "served", check_ops="2.20").name == "1"


@pytest.mark.shared
@requires_shared(MOBILENET_FILE)
def test_hub_text_with_a_frozen_backbone_trains_on_cached_feature_maps(
    tiny_manifest, preset_dir, imagenet_cache, tmp_path
):
    from multimodal_tf.training.feature_maps import caches_feature_maps
    from multimodal_tf.training.fit import train

    config = make_tiny_config()
    config.data.image_size = (32, 32)
    config.model.image_encoder = "mobilenet_v2"
    config.model.image_weights = "imagenet"
    config.model.backbone_alpha = 0.35
    config.model.grid_size = 1
    config.model.text_encoder = "hub"
    config.model.text_preset = str(preset_dir)
    config.training.epochs = 1
    config.training.wide_epochs = 1
    result = train(tiny_manifest, config, tmp_path / "run", verbose=0)
    assert caches_feature_maps(result.model)
