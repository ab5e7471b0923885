"""End to end on real tweets (MVSA-Single, ../shared): the path runs, the numbers are held-out."""

import json

import pytest

from multimodal_tf.cli import main
from tests.conftest import MVSA_MANIFEST, requires_shared


@pytest.mark.slow
@pytest.mark.shared
@requires_shared(MVSA_MANIFEST)
def test_train_on_mvsa_single(tmp_path, capsys):
    config = tmp_path / "run.yaml"
    # Two epochs of the deep path, and of the linear path trained first (its default
    # runs 9-30 epochs of ~0.5 s each here): the path runs, the numbers are held-out.
    config.write_text("training:\n  epochs: 2\n  wide_epochs: 2\n")
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
    # Two epochs must beat uniform guessing on the majority-heavy test split.
    assert metrics["test"]["accuracy"] > 0.4
    assert "test: accuracy" in capsys.readouterr().out
