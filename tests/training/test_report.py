"""The run report: every figure written and embedded, honest notes, a page that renders."""

import base64
import json
import re
import shutil

import numpy as np
import pytest
from PIL import Image

from multimodal_tf.data.manifest import read_manifest
from multimodal_tf.layers.fusion import get_fusion
from multimodal_tf.models.classifier import MultimodalClassifier
from multimodal_tf.models.preprocessor import MultimodalPreprocessor
from multimodal_tf.training.browser import figures_status, find_chromium, screenshot
from multimodal_tf.training.fit import train
from multimodal_tf.training.metrics import roc_pr
from multimodal_tf.training.report import write_report
from tests.conftest import image_bytes, make_tiny_config, write_manifest
from tests.training.test_multilabel import write_multilabel_manifest

# The default config trains the wide path first: its stage has curves of its own.
FIGURES = ["wide_training_curves", "training_curves", "confusion_matrix", "per_class", "roc_pr"]
ATTENTION = [f"attention_{number}" for number in (1, 2, 3, 4)]


def write_tiny_manifest(folder):
    """As the `tiny_manifest` fixture: 24 rows, warm/red vs cold/blue, 16/4/4 split."""
    (folder / "images").mkdir(parents=True)
    rows = []
    for index in range(24):
        warm = index % 2 == 0
        (folder / f"images/{index}.png").write_bytes(
            image_bytes((220, 40, 40) if warm else (40, 40, 220))
        )
        words = ["sunny warm fire", "hot red summer"] if warm else ["icy cold", "blue frost"]
        rows.append(
            {
                "id": f"r{index}",
                "text": f"{words[index % 4 // 2]} #{index}",
                "image": f"images/{index}.png",
                "label": "warm" if warm else "cold",
                "split": "test" if index >= 20 else "val" if index >= 16 else "train",
            }
        )
    return write_manifest(folder, rows)


@pytest.fixture(scope="module")
def trained_report(tmp_path_factory):
    """One tiny model trained with the default (attention) fusion, and its test report.

    The text encoder is an LSTM (one token per word) so that the report can show
    attention on words; the default `bag` encoder makes one token per text.
    """
    folder = tmp_path_factory.mktemp("report")
    manifest = write_tiny_manifest(folder)
    config = make_tiny_config()
    config.model.text_encoder = "lstm"
    config.training.report = True  # train() writes the report of the test split
    config.training.tensorboard = True
    train(manifest, config, folder / "run", verbose=0)
    return folder / "run" / "report.html"


def untrained_model(records, class_names=("cold", "warm"), text_features="words", **kwargs):
    preprocessor = MultimodalPreprocessor(
        sequence_length=6, image_size=(16, 16), text_features=text_features
    )
    preprocessor.adapt([record.text for record in records], min_frequency=1)
    return MultimodalClassifier(
        list(class_names),
        preprocessor,
        embedding_dim=8,
        lstm_units=8,
        hidden_dim=8,
        num_heads=2,
        image_filters=(4, 8),
        grid_size=2,
        **kwargs,
    )


def embedded_images(page):
    return re.findall(r'src="data:image/(png|jpeg);base64,([^"]+)"', page)


def assert_self_contained(page):
    assert "http://" not in page and "https://" not in page
    sources = re.findall(r'src="([^"]*)"', page)
    assert sources and all(source.startswith("data:image/") for source in sources)


def test_train_writes_tensorboard_logs_by_default(trained_report):
    logs = trained_report.parent / "logs"
    assert list((logs / "train").glob("events.out.tfevents.*"))
    assert list((logs / "validation").glob("events.out.tfevents.*"))


def test_every_figure_is_a_png_embedded_in_a_self_contained_page(trained_report):
    figures = trained_report.parent / "report"
    assert sorted(path.stem for path in figures.glob("*.png")) == sorted(FIGURES + ATTENTION)
    page = trained_report.read_text(encoding="utf-8")
    embedded = [data for kind, data in embedded_images(page) if kind == "png"]
    assert len(embedded) == len(FIGURES + ATTENTION)
    for name in FIGURES + ATTENTION:
        data = (figures / f"{name}.png").read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
        with Image.open(figures / f"{name}.png") as image:
            image.verify()
        assert base64.b64encode(data).decode("ascii") in embedded
    assert_self_contained(page)
    assert "What the predictions attended to" in page and 'class="word"' in page
    assert "was trained alone first" in page
    # The tiny model's wide path reads no image, so its deep path is never dropped.
    metrics = json.loads((trained_report.parent / "metrics.json").read_text())
    assert "deep_path" not in metrics and "this model is the wide path alone" not in page
    assert metrics["predicted_by"] == {"wide": ["text"], "deep": ["text", "image"]}
    assert (
        "Predictions come from the wide (linear) path, reading text; the deep path (encoders "
        "and fusion), reading text and image." in page
    )
    assert page.index("First stage: per epoch") < page.index("Second stage: per epoch")
    assert '<p id="figures-status"' in page and "naturalWidth" in page


def test_the_report_shows_the_predictions_the_runs_metrics_came_from(trained_report):
    # train() hands the report its test predictions instead of predicting them again.
    test = json.loads((trained_report.parent / "metrics.json").read_text())["test"]
    page = trained_report.read_text(encoding="utf-8")
    for key in ("accuracy", "macro_f1", "weighted_f1"):
        label = key.replace("_", " ")
        assert f"<tr><th>{label}</th><td>{test[key]:.3f}</td>" in page


def test_predictions_of_other_records_are_refused(tiny_manifest, tmp_path):
    records = read_manifest(tiny_manifest)
    model = untrained_model(records)
    predictions = (np.full((3, 2), 0.5), np.eye(2)[[0, 1, 0]])
    with pytest.raises(ValueError, match=r"3 rows for 24 records of split 'test'"):
        write_report(tmp_path, model, records, predictions=predictions)


def test_concat_fusion_says_why_attention_is_not_shown(tiny_manifest, tmp_path):
    records = read_manifest(tiny_manifest)
    model = untrained_model(records, fusion="concat")
    page = write_report(tmp_path, model, records, split="all").read_text(encoding="utf-8")
    assert "Attention maps are not shown" in page and "has no attention layer" in page
    assert not list((tmp_path / "report").glob("attention_*.png"))
    assert "no training history" in page  # no history.csv in tmp_path
    assert "First stage" not in page and "Second stage" not in page  # nor wide_history.csv
    # An untrained model gets things wrong: the gallery shows them with thumbnails.
    assert "Most confident mistakes" in page
    assert any(kind == "jpeg" for kind, _ in embedded_images(page))
    assert_self_contained(page)


def test_bag_encoder_shows_the_image_map_and_says_why_words_are_not(tiny_manifest, tmp_path):
    records = read_manifest(tiny_manifest)[:8]
    model = untrained_model(records, text_features="ngrams", text_encoder="bag")
    page = write_report(tmp_path, model, records, attention_samples=2).read_text("utf-8")
    assert "Words are not shown" in page and 'class="word"' not in page
    assert len(list((tmp_path / "report").glob("attention_*.png"))) == 2


def test_multi_label_report_has_no_confusion_matrix_but_per_class_curves(tmp_path):
    manifest = write_multilabel_manifest(tmp_path / "data")
    records = read_manifest(manifest)[:12]
    model = untrained_model(records, class_names=["cold", "loud", "warm"], multi_label=True)
    page = write_report(tmp_path / "run", model, records).read_text(encoding="utf-8")
    figures = tmp_path / "run" / "report"
    assert not (figures / "confusion_matrix.png").exists()
    assert "multi-label model" in page
    assert (figures / "roc_pr.png").exists() and (figures / "per_class.png").exists()
    assert page.count("<tr><td>") == 3  # one per-class row per label


def test_roc_and_average_precision_by_hand():
    # Ranked: 0.9 (pos), 0.8 (neg), 0.4 (pos), 0.1 (neg). Of the 4 pos/neg pairs,
    # 3 are ordered right: AUC 0.75. Precision at each positive: 1 and 2/3.
    curves = roc_pr(np.array([1, 0, 1, 0], bool), np.array([0.9, 0.8, 0.4, 0.1]))
    assert curves["auc"] == pytest.approx(0.75)
    assert curves["ap"] == pytest.approx((1 + 2 / 3) / 2)
    tied = roc_pr(np.array([1, 0], bool), np.array([0.5, 0.5]))  # a tie counts half
    assert tied["auc"] == pytest.approx(0.5) and tied["ap"] == pytest.approx(0.5)


def test_roc_and_average_precision_match_scikit_learn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 2, 200).astype(bool)
    scores = np.round(rng.random(200) * 0.6 + 0.4 * y_true, 1)  # many ties
    curves = roc_pr(y_true, scores)
    assert curves["auc"] == pytest.approx(metrics.roc_auc_score(y_true, scores))
    assert curves["ap"] == pytest.approx(metrics.average_precision_score(y_true, scores))
    assert np.isnan(roc_pr(np.zeros(3, bool), np.ones(3))["ap"])


@pytest.mark.parametrize("name", ["attention", "cross_attention"])
def test_token_attention_sums_to_one_over_real_tokens(name):
    rng = np.random.default_rng(0)
    text, image = rng.normal(size=(2, 5, 8)), rng.normal(size=(2, 4, 8))
    fusion = get_fusion(name, 8, 2, num_heads=2)
    mask = np.array([[True, True, True, False, False]] * 2)
    fusion([text.astype("float32"), image.astype("float32")], mask=[mask, None])
    weights = np.asarray(fusion.token_attention([text, image], mask=[mask, None]))
    assert weights.shape == (2, 9)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(weights[:, 3:5], 0.0, atol=1e-6)  # padding gets none
    assert get_fusion("gated", 8, 2).token_attention([text, image]) is None


def test_a_missing_chromium_is_named():
    with pytest.raises(FileNotFoundError, match="no-such-chromium"):
        find_chromium("no-such-chromium")


@pytest.mark.skipif(
    shutil.which("chromium") is None, reason="needs the chromium binary (apt-get install chromium)"
)
def test_headless_chromium_shows_every_figure(trained_report, tmp_path):
    images = len(embedded_images(trained_report.read_text(encoding="utf-8")))
    status = figures_status(trained_report)
    assert status["loaded"] == status["total"] == images
    png = screenshot(trained_report, tmp_path / "report.png", height=1200)
    assert png.stat().st_size > 20_000
    with Image.open(png) as image:
        assert image.size == (1280, 1200)
