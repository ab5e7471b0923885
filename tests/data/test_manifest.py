import csv
import json
import os

import pytest

from multimodal_tf.config import DataConfig
from multimodal_tf.data.manifest import read_manifest, scan_manifest, split_records
from multimodal_tf.errors import DataError
from tests.conftest import image_bytes, write_manifest


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "images").mkdir()
    for name in ("a.png", "b.png"):
        (tmp_path / "images" / name).write_bytes(image_bytes())
    return tmp_path


def row(id="1", text="hello", image="images/a.png", label="pos", **extra):
    return {"id": id, "text": text, "image": image, "label": label, **extra}


def test_reads_csv_with_absolute_image_paths(folder):
    records = read_manifest(write_manifest(folder, [row(), row(id="2", image="images/b.png")]))
    assert [r.id for r in records] == ["1", "2"]
    assert records[0].image == os.path.realpath(folder / "images" / "a.png")
    assert records[0].row == 1 and records[0].split is None


def test_reads_jsonl(folder):
    path = folder / "manifest.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [row(split="train"), row(id="2")]) + "\n")
    records = read_manifest(path)
    assert [r.split for r in records] == ["train", None]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_a_utf8_byte_order_mark_is_read_as_utf8_says(folder, suffix):
    # Excel's "CSV UTF-8" starts the file with U+FEFF, before the first column name.
    rows = [row(text="café ☕"), row(id="2", image="images/b.png")]
    if suffix == ".csv":
        plain = write_manifest(folder, rows).read_text(encoding="utf-8")
    else:
        plain = "\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n"
    path = folder / f"excel{suffix}"
    path.write_bytes(b"\xef\xbb\xbf" + plain.encode("utf-8"))
    records = read_manifest(path)
    assert [(r.id, r.text) for r in records] == [("1", "café ☕"), ("2", "hello")]


@pytest.mark.parametrize(
    "broken, reason",
    [
        ('{"id": "2", "text": "cut off', "is not valid JSON"),
        ('["2", "hello", "images/b.png", "pos"]', "is not a JSON object"),
    ],
)
def test_a_broken_jsonl_line_is_one_bad_row_not_a_bad_file(folder, broken, reason):
    from multimodal_tf.data.source import TrainingData

    good = [row(split="train"), row(id="3", split="val"), row(id="4", split="test")]
    lines = [json.dumps(good[0]), "", broken] + [json.dumps(r) for r in good[1:]]
    path = folder / "manifest.jsonl"
    path.write_text("\n".join(lines) + "\n")  # the blank line 2 is not a row
    (folder / "run").mkdir()
    data = TrainingData.load(path, DataConfig(on_error="skip"), folder / "run", verbose=False)
    assert {name: [r.id for r in rs] for name, rs in data.splits.items()} == {
        "train": ["1"],
        "val": ["3"],
        "test": ["4"],
    }
    assert (data.summary["rows"], data.summary["skipped_rows"]) == (4, 1)
    skipped = list(csv.DictReader((folder / "run" / "skipped_rows.csv").open()))
    assert [(r["row"], r["kind"]) for r in skipped] == [("2", "invalid_json")]
    assert skipped[0]["message"].startswith(f"line 3 {reason}")
    with pytest.raises(DataError, match=rf"manifest\.jsonl row 2: line 3 {reason}"):
        TrainingData.load(path, DataConfig(), folder / "run", verbose=False)
    # Like a CSV row with a bad field: listed with the file's other problems.
    path.write_text("\n".join([*lines, json.dumps(row(id="5", image="images/no.png"))]) + "\n")
    with pytest.raises(DataError, match=r"2 problem\(s\)[\s\S]*line 3 [\s\S]*row 5 \(id '5'\)"):
        read_manifest(path)


def test_a_jsonl_manifest_with_no_object_line_lists_its_lines(folder):
    path = folder / "manifest.jsonl"
    path.write_text("not json\n[1, 2]\n")
    with pytest.raises(DataError, match=r"row 1: line 1 is not valid JSON[\s\S]*row 2: line 2 is"):
        read_manifest(path)


def test_a_label_spelled_with_and_without_spaces_is_reported(folder):
    rows = [row(label="positive"), row(id="2", label="positive "), row(id="3", label="negative")]
    path = write_manifest(folder, rows)
    records, problems = scan_manifest(path)
    assert [r.label for r in records] == ["positive", "positive", "negative"]
    assert [(p.row, p.field, p.kind, p.severity) for p in problems] == [
        (2, "label", "label_whitespace", "warning")
    ]
    expected = (
        "manifest.csv row 2 (id '2'), field 'label': label 'positive ' differs from "
        "'positive' (row 1) only by surrounding whitespace; both are read as 'positive'"
    )
    assert str(problems[0]) == expected
    with pytest.warns(UserWarning, match=r"row 2 \(id '2'\), field 'label': label 'positive '"):
        assert [r.label for r in read_manifest(path)] == ["positive", "positive", "negative"]


def test_labels_padded_the_same_way_on_every_row_are_read_stripped(folder):
    rows = [row(label=" positive"), row(id="2", label=" positive"), row(id="3", label=" negative")]
    records, problems = scan_manifest(write_manifest(folder, rows))
    assert [r.label for r in records] == ["positive", "positive", "negative"] and problems == []


def test_a_label_with_two_padded_spellings_names_both(folder):
    from multimodal_tf.data.validate import validate_manifest

    rows = [row(label=" positive"), row(id="2", label="positive "), row(id="3", label="x")]
    report = validate_manifest(write_manifest(folder, rows))
    assert report.num_rows == 3 and len(report.records) == 3 and not report.errors
    assert [str(p).split(": ", 1)[1] for p in report.warnings] == [
        "label ' positive' differs from 'positive ' (row 2) only by surrounding whitespace; "
        "both are read as 'positive'",
        "label 'positive ' differs from ' positive' (row 1) only by surrounding whitespace; "
        "both are read as 'positive'",
    ]


def test_missing_modalities_read_as_empty_text_and_no_image(folder):
    path = folder / "manifest.jsonl"
    rows = [row(text=None), row(id="2", image=""), row(id="3")]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(DataError, match="row 1.*empty text"):
        read_manifest(path)
    records = read_manifest(path, allow_missing=True)
    assert records[0].text == ""  # a JSON null, not the string "None"
    assert records[1].image is None and records[1].text == "hello"


def test_missing_column_names_the_file_and_column(folder):
    path = write_manifest(folder, [{"id": "1", "text": "t", "image": "images/a.png"}])
    with pytest.raises(DataError, match=r"manifest.csv: missing required column\(s\) 'label'"):
        read_manifest(path)
    assert read_manifest(path, require_labels=False)[0].label is None


@pytest.mark.parametrize(
    "bad_row, message",
    [
        (
            row(id="2", image="images/missing.png"),
            r"row 2 \(id '2'\), field 'image': file not found: .*missing.png",
        ),
        (
            row(id="2", image="../outside.png"),
            r"row 2 \(id '2'\), field 'image': path '../outside.png' escapes the data folder",
        ),
        (row(id="2", image="/etc/passwd"), r"row 2 \(id '2'\), field 'image': absolute path"),
        (row(id="2", text="  "), r"row 2 \(id '2'\), field 'text': empty text"),
        (row(id="2", label=""), r"row 2 \(id '2'\), field 'label': empty label"),
        (row(id="1"), r"row 2 \(id '1'\), field 'id': duplicate of row 1"),
        (row(id="2", split="dev"), r"row 2 \(id '2'\), field 'split': unknown split 'dev'"),
    ],
)
def test_bad_rows_are_reported_by_row_and_field(folder, bad_row, message):
    (folder.parent / "outside.png").write_bytes(image_bytes())
    rows = [row(split="train"), {"split": "train", **bad_row}]
    with pytest.raises(DataError, match=message):
        read_manifest(
            write_manifest(folder, rows, fieldnames=["id", "text", "image", "label", "split"])
        )


def test_symlink_out_of_the_folder_is_rejected(folder, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside") / "x.png"
    outside.write_bytes(image_bytes())
    (folder / "images" / "link.png").symlink_to(outside)
    with pytest.raises(DataError, match="escapes the data folder"):
        read_manifest(write_manifest(folder, [row(image="images/link.png")]))


def test_every_problem_is_listed_not_just_the_first(folder):
    rows = [row(id=str(i), image=f"images/none{i}.png") for i in range(25)]
    with pytest.raises(DataError, match=r"25 problem\(s\)[\s\S]*and 5 more"):
        read_manifest(write_manifest(folder, rows))


def distinct_rows(folder, count, label_of):
    rows = []
    for i in range(count):
        (folder / "images" / f"{i}.png").write_bytes(image_bytes((i, 2 * i, 100)))
        rows.append(row(id=str(i), text=f"text {i}", image=f"images/{i}.png", label=label_of(i)))
    return rows


def test_stratified_split_is_deterministic_and_keeps_class_shares(folder):
    rows = distinct_rows(folder, 100, lambda i: "a" if i < 80 else "b")
    records = read_manifest(write_manifest(folder, rows))
    first = split_records(records, val_fraction=0.1, test_fraction=0.2, seed=7)
    again = split_records(records, val_fraction=0.1, test_fraction=0.2, seed=7)
    assert first == again
    assert [len(first[s]) for s in ("train", "val", "test")] == [70, 10, 20]
    assert sum(r.label == "b" for r in first["test"]) == 4  # 20% of the 20 "b" rows
    other_seed = split_records(records, val_fraction=0.1, test_fraction=0.2, seed=8)
    assert {r.id for r in other_seed["test"]} != {r.id for r in first["test"]}


def test_given_splits_are_kept(folder):
    rows = [row(id="1", split="train"), row(id="2", split="val"), row(id="3", split="TEST")]
    splits = split_records(read_manifest(write_manifest(folder, rows)))
    assert [[r.id for r in splits[s]] for s in ("train", "val", "test")] == [["1"], ["2"], ["3"]]


def test_partly_missing_split_is_an_error(folder):
    rows = [row(id="1", split="train"), row(id="2", split="")]
    with pytest.raises(DataError, match=r"row 2 \(id '2'\), field 'split'"):
        split_records(read_manifest(write_manifest(folder, rows)))


def test_non_utf8_manifest_is_a_clear_error(folder):
    path = folder / "manifest.csv"
    path.write_bytes("id,text,image,label\n1,caf\xe9,images/a.png,x\n".encode("latin-1"))
    with pytest.raises(DataError, match="not valid UTF-8"):
        read_manifest(path)


def test_assigned_split_keeps_duplicate_texts_and_images_together(folder):
    rows = distinct_rows(folder, 60, lambda i: "a" if i % 2 else "b")
    for i in range(0, 60, 6):  # ten pairs: same text (case/space folded) or the same file
        rows[i + 1]["text"] = "  " + rows[i]["text"].upper()
        rows[i + 3]["image"] = rows[i + 2]["image"]
    records = read_manifest(write_manifest(folder, rows))
    for seed in range(5):
        splits = split_records(records, val_fraction=0.2, test_fraction=0.2, seed=seed)
        split_of = {r.row: name for name, rs in splits.items() for r in rs}
        for i in range(0, 60, 6):
            assert split_of[i + 1] == split_of[i + 2]  # rows are 1-based
            assert split_of[i + 3] == split_of[i + 4]
        assert {len(splits["val"]), len(splits["test"])} <= set(range(10, 14))


def test_identical_bytes_in_different_files_are_grouped_with_digests(folder):
    rows = distinct_rows(folder, 40, lambda i: "a")
    records = read_manifest(write_manifest(folder, rows))
    digests = {r.row: "same" if r.row in (1, 2) else str(r.row) for r in records}
    for seed in range(5):
        splits = split_records(records, 0.25, 0.25, seed=seed, image_digests=digests)
        split_of = {r.row: name for name, rs in splits.items() for r in rs}
        assert split_of[1] == split_of[2]
