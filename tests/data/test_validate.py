import csv
import json

import pytest

from multimodal_tf.cli import main
from multimodal_tf.data.validate import check_images, validate_manifest
from multimodal_tf.errors import DataError
from multimodal_tf.training.fit import train
from tests.conftest import MVSA_MANIFEST, requires_shared
from tests.data.corpus import MAX_PIXELS, write_corpus


@pytest.fixture
def corpus(tmp_path):
    folder, outside = tmp_path / "data", tmp_path / "outside"
    outside.mkdir()
    folder.mkdir()
    return write_corpus(folder, outside)


def test_every_bad_case_is_reported_with_its_row_and_kind(corpus):
    manifest, errors, warnings, good = corpus
    report = validate_manifest(manifest, max_pixels=MAX_PIXELS)
    reported = {(p.row, p.kind) for p in report.errors}
    for row, kind in errors.items():
        assert (row, kind) in reported, f"row {row}: {kind} not reported; got {report.format()}"
    assert {row for row, _ in reported} == set(errors)  # and nothing else is an error
    assert {(p.row, p.kind) for p in report.warnings} == set(warnings.items())
    assert [r.row for r in report.records] == good
    assert report.num_rows == len(good) + len(errors)


def test_messages_name_file_row_and_field(corpus):
    manifest, _, _, _ = corpus
    text = validate_manifest(manifest, max_pixels=MAX_PIXELS).format(limit=100)
    assert "manifest.csv row 14 (id 'b2'), field 'image': truncated JPEG" in text
    assert "truncated.jpg" in text
    assert "row 24 (id 'b12'), field 'text': not valid UTF-8 (byte 0xe9)" in text
    assert "--encoding" in text
    assert "row 19 (id 'b7'), field 'image': 1200x1000 pixels is over the limit" in text
    assert "row 16 (id 'b4'), field 'image': a TIFF file; supported: JPEG, PNG, GIF, BMP" in text
    assert "By kind:" in text


def test_the_cli_reports_and_exits_1(corpus, tmp_path, capsys):
    manifest, errors, _, _ = corpus
    report_csv = tmp_path / "problems.csv"
    code = main(
        [
            "validate",
            str(manifest),
            "--max-pixels",
            str(MAX_PIXELS),
            "--report",
            str(report_csv),
            "--limit",
            "3",
        ]
    )
    assert code == 1
    out = capsys.readouterr().out
    assert f"{len(errors)} with errors" in out and "... and" in out
    rows = list(csv.DictReader(report_csv.open()))
    assert {int(r["row"]) for r in rows if r["severity"] == "error"} == set(errors)


def test_warnings_alone_exit_0(tiny_manifest, capsys):
    # The tiny fixture reuses identical images across splits: leakage warnings, no errors.
    assert main(["validate", str(tiny_manifest)]) == 0
    out = capsys.readouterr().out
    assert "24 rows, 24 usable, 0 with errors, 4 warning(s)" in out
    assert "duplicate_image_across_splits 4" in out


def test_on_error_raise_stops_before_training(corpus, tiny_config, tmp_path):
    manifest, errors, _, _ = corpus
    tiny_config.data.max_pixels = MAX_PIXELS
    with pytest.raises(DataError, match=rf"{len(errors)} with errors[\s\S]*on_error: skip"):
        train(manifest, tiny_config, tmp_path / "run", verbose=0)
    assert not (tmp_path / "run" / "model.keras").exists()
    assert (tmp_path / "run" / "data_problems.csv").is_file()


def test_on_error_skip_trains_on_exactly_the_good_rows(corpus, tiny_config, tmp_path):
    manifest, errors, _, good = corpus
    tiny_config.data.max_pixels = MAX_PIXELS
    tiny_config.data.on_error = "skip"
    tiny_config.training.epochs = 1
    result = train(manifest, tiny_config, tmp_path / "run", verbose=0)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["data"] == {
        "rows": len(good) + len(errors),
        "skipped_rows": len(errors),
        "warnings": 2,
    }
    assert metrics["num_train"] + metrics["val"]["num_samples"] + metrics["test"][
        "num_samples"
    ] == len(good)
    skipped = list(csv.DictReader((tmp_path / "run" / "skipped_rows.csv").open()))
    assert {int(r["row"]) for r in skipped} == set(errors)
    assert {(int(r["row"]), r["kind"]) for r in skipped} >= set(errors.items())
    assert result.model.class_names == ["cold", "warm"]


def test_check_images_raises_with_every_bad_image(corpus):
    from multimodal_tf.data.manifest import scan_manifest

    manifest, _, _, _ = corpus
    records, _ = scan_manifest(manifest)
    with pytest.raises(DataError, match=r"row 14 \(id 'b2'\)[\s\S]*row 15 \(id 'b3'\)"):
        check_images(records, manifest="manifest.csv", max_pixels=MAX_PIXELS)


@pytest.mark.shared
@requires_shared(MVSA_MANIFEST)
def test_mvsa_cross_split_duplicates_are_found():
    report = validate_manifest(MVSA_MANIFEST)
    assert report.num_rows == 4511 and not report.errors
    kinds = {p.kind for p in report.warnings}
    assert kinds == {"duplicate_image_across_splits", "duplicate_text_across_splits"}
    # The dataset's README: 56 groups of identical text span more than one split.
    assert sum(p.kind == "duplicate_text_across_splits" for p in report.warnings) == 56


def test_train_and_validate_read_other_layouts(tmp_path, tiny_config, capsys):
    from tests.conftest import image_bytes

    for label, colour in (("warm", (220, 40, 40)), ("cold", (40, 40, 220))):
        folder = tmp_path / "classes" / label
        folder.mkdir(parents=True)
        for index in range(10):
            (folder / f"{index}.png").write_bytes(image_bytes((colour[0], index * 20, colour[2])))
            (folder / f"{index}.txt").write_text(f"{label} words number {index}")
    assert main(["validate", str(tmp_path / "classes")]) == 0
    assert "20 rows, 20 usable, 0 with errors" in capsys.readouterr().out
    tiny_config.data.val_fraction = tiny_config.data.test_fraction = 0.2
    tiny_config.training.epochs = 1
    result = train(tmp_path / "classes", tiny_config, tmp_path / "run", verbose=0)
    assert result.model.class_names == ["cold", "warm"]
    assert result.metrics["test"]["num_samples"] == 4


def test_layout_drops_are_counted_in_the_report(tmp_path):
    from tests.conftest import image_bytes

    (tmp_path / "data").mkdir()
    labels = {"1": "positive,positive", "2": "neutral,negative", "3": "positive,negative"}
    for post_id in labels:
        (tmp_path / "data" / f"{post_id}.jpg").write_bytes(image_bytes(format="JPEG"))
        (tmp_path / "data" / f"{post_id}.txt").write_text(f"tweet {post_id}")
    lines = ["ID\ttext,image"] + [f"{i}\t{pair}" for i, pair in labels.items()]
    (tmp_path / "labelResultAll.txt").write_text("\n".join(lines) + "\n")
    report = validate_manifest(tmp_path)
    assert [r.label for r in report.records] == ["positive", "negative"]
    assert "Left out by the layout's rules: polarity_conflict 1." in report.format()
