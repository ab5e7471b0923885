import json
import os

import pytest

from multimodal_tf.data.readers import (
    ReadResult,
    read_any,
    read_class_folders,
    read_dataframe,
    read_hateful_memes,
    read_mvsa_raw,
    split_labels,
)
from multimodal_tf.errors import DataError
from tests.conftest import image_bytes, write_manifest

GB18030_TEXT = "你好"  # Its GB18030 bytes (c4 e3 ba c3) are not valid UTF-8.


def write_image(path, format="PNG"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(image_bytes(format=format))
    return path


def write_jsonl(path, items):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(item) + "\n" for item in items), encoding="utf-8")
    return path


def write_mvsa(folder, annotations, texts=None, num_annotators=1):
    """annotations: {id: "text,image[\\ttext,image...]"}; texts: {id: bytes or str}."""
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    header = "ID\t" + "\t".join(["text,image"] * num_annotators)
    lines = [header] + [f"{post_id}\t{labels}" for post_id, labels in annotations.items()]
    (folder / "labelResultAll.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for post_id in annotations:
        write_image(data / f"{post_id}.jpg", format="JPEG")
        text = (texts or {}).get(post_id, f"tweet {post_id}\r\n")
        (data / f"{post_id}.txt").write_bytes(text if isinstance(text, bytes) else text.encode())
    return folder


def labels_by_id(records):
    return {record.id: record.label for record in records}


# === Hateful Memes ===


def test_hateful_memes_maps_labels_and_resolves_img(tmp_path):
    write_image(tmp_path / "img" / "42953.png")
    write_image(tmp_path / "img" / "01235.png")
    path = write_jsonl(
        tmp_path / "train.jsonl",
        [
            {"id": 42953, "img": "img/42953.png", "label": 0, "text": "its their character"},
            {"id": 1235, "img": "img/01235.png", "label": 1, "text": "a meme"},
        ],
    )
    records = read_hateful_memes(path)
    assert labels_by_id(records) == {"42953": "not_hateful", "1235": "hateful"}
    assert records[0].image == os.path.realpath(tmp_path / "img" / "42953.png")
    assert records[1].text == "a meme"


def test_hateful_memes_without_label_gives_none(tmp_path):
    write_image(tmp_path / "img" / "1.png")
    path = write_jsonl(tmp_path / "test.jsonl", [{"id": 1, "img": "img/1.png", "text": "hi"}])
    assert [record.label for record in read_hateful_memes(path)] == [None]


def test_hateful_memes_invalid_json_names_file_and_line(tmp_path):
    write_image(tmp_path / "img" / "1.png")
    path = tmp_path / "dev.jsonl"
    good = json.dumps({"id": 1, "img": "img/1.png", "label": 0, "text": "hi"})
    path.write_text(f"{good}\n{{not json\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"dev\.jsonl: 1 problem\(s\):\n  - line 2: not valid JSON"):
        read_hateful_memes(path)


def test_hateful_memes_rejects_other_labels(tmp_path):
    write_image(tmp_path / "img" / "1.png")
    path = write_jsonl(
        tmp_path / "t.jsonl", [{"id": 1, "img": "img/1.png", "label": 2, "text": "x"}]
    )
    with pytest.raises(DataError, match="line 1: label must be 0 or 1, got 2"):
        read_hateful_memes(path)


def test_hateful_memes_path_escape_comes_from_records_from_rows(tmp_path):
    write_image(tmp_path / "x.png")
    path = write_jsonl(
        tmp_path / "memes" / "train.jsonl", [{"id": 7, "img": "../x.png", "label": 1, "text": "t"}]
    )
    with pytest.raises(
        DataError, match=r"row 1 \(id '7'\), field 'image': path '\.\./x\.png' escapes"
    ):
        read_hateful_memes(path)


# === MVSA (raw) ===


def test_mvsa_single_merges_text_and_image_labels(tmp_path):
    folder = write_mvsa(
        tmp_path,
        {
            "1": "positive,positive",  # agree
            "2": "neutral,negative",  # neutral + polar -> polar
            "3": "positive,neutral",
            "4": "positive,negative",  # conflict -> dropped
            "5": "neutral,neutral",
            "6": "negative,positive",
        },
    )
    write_image(folder / "data" / "10.jpg", format="JPEG")  # not in the label file
    write_image(folder / "data" / "9.jpg", format="JPEG")
    result = read_mvsa_raw(folder)
    assert isinstance(result, ReadResult)
    assert labels_by_id(result.records) == {
        "1": "positive",
        "2": "negative",
        "3": "positive",
        "5": "neutral",
    }
    assert result.dropped == {
        "polarity_conflict": ["4", "6"],
        "no_majority": [],
        "unannotated": ["9", "10"],
    }
    assert result.num_dropped == 4
    assert result.records[0].text == "tweet 1"  # CRLF stripped
    assert result.records[0].image == os.path.realpath(folder / "data" / "1.jpg")


def test_mvsa_multiple_takes_the_majority_of_merged_labels(tmp_path):
    folder = write_mvsa(
        tmp_path,
        {
            "1": "positive,positive\tpositive,neutral\tnegative,negative",  # 2 of 3 positive
            "2": "neutral,negative\tnegative,negative\tpositive,negative",  # 2 negative, 1 conflict
            "3": "positive,positive\tnegative,negative\tneutral,neutral",  # three-way tie
            "4": "positive,negative\tpositive,negative\tneutral,neutral",  # 1 of 3 only
        },
        num_annotators=3,
    )
    result = read_mvsa_raw(folder)
    assert labels_by_id(result.records) == {"1": "positive", "2": "negative"}
    assert result.dropped["no_majority"] == ["3", "4"]
    assert result.dropped["polarity_conflict"] == []


def test_mvsa_undecodable_text_names_file_and_suggests_encoding(tmp_path):
    folder = write_mvsa(
        tmp_path,
        {"1": "positive,positive", "2": "neutral,neutral"},
        texts={"2": GB18030_TEXT.encode("gb18030")},
    )
    with pytest.raises(DataError) as error:
        read_mvsa_raw(folder)
    message = str(error.value)
    assert "1 text file(s) not valid utf-8" in message
    assert str(folder / "data" / "2.txt") in message and "1.txt" not in message
    assert "--encoding gb18030" in message


def test_mvsa_tries_each_encoding_per_file(tmp_path):
    folder = write_mvsa(
        tmp_path,
        {"1": "positive,positive", "2": "neutral,neutral"},
        texts={"1": "café".encode(), "2": GB18030_TEXT.encode("gb18030")},
    )
    texts = {record.id: record.text for record in read_mvsa_raw(folder, "utf-8,gb18030").records}
    assert texts == {"1": "café", "2": GB18030_TEXT}
    only_gb = read_mvsa_raw(folder, encoding=["gb18030"]).records
    assert only_gb[1].text == GB18030_TEXT


def test_mvsa_malformed_label_lines_are_listed(tmp_path):
    folder = write_mvsa(tmp_path, {"1": "positive,positive", "2": "happy,positive", "3": "neutral"})
    with pytest.raises(DataError, match=r"2 malformed line\(s\):\n  - line 3: .*\n  - line 4: "):
        read_mvsa_raw(folder)


def test_mvsa_missing_image_and_escaping_id_come_from_records_from_rows(tmp_path):
    folder = write_mvsa(tmp_path / "mvsa", {"1": "positive,positive", "2": "neutral,neutral"})
    (folder / "data" / "1.jpg").unlink()
    with pytest.raises(DataError, match=r"row 1 \(id '1'\), field 'image': file not found"):
        read_mvsa_raw(folder)
    write_image(tmp_path / "outside.jpg", format="JPEG")
    (tmp_path / "outside.txt").write_text("leaked", encoding="utf-8")
    folder = write_mvsa(tmp_path / "mvsa2", {"../../outside": "positive,positive"})
    with pytest.raises(DataError, match="escapes the data folder"):
        read_mvsa_raw(folder)


# === Class folders ===


@pytest.fixture
def class_folders(tmp_path):
    root = tmp_path / "pets"
    for relative in ("dog/b.JPEG", "cat/2.png", "cat/1.png"):
        write_image(root / relative, format="JPEG" if relative.endswith("JPEG") else "PNG")
        (root / relative).with_suffix(".txt").write_text(f"about {relative}\n", encoding="utf-8")
    (root / "cat" / ".DS_Store").write_bytes(b"\0")
    return root


def test_class_folders_are_sorted_with_label_and_text(class_folders):
    records = read_class_folders(class_folders)
    assert [record.id for record in records] == ["cat/1", "cat/2", "dog/b"]
    assert [record.label for record in records] == ["cat", "cat", "dog"]
    assert records[2].text == "about dog/b.JPEG"
    assert records[2].image == os.path.realpath(class_folders / "dog" / "b.JPEG")


def test_class_folders_missing_text_is_reported_as_empty_text(class_folders):
    write_image(class_folders / "dog" / "c.gif")
    with pytest.raises(DataError, match=r"row 4 \(id 'dog/c'\), field 'text': empty text"):
        read_class_folders(class_folders)


def test_class_folders_reject_files_that_are_not_samples(class_folders):
    (class_folders / "cat" / "notes.csv").write_text("x", encoding="utf-8")
    (class_folders / "dog" / "orphan.txt").write_text("x", encoding="utf-8")
    with pytest.raises(DataError) as error:
        read_class_folders(class_folders)
    assert "2 entries neither an image" in str(error.value)
    assert "notes.csv" in str(error.value) and "orphan.txt" in str(error.value)


def test_class_folders_symlink_escape_comes_from_records_from_rows(class_folders, tmp_path):
    outside = write_image(tmp_path / "outside.png")
    (class_folders / "cat" / "3.png").symlink_to(outside)
    (class_folders / "cat" / "3.txt").write_text("sneaky", encoding="utf-8")
    with pytest.raises(DataError, match=r"id 'cat/3'\), field 'image': path .* escapes"):
        read_class_folders(class_folders)


def test_class_folders_undecodable_text_names_the_file(class_folders):
    (class_folders / "cat" / "1.txt").write_bytes(GB18030_TEXT.encode("gb18030"))
    with pytest.raises(DataError, match=r"not valid utf-8.*\n  - .*cat/1\.txt"):
        read_class_folders(class_folders)
    assert read_class_folders(class_folders, "utf-8,gb18030")[0].text == GB18030_TEXT


# === DataFrame ===


class FakeFrame:
    """Stands in for a pandas DataFrame (pandas is not a dependency)."""

    def __init__(self, rows):
        self.rows = rows

    def to_dict(self, orient):
        if orient != "records":
            raise ValueError(f"only 'records' is faked, got {orient!r}")
        return [dict(row) for row in self.rows]


def test_dataframe_rows_become_records(tmp_path):
    write_image(tmp_path / "a.png")
    frame = FakeFrame([{"id": 1, "text": "hi", "image": "a.png", "label": "joy|surprise"}])
    (record,) = read_dataframe(frame, tmp_path)
    assert (record.id, record.label, record.split) == ("1", "joy|surprise", None)
    assert record.image == os.path.realpath(tmp_path / "a.png")


def test_dataframe_nan_is_an_empty_field_and_label_column_is_optional(tmp_path):
    write_image(tmp_path / "a.png")
    (record,) = read_dataframe(FakeFrame([{"id": "1", "text": "hi", "image": "a.png"}]), tmp_path)
    assert record.label is None
    frame = FakeFrame([{"id": "1", "text": float("nan"), "image": "a.png", "label": "x"}])
    with pytest.raises(DataError, match=r"field 'text': empty text"):
        read_dataframe(frame, tmp_path)


def test_dataframe_path_escape_and_bad_input(tmp_path):
    write_image(tmp_path / "x.png")
    frame = FakeFrame([{"id": "1", "text": "t", "image": "../x.png", "label": "a"}])
    with pytest.raises(DataError, match=r"DataFrame row 1 \(id '1'\), field 'image'.*escapes"):
        read_dataframe(frame, tmp_path / "root")
    with pytest.raises(DataError, match=r"missing column\(s\) text, image; found: id"):
        read_dataframe(FakeFrame([{"id": "1"}]), tmp_path)
    with pytest.raises(DataError, match="got list"):
        read_dataframe([{"id": "1"}], tmp_path)


# === Dispatch ===


def test_read_any_dispatches_on_what_the_path_is(tmp_path, class_folders):
    write_image(tmp_path / "img" / "1.png")
    row = {"id": "1", "text": "hi", "image": "img/1.png", "label": "pos"}
    csv_result = read_any(write_manifest(tmp_path, [row]))
    assert isinstance(csv_result, ReadResult) and csv_result.dropped == {}
    assert labels_by_id(csv_result.records) == {"1": "pos"}
    assert labels_by_id(read_any(write_jsonl(tmp_path / "m.jsonl", [row])).records) == {"1": "pos"}
    memes = write_jsonl(
        tmp_path / "hm.jsonl", [{"id": 1, "img": "img/1.png", "label": 1, "text": "x"}]
    )
    assert labels_by_id(read_any(memes).records) == {"1": "hateful"}
    assert [r.id for r in read_any(class_folders).records] == ["cat/1", "cat/2", "dog/b"]
    mvsa = write_mvsa(tmp_path / "mvsa", {"1": "positive,negative", "2": "neutral,neutral"})
    (mvsa / "data" / "2.txt").write_bytes(GB18030_TEXT.encode("gb18030"))
    result = read_any(mvsa, encoding="gb18030")  # kwargs reach the chosen reader
    assert labels_by_id(result.records) == {"2": "neutral"}
    assert result.dropped["polarity_conflict"] == ["1"]


def test_read_any_rejects_unknown_and_missing_paths(tmp_path):
    (tmp_path / "notes.txt").write_text("x", encoding="utf-8")
    with pytest.raises(DataError, match="notes.txt: cannot tell how to read it"):
        read_any(tmp_path / "notes.txt")
    with pytest.raises(DataError, match="Dataset not found"):
        read_any(tmp_path / "nope.csv")


# === Multi-label ===


@pytest.mark.parametrize(
    "label, expected",
    [
        ("joy|surprise", ("joy", "surprise")),
        (" surprise | joy |joy||", ("joy", "surprise")),
        ("anger", ("anger",)),
        ("", ()),
        (None, ()),
    ],
)
def test_split_labels(label, expected):
    assert split_labels(label) == expected
