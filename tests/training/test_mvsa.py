"""End to end on real tweets (MVSA-Single, ../shared): the path runs, the numbers are held-out."""

import json

import pytest

from multimodal_tf.cli import main
from tests.conftest import MVSA_MANIFEST, requires_shared


@pytest.mark.slow
@pytest.mark.shared
@requires_shared(MVSA_MANIFEST)
def test_train_on_mvsa_single(tmp_path, capsys, imagenet_cache):
    config = tmp_path / "run.yaml"
    # Two epochs of the linear path trained first (its default runs 9-30 of ~0.5 s
    # each here), then one of the rest (~12 s each here, after the first one's image
    # decoding): the path runs, the numbers are held-out.
    config.write_text("training:\n  epochs: 1\n  wide_epochs: 2\n")
    run = tmp_path / "run"
    code = main(
        [
            "train",
            "--manifest",
            str(MVSA_MANIFEST),
            "--config",
            str(config),
            "--output",
            str(run),
            "--quiet",
        ]
    )
    assert code == 0, capsys.readouterr().err
    metrics = json.loads((run / "metrics.json").read_text())
    # The official split: 3611 train / 450 val / 450 test.
    assert metrics["num_train"] == 3611
    assert metrics["test"]["num_samples"] == 450 and metrics["val"]["num_samples"] == 450
    assert set(metrics["test"]["per_class"]) == {"negative", "neutral", "positive"}
    # Better than always answering the majority class (60% of the test split; its
    # macro-F1 would be 0.25): 0.68 accuracy and 0.56 macro-F1 when this was written.
    test = metrics["test"]
    majority = max(row["support"] for row in test["per_class"].values()) / test["num_samples"]
    assert test["accuracy"] > majority and test["macro_f1"] > 0.45
    out = capsys.readouterr().out
    assert "test: accuracy" in out
    # The default model reads the image through ImageNet features from the Keras cache,
    # and whatever the stages drop, its predictions still read the image.
    assert f"ImageNet weights from {imagenet_cache}" in out
    assert any("image" in read for read in metrics["predicted_by"].values())
