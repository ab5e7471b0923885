"""Rows without an image or without text train, evaluate and serve."""

import csv

import numpy as np
import pytest

from multimodal_tf.cli import main
from multimodal_tf.errors import DataError
from multimodal_tf.serving.predict import predict_manifest
from multimodal_tf.training.evaluate import evaluate
from multimodal_tf.training.fit import train
from tests.conftest import image_bytes, write_manifest
from tests.helpers import run_export_test


def drop_modalities(manifest):
    """Rewrites the tiny manifest: every 4th row loses its image, every 5th its text."""
    with manifest.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    for index, row in enumerate(rows):
        if index % 4 == 1:
            row["image"] = ""
        elif index % 5 == 2:
            row["text"] = ""
    with manifest.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return rows


def test_missing_modality_is_an_error_unless_allowed(tiny_manifest, tiny_config, tmp_path, capsys):
    drop_modalities(tiny_manifest)
    with pytest.raises(DataError, match=r"row 2.*field 'image'.*allow_missing_modalities"):
        train(tiny_manifest, tiny_config, tmp_path / "run", verbose=0)
    assert main(["validate", str(tiny_manifest)]) == 1
    assert "empty text" in capsys.readouterr().out
    assert main(["validate", str(tiny_manifest), "--allow-missing"]) == 0


def test_a_row_needs_at_least_one_modality(tiny_manifest, tiny_config, tmp_path):
    rows = drop_modalities(tiny_manifest)
    rows[0]["text"], rows[0]["image"] = "", ""
    write_manifest(tiny_manifest.parent, rows)
    tiny_config.data.allow_missing_modalities = True
    with pytest.raises(DataError, match="row 1.*empty text and empty image"):
        train(tiny_manifest, tiny_config, tmp_path / "run", verbose=0)


def test_trained_with_modality_dropout_predicts_without_image_or_text(
    tiny_manifest, tiny_config, tmp_path
):
    rows = drop_modalities(tiny_manifest)
    tiny_config.data.allow_missing_modalities = True
    tiny_config.model.modality_dropout = 0.3
    # The placeholders live in the deep path: keep it even where the linear path scores higher.
    tiny_config.training.drop_deep_if_worse = False
    result = train(tiny_manifest, tiny_config, tmp_path / "run", verbose=0)
    model = result.model
    assert result.metrics["test"]["num_samples"] == sum(r["split"] == "test" for r in rows)

    red = image_bytes((220, 40, 40), format="JPEG")
    texts = ["sunny warm fire", "sunny warm fire", "", "icy cold snow"]
    images = [red, b"", red, image_bytes((40, 40, 220))]
    features = model.preprocessor(
        {"text": np.array(texts, dtype=object), "image": np.array(images, dtype=object)}
    )
    np.testing.assert_array_equal(features["image_present"], [1, 0, 1, 1])
    assert not features["token_ids"].numpy()[2].any()
    probabilities = model.predict(features, verbose=0)
    assert np.isfinite(probabilities).all()
    # The placeholder stands in for what is missing: each row differs from the full one.
    assert not np.allclose(probabilities[0], probabilities[1], atol=1e-6)
    assert not np.allclose(probabilities[0], probabilities[2], atol=1e-6)
    # The SavedModel takes the same empty strings and gives the same probabilities.
    run_export_test(model, texts, images, tmp_path)
    # evaluate follows the run's config, so the same manifest evaluates ...
    metrics = evaluate(result.run_dir, tiny_manifest)
    assert metrics["num_samples"] == result.metrics["test"]["num_samples"]
    # ... and batch prediction through the SavedModel takes the rows without an image or text.
    version_dir = next((tmp_path / "served").iterdir())
    out = tmp_path / "predictions.csv"
    with pytest.raises(DataError, match="allow_missing_modalities"):
        predict_manifest(version_dir, tiny_manifest, out)
    summary = predict_manifest(version_dir, tiny_manifest, out, allow_missing=True)
    assert summary["num_rows"] == len(rows)
