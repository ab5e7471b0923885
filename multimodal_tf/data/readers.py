"""Readers for common dataset layouts; each turns its layout into `records_from_rows` rows.

The row checks (empty fields, duplicate ids, missing files, paths leaving the
folder) all live in `records_from_rows`, so every format fails the same way.
"""

import codecs
import collections
import dataclasses
import json
import math
from pathlib import Path

# split_labels lives with the other label helpers; it is still importable from here.
from multimodal_tf.data.labels import split_labels as split_labels
from multimodal_tf.data.manifest import read_manifest, records_from_rows
from multimodal_tf.errors import DataError

HATEFUL_MEMES_LABELS = {"0": "not_hateful", "1": "hateful"}
MVSA_LABEL_FILE = "labelResultAll.txt"
MVSA_SENTIMENTS = ("positive", "neutral", "negative")
MVSA_DROP_REASONS = ("polarity_conflict", "no_majority", "unannotated")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".bmp")
MAX_LISTED = 20


@dataclasses.dataclass(frozen=True)
class ReadResult:
    """The records a reader kept, and the ids it left out by reason.

    Args:
        records: list of `Record`. The usable samples.
        dropped: dict of str to list of str. Reason -> ids left out for it. For
            MVSA: `polarity_conflict` (text positive, image negative or the
            reverse), `no_majority` (several annotators, no merged label chosen
            by more than half), `unannotated` (in `data/`, not in the label file).

    Example:
    >>> ReadResult([], {"polarity_conflict": ["7"], "no_majority": []}).num_dropped
    1
    """

    records: list
    dropped: dict = dataclasses.field(default_factory=dict)

    @property
    def num_dropped(self):
        return sum(len(ids) for ids in self.dropped.values())


def read_hateful_memes(path):
    """Reads a Hateful Memes JSONL file (`id`, `img`, `text`, `label`) into records.

    `img` is relative to the file's folder. Label 0 becomes `not_hateful`, 1
    `hateful`; lines without `label` (the unlabeled test files) get `None`.

    Args:
        path: str or Path. A `.jsonl` file such as `train.jsonl`.

    Example:
    >>> read_hateful_memes("hateful_memes/dev_seen.jsonl")[0].label  # doctest: +SKIP
    'hateful'
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"Hateful Memes file not found: {path}")
    rows, problems = [], []
    # Undecodable bytes survive as surrogates, so records_from_rows reports them by field.
    with path.open(encoding="utf-8", errors="surrogateescape") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as error:
                problems.append(f"line {number}: not valid JSON: {error}")
                continue
            if not isinstance(item, dict):
                problems.append(f"line {number}: expected a JSON object, got {line.strip()!r}")
                continue
            row = {"id": item.get("id"), "text": item.get("text"), "image": item.get("img")}
            if "label" in item:
                raw = item["label"]
                row["label"] = None if raw is None else HATEFUL_MEMES_LABELS.get(str(raw))
                if raw is not None and row["label"] is None:
                    problems.append(f"line {number}: label must be 0 or 1, got {raw!r}")
            rows.append(row)
    if problems:
        raise _listed_error(path, "problem(s)", problems)
    return records_from_rows(rows, path.parent, path)


def read_mvsa_raw(folder, encoding="utf-8"):
    """Reads raw MVSA (`data/<id>.jpg|.txt`, `labelResultAll.txt`) into a `ReadResult`.

    Each annotator's `text,image` labels are merged as in Xu & Mao (2017):
    equal -> that label; neutral + polar -> the polar one; positive vs negative
    -> none. With several annotators (MVSA-Multiple) a post keeps the merged
    label chosen by more than half of them (2 of 3). Posts left out are listed
    in `ReadResult.dropped`, never skipped silently.

    Args:
        folder: str or Path. The folder holding `data/` and `labelResultAll.txt`.
        encoding: str or sequence of str. Encoding(s) of the `.txt` files, tried
            in order per file; `"utf-8,gb18030"` suits the public copies, which
            mix both.

    Example:
    >>> result = read_mvsa_raw("MVSA_Single", encoding="utf-8,gb18030")  # doctest: +SKIP
    >>> len(result.records), len(result.dropped["polarity_conflict"])  # doctest: +SKIP
    (4511, 358)
    """
    folder = Path(folder)
    if not (folder / MVSA_LABEL_FILE).is_file():
        raise DataError(f"{folder}: no {MVSA_LABEL_FILE}; not a raw MVSA folder.")
    annotations = _read_mvsa_labels(folder / MVSA_LABEL_FILE)
    dropped = {reason: [] for reason in MVSA_DROP_REASONS}
    rows = []
    for post_id, pairs in annotations:
        label, reason = _merge_mvsa(pairs)
        if reason:
            dropped[reason].append(post_id)
        else:
            rows.append({"id": post_id, "image": f"data/{post_id}.jpg", "label": label})
    texts = _read_texts([folder / "data" / f"{row['id']}.txt" for row in rows], encoding, folder)
    for row, text in zip(rows, texts, strict=True):
        row["text"] = text
    annotated = {post_id for post_id, _ in annotations}
    unannotated = {path.stem for path in (folder / "data").glob("*.jpg")} - annotated
    dropped["unannotated"] = sorted(
        unannotated, key=lambda post_id: (len(post_id), post_id)
    )  # 9 before 10
    return ReadResult(records_from_rows(rows, folder, folder), dropped)


def read_class_folders(folder, encoding="utf-8"):
    """Reads `folder/<label>/<name>.<jpg|jpeg|png|gif|bmp>` plus `<name>.txt` into records.

    Ids are `<label>/<name>`, sorted. An image without its `.txt` is reported
    as an empty text; any other file in a class folder is an error.

    Args:
        folder: str or Path. The folder holding one subfolder per class.
        encoding: str or sequence of str. Encoding(s) of the `.txt` files, tried
            in order per file.

    Example:
    >>> [record.id for record in read_class_folders("pets")][:1]  # doctest: +SKIP
    ['cat/001']
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"Folder not found: {folder}")
    images, unexpected = [], []
    # Hidden entries (.DS_Store, .ipynb_checkpoints) are tool litter, not data.
    for class_dir in sorted(p for p in folder.iterdir() if p.is_dir() and p.name[0] != "."):
        entries = sorted(p for p in class_dir.iterdir() if p.name[0] != ".")
        # Broken or escaping symlinks stay images, so records_from_rows reports them.
        found = [p for p in entries if p.suffix.lower() in IMAGE_SUFFIXES and not p.is_dir()]
        known = set(found) | {p.with_suffix(".txt") for p in found}
        unexpected.extend(p for p in entries if p not in known or p.is_dir())
        images.extend(found)
    if unexpected:
        what = f"entries neither an image ({', '.join(IMAGE_SUFFIXES)}) nor an image's .txt"
        raise _listed_error(folder, what, unexpected)
    texts = _read_texts([path.with_suffix(".txt") for path in images], encoding, folder)
    rows = []
    for path, text in zip(images, texts, strict=True):
        label = path.parent.name
        image = f"{label}/{path.name}"
        rows.append({"id": f"{label}/{path.stem}", "text": text, "image": image, "label": label})
    return records_from_rows(rows, folder, folder)


def read_dataframe(frame, root):
    """Reads a DataFrame (anything with `.to_dict("records")`) with manifest columns.

    Missing values (`None`, `NaN`, `pd.NA`) count as empty fields; without a
    `label` column every label is `None`.

    Args:
        frame: pandas.DataFrame or similar. Columns `id`, `text`, `image`
            (relative to `root`), optional `label` and `split`.
        root: str or Path. The folder image paths are relative to.

    Example:
    >>> frame = pandas.DataFrame({"id": [1], "text": ["hi"], "image": ["a.png"]})  # doctest: +SKIP
    >>> read_dataframe(frame, "images")[0].label is None  # doctest: +SKIP
    True
    """
    if not callable(getattr(frame, "to_dict", None)):
        raise DataError(
            f"read_dataframe expects a DataFrame (with .to_dict('records')), "
            f"got {type(frame).__name__}."
        )
    rows = [
        {key: None if _is_missing(value) else value for key, value in row.items()}
        for row in frame.to_dict("records")
    ]
    missing = [column for column in ("id", "text", "image") if rows and column not in rows[0]]
    if missing:
        found = ", ".join(map(str, rows[0]))
        raise DataError(f"DataFrame: missing column(s) {', '.join(missing)}; found: {found}.")
    return records_from_rows(rows, root, "DataFrame")


def read_any(path, **kwargs):
    """Reads a dataset into a `ReadResult`, choosing the reader from what `path` is.

    A `.csv`/`.jsonl` manifest -> `read_manifest`; a JSONL whose first object
    has `img` and no `image` -> `read_hateful_memes`; a folder with
    `labelResultAll.txt` -> `read_mvsa_raw`; another folder ->
    `read_class_folders`. `dropped` is empty for readers that drop nothing.

    Args:
        path: str or Path. A file or a folder.
        **kwargs: Passed to the chosen reader (e.g. `encoding`).

    Example:
    >>> read_any("data/demo/manifest.csv").records[0].label  # doctest: +SKIP
    'match'
    """
    path = Path(path)
    if path.is_dir():
        if (path / MVSA_LABEL_FILE).is_file():
            return read_mvsa_raw(path, **kwargs)
        return ReadResult(read_class_folders(path, **kwargs))
    if not path.exists():
        raise DataError(f"Dataset not found: {path}")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson") and _is_hateful_memes(path):
        kwargs.pop("encoding", None)  # the Hateful Memes release is UTF-8
        return ReadResult(read_hateful_memes(path, **kwargs))
    if suffix in (".csv", ".jsonl", ".ndjson"):
        return ReadResult(read_manifest(path, **kwargs))
    raise DataError(
        f"{path}: cannot tell how to read it; expected a .csv/.jsonl manifest, a Hateful "
        f"Memes .jsonl, a raw MVSA folder (with {MVSA_LABEL_FILE}) or a folder of class folders."
    )


def _read_mvsa_labels(path):
    lines = path.read_text(encoding="utf-8-sig", errors="replace").splitlines() or [""]
    header = lines[0].split("\t")
    if header[0].strip().upper() != "ID" or len(header) < 2:
        raise DataError(
            f"{path} line 1: expected the header 'ID<TAB>text,image[<TAB>text,image...]', "
            f"got {lines[0]!r}"
        )
    annotations, problems = [], []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        post_id, *columns = line.split("\t")
        pairs = [tuple(label.strip().lower() for label in column.split(",")) for column in columns]
        if len(pairs) != len(header) - 1 or any(
            len(pair) != 2 or not set(pair) <= set(MVSA_SENTIMENTS) for pair in pairs
        ):
            problems.append(
                f"line {number}: expected an id and {len(header) - 1} 'text,image' column(s) "
                f"of {'/'.join(MVSA_SENTIMENTS)}, got {line!r}"
            )
            continue
        annotations.append((post_id.strip(), pairs))
    if problems:
        raise _listed_error(path, "malformed line(s)", problems)
    return annotations


def _merge_mvsa(pairs):
    merged = [_merge_pair(text, image) for text, image in pairs]
    if len(merged) == 1:
        return (merged[0], None) if merged[0] else (None, "polarity_conflict")
    votes = collections.Counter(label for label in merged if label)
    label, count = votes.most_common(1)[0] if votes else (None, 0)
    # More than half of all annotators, conflicted ones included: 2 of 3 must agree.
    return (label, None) if count * 2 > len(merged) else (None, "no_majority")


def _merge_pair(text, image):
    if text == image:
        return text
    if "neutral" in (text, image):
        return image if text == "neutral" else text
    return None  # positive vs negative: the modalities contradict each other.


def _read_texts(paths, encoding, source):
    names = encoding.split(",") if isinstance(encoding, str) else encoding
    names = [codecs.lookup(name.strip()).name for name in names]  # LookupError names a typo
    texts, bad = [], []
    for path in paths:
        # A missing .txt gives "", which records_from_rows reports as an empty text.
        data = path.read_bytes() if path.is_file() else b""
        for name in names:
            try:
                texts.append(data.decode(name).strip())
                break
            except UnicodeDecodeError:
                continue
        else:
            bad.append(path)
    if bad:
        what = (
            f"text file(s) not valid {' or '.join(names)}; name their encoding with --encoding "
            "(e.g. --encoding gb18030, or utf-8,gb18030 to try both per file)"
        )
        raise _listed_error(source, what, bad)
    return texts


def _listed_error(source, what, items):
    lines = [f"  - {item}" for item in items[:MAX_LISTED]]
    if len(items) > MAX_LISTED:
        lines.append(f"  ... and {len(items) - MAX_LISTED} more.")
    return DataError(f"{source}: {len(items)} {what}:\n" + "\n".join(lines))


def is_plain_manifest(path):
    """True for a `.csv`/`.jsonl` file in the `id,text,image,label` manifest layout."""
    path = Path(path)
    suffix = path.suffix.lower()
    return path.is_file() and (
        suffix == ".csv" or (suffix in (".jsonl", ".ndjson") and not _is_hateful_memes(path))
    )


def _is_hateful_memes(path):
    with path.open(encoding="utf-8", errors="replace") as handle:
        first = next((line for line in handle if line.strip()), "")
    try:
        item = json.loads(first)
    except json.JSONDecodeError:
        return False  # read_manifest then reports the bad line.
    return isinstance(item, dict) and "img" in item and "image" not in item


def _is_missing(value):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return True
    return type(value).__name__ in ("NAType", "NaTType")  # pandas' NA without importing pandas
