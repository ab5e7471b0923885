"""Reading a manifest (CSV or JSONL) into checked records, and splitting them."""

import collections
import csv
import dataclasses
import json
import os
import random
import warnings
from pathlib import Path

from multimodal_tf.data.labels import split_labels
from multimodal_tf.data.problems import Problem, format_problems, location
from multimodal_tf.errors import DataError

REQUIRED_COLUMNS = ("id", "text", "image", "label")
SPLITS = ("train", "val", "test")


@dataclasses.dataclass(frozen=True)
class _BrokenLine:
    """A JSONL line that holds no JSON object: a row with nothing in it to read."""

    line: int
    reason: str


@dataclasses.dataclass(frozen=True)
class Record:
    """One manifest row.

    Args:
        row: int. 1-based data row: the CSV header is not counted, nor are a
            JSONL file's blank lines.
        id: str. The row's `id` field.
        text: str. Raw text.
        image: str or None. Absolute path of the image file; `None` for a
            sample without an image (see `allow_missing`).
        label: str or None. `None` when the manifest has no labels.
        split: str or None. `train`, `val`, `test` or `None` if unassigned.
    """

    row: int
    id: str
    text: str
    image: str | None
    label: str | None
    split: str | None

    def where(self, field, manifest=None):
        """`manifest.csv row 12 (id 'a7'), field 'image'`: for error messages."""
        return location(self.row, self.id, field, manifest or "")


def read_manifest(path, require_labels=True, encoding="utf-8", allow_missing=False):
    """Reads and checks a CSV or JSONL manifest with `id,text,image,label[,split]`.

    Image paths are relative to the manifest's folder and must stay inside it.
    Every problem found (missing column, empty field, unknown split, missing
    file, a path that escapes the folder, bytes not valid in `encoding`, a
    JSONL line that is not valid JSON or holds no JSON object) is collected;
    a `DataError` then lists them by row and field. To get the problems
    instead of an error, use `scan_manifest` (or `validate_manifest`, which
    also decodes the images).

    Labels are read without the whitespace around them. When one class is
    spelled both ways in a file (`positive` on one row, `positive ` on
    another), every padded row gets a `label_whitespace` warning naming both
    spellings, issued here as a `UserWarning`; the rows are kept, all with
    the class `positive`. Labels padded the same way on every row (a CSV
    written with `, ` between fields) are one spelling and are read stripped
    without a warning.

    Args:
        path: str or Path. A `.csv` or `.jsonl` file.
        require_labels: bool. If False the `label` column may be absent
            (prediction on unlabeled data).
        encoding: str. The manifest's text encoding.
        allow_missing: bool. Accept rows with an empty `text` or `image`
            (not both) as samples with a missing modality.

    Returns:
        A list of `Record`.

    Example:
    >>> records = read_manifest("data/demo/manifest.csv")  # doctest: +SKIP
    >>> records[0].label  # doctest: +SKIP
    'match'
    """
    records, problems = scan_manifest(path, require_labels, encoding, allow_missing)
    _raise_or_warn(problems, path)
    return records


def scan_manifest(path, require_labels=True, encoding="utf-8", allow_missing=False):
    """Like `read_manifest`, but returns `(good_records, problems)` instead of raising.

    With `allow_missing`, a row may leave `text` or `image` empty (not both):
    its record has `text=""` or `image=None`, a sample with a missing modality.

    A JSONL line that is not valid JSON, or holds an array, string or number
    instead of an object, is a row with an `invalid_json` problem, like a CSV
    row with a bad field: its message names the line (`line 7 is not valid
    JSON (...)`), and the other rows are still read. The problems include
    warnings (`Problem.severity`); the records include the rows that only
    have warnings.

    A missing file, a missing required column or a JSONL file without a
    single JSON object still raises `DataError`: no row can be read then.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"Manifest not found: {path}")
    rows = _read_rows(path, encoding)
    objects = [row for row in rows if not isinstance(row, _BrokenLine)]
    if rows and not objects:
        _, problems = scan_rows(rows, path.parent, path, encoding, allow_missing)
        raise DataError(
            format_problems(problems, path)
            + "\nNo line holds a JSON object, so no row can be read."
        )
    required = REQUIRED_COLUMNS if require_labels else REQUIRED_COLUMNS[:3]
    columns = set(objects[0]) if objects else set()
    missing = [column for column in required if column not in columns]
    if missing:
        raise DataError(
            f"{path}: missing required column(s) {', '.join(map(repr, missing))}; "
            f"found columns: {', '.join(sorted(columns)) or 'none'}. A manifest needs "
            f"{','.join(REQUIRED_COLUMNS)} and optionally split."
        )
    if not rows:
        raise DataError(f"{path}: no rows.")
    return scan_rows(rows, path.parent, path, encoding, allow_missing)


def records_from_rows(rows, root, source):
    """Checks row dicts (`id`, `text`, `image`, `label`, `split`) and makes records.

    The one place where rows become `Record`s, whatever format they came from:
    image paths are resolved against `root` and must stay inside it, and every
    problem (empty field, unknown split, duplicate id, missing or empty file,
    a path that escapes `root`) is collected and raised as one `DataError`
    naming the row and the field. Labels lose their surrounding whitespace;
    one class spelled with and without it is a `UserWarning` (see
    `read_manifest`).

    Args:
        rows: list of dict. Values may be missing or None; `label` and
            `split` are optional keys.
        root: str or Path. The data folder image paths are relative to.
        source: str or Path. Named in messages (a manifest, or a folder).

    Returns:
        A list of `Record`, row numbers starting at 1.
    """
    if not rows:
        raise DataError(f"{source}: no rows.")
    records, problems = scan_rows(rows, root, source)
    _raise_or_warn(problems, source)
    return records


def scan_rows(rows, root, source, encoding="utf-8", allow_missing=False):
    """`records_from_rows` without raising: returns `(good_records, problems)`.

    The problems are in row order and include warnings (`label_whitespace`);
    rows with only warnings are among the records.
    """
    root = Path(os.path.realpath(root))
    name = Path(source).name
    records, problems, seen_ids = [], [], {}
    for number, row in enumerate(rows, start=1):
        if isinstance(row, _BrokenLine):
            message = f"line {row.line} {row.reason}"
            problems.append(Problem("invalid_json", message, number, None, None, name))
            continue
        record, row_problems = _check_row(
            number, row, root, name, seen_ids, encoding, allow_missing
        )
        problems.extend(row_problems)
        if record is not None:
            records.append(record)
    problems.extend(_label_spellings(rows, name))
    problems.sort(key=lambda problem: problem.row)  # stable: a row's problems keep their order
    return records, problems


def split_records(
    records,
    val_fraction=0.1,
    test_fraction=0.1,
    seed=1337,
    image_digests=None,
    multi_label=False,
):
    """Groups records by split; assigns a stratified split when there is none.

    An assigned split keeps duplicates together: rows with the same image
    (same file, or the same bytes when `image_digests` is given) or the same
    text (case and whitespace folded) always land in the same split, so the
    test split never holds a copy of a training sample.

    Args:
        records: list of `Record`.
        val_fraction: float. Share of each class sent to `val` when assigning.
        test_fraction: float. Share of each class sent to `test` when assigning.
        seed: int. The assignment depends only on this seed and the rows.
        image_digests: dict or None. `{row: sha256 of the image bytes}`, as
            `validate_manifest` computes them.
        multi_label: bool. Labels are `|`-separated sets; a row is stratified
            by the rarest label it carries.

    Returns:
        dict mapping `train`, `val`, `test` to lists of `Record`.

    Example:
    >>> splits = split_records(read_manifest("data/demo/manifest.csv"))  # doctest: +SKIP
    >>> len(splits["test"])  # doctest: +SKIP
    200
    """
    with_split = [record for record in records if record.split]
    if with_split and len(with_split) != len(records):
        first = next(record for record in records if not record.split)
        raise DataError(
            f"{first.where('split')}: empty split while other rows have one; "
            "give every row a split or none at all."
        )
    if not with_split:
        groups = _duplicate_groups(records, image_digests or {})
        stratum = _rarest_label(records) if multi_label else lambda record: record.label
        records = _stratified_assignment(groups, val_fraction, test_fraction, seed, stratum)
    splits = {name: [record for record in records if record.split == name] for name in SPLITS}
    for name in ("train", "val"):
        if not splits[name]:
            why = (
                ""
                if with_split
                else " Rows that share an image or a text are kept in one split; with few "
                "distinct images or texts, no group may fit the split's share. Give the "
                "manifest a split column, or raise data.val_fraction."
            )
            raise DataError(f"The {name!r} split is empty; it needs at least one row.{why}")
    return splits


def _read_rows(path, encoding):
    # Undecodable bytes survive as surrogates, so they are reported per row and
    # field instead of failing the whole file. UTF-8 accepts and drops a leading
    # byte-order mark, as Excel's "CSV UTF-8" writes one before the first column name.
    if encoding.lower().replace("_", "-") in ("utf-8", "utf8"):
        encoding = "utf-8-sig"
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open(newline="", encoding=encoding, errors="surrogateescape") as handle:
            return list(csv.DictReader(handle))
    if suffix in (".jsonl", ".ndjson"):
        with path.open(encoding=encoding, errors="surrogateescape") as handle:
            return [
                _parse_line(number, line)
                for number, line in enumerate(handle, start=1)
                if line.strip()
            ]
    raise DataError(f"{path}: manifests must be .csv or .jsonl files.")


def _parse_line(number, line):
    """A JSONL line's object, or a `_BrokenLine` saying why there is none."""
    line = line.rstrip()  # the newline ends the line, not an unterminated string
    try:
        row = json.loads(line)
    except json.JSONDecodeError as error:
        return _BrokenLine(number, f"is not valid JSON ({error.msg}: column {error.colno})")
    if isinstance(row, dict):
        return row
    shown = line.strip() if len(line.strip()) <= 60 else line.strip()[:57] + "..."
    return _BrokenLine(number, f"is not a JSON object ({{...}}): {shown!r}")


def _raise_or_warn(problems, source):
    warned = [problem for problem in problems if problem.severity == "warning"]
    if warned:
        warnings.warn(format_problems(warned, source), UserWarning, stacklevel=3)
    errors = [problem for problem in problems if problem.severity == "error"]
    if errors:
        raise DataError(format_problems(errors, source))


def _row_id(row):
    return "" if row.get("id") is None else str(row.get("id")).strip()


def _label_spellings(rows, source):
    """`label_whitespace` warnings: one class name spelled with different whitespace around it.

    Each row whose label has whitespace around it gets one when the file also
    spells that class another way; it names the bare spelling if the file has
    it, else the first other one.
    """
    first_row = {}  # spelling -> the first row with it
    for number, row in enumerate(rows, start=1):
        if isinstance(row, dict) and row.get("label") is not None and str(row["label"]).strip():
            first_row.setdefault(str(row["label"]), number)
    spellings = collections.defaultdict(list)  # class name -> its spellings, first seen first
    for spelling in first_row:
        spellings[spelling.strip()].append(spelling)
    problems = []
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, dict) or row.get("label") is None:
            continue
        spelling = str(row["label"])
        name = spelling.strip()
        if spelling == name or len(spellings[name]) < 2:
            continue
        other = name if name in first_row else next(s for s in spellings[name] if s != spelling)
        message = (
            f"label {spelling!r} differs from {other!r} (row {first_row[other]}) only by "
            f"surrounding whitespace; both are read as {name!r}"
        )
        problems.append(Problem("label_whitespace", message, number, _row_id(row), "label", source))
    return problems


def _check_row(number, row, root, manifest, seen_ids, encoding="utf-8", allow_missing=False):
    record_id = _row_id(row)
    problems = []

    def problem(kind, field, message):
        problems.append(Problem(kind, message, number, record_id, field, manifest))

    def field(name):
        value = row.get(name)
        return "" if value is None else str(value).strip()

    for name in ("id", "text", "image", "label", "split"):
        bad = _undecodable(field(name))
        if bad:
            problem(
                "invalid_encoding",
                name,
                f"not valid {encoding.upper()} (byte 0x{bad:02x}); re-save the manifest as "
                "UTF-8 or name its encoding (--encoding, e.g. --encoding gb18030)",
            )
    if not field("id"):
        problem("empty_id", "id", "empty id")
    if not field("text") and not field("image"):
        problem("empty_text", "text", "empty text and empty image; a row needs at least one")
    else:
        for name in ("text", "image"):
            if not field(name) and not allow_missing:
                problem(
                    f"empty_{name}",
                    name,
                    f"empty {name} (to train on rows without one, set "
                    "data.allow_missing_modalities: true)",
                )
    if "label" in row and not field("label"):
        problem("empty_label", "label", "empty label")
    split = field("split").lower() or None
    if split is not None and split not in SPLITS:
        problem(
            "unknown_split", "split", f"unknown split {split!r}; use one of {', '.join(SPLITS)}"
        )
    if record_id:
        if record_id in seen_ids:
            problem("duplicate_id", "id", f"duplicate of row {seen_ids[record_id]}")
        seen_ids.setdefault(record_id, number)
    image = None
    if field("image") and not _undecodable(field("image")):
        image, kind, message = _resolve_image(field("image"), root)
        if kind:
            problem(kind, "image", message)
    if problems:
        return None, problems
    label = field("label") if "label" in row else None
    text = "" if row.get("text") is None else str(row["text"])  # JSON null: no text
    return Record(number, record_id, text, image, label, split), []


def _undecodable(value):
    for character in value:
        if "\udc80" <= character <= "\udcff":
            return ord(character) - 0xDC00
    return None


def _resolve_image(relative, root):
    candidate = Path(relative)
    if candidate.is_absolute():
        return (
            None,
            "path_escape",
            f"absolute path {relative!r} not allowed; paths are relative to {root}",
        )
    resolved = Path(os.path.realpath(root / candidate))
    if resolved != root and root not in resolved.parents:
        return None, "path_escape", f"path {relative!r} escapes the data folder {root}"
    if not resolved.is_file():
        return None, "missing_file", f"file not found: {resolved}"
    if resolved.stat().st_size == 0:
        return None, "zero_byte", f"empty (zero-byte) file: {resolved}"
    return str(resolved), None, None


def _duplicate_groups(records, image_digests):
    """Rows linked by a shared image or text, as lists (union-find over the keys)."""
    parent = list(range(len(records)))

    def find(index):
        while parent[index] != index:
            parent[index] = parent[parent[index]]
            index = parent[index]
        return index

    first_with_key = {}
    for index, record in enumerate(records):
        keys = [
            ("image", image_digests.get(record.row, record.image)),
            ("text", " ".join(record.text.lower().split())),
        ]
        # A missing modality is not something two rows share.
        for key in (key for key in keys if key[1]):
            other = first_with_key.setdefault(key, index)
            parent[find(index)] = find(other)
    groups = {}
    for index, record in enumerate(records):
        groups.setdefault(find(index), []).append(record)
    return list(groups.values())


def _rarest_label(records):
    """A multi-label row's stratum: the rarest label it carries (ties: by name).

    Stratifying by the whole label set would make a stratum of every label
    combination; most are too small for a val or test quota (`round(4 * 0.1)`
    is 0), so their rows would all train and val could end up empty. One
    stratum per class keeps each split's share, and taking the row's rarest
    label gives the rare classes, the ones at risk of missing from val and
    test, their share there; common labels get theirs by sheer numbers.
    """
    counts = collections.Counter(name for record in records for name in split_labels(record.label))
    return lambda record: min(
        split_labels(record.label), key=lambda name: (counts[name], name), default=None
    )


def _stratified_assignment(groups, val_fraction, test_fraction, seed, stratum):
    if not 0 <= val_fraction < 1 or not 0 <= test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise DataError(
            f"val_fraction={val_fraction} and test_fraction={test_fraction} must be in "
            "[0, 1) and sum to less than 1."
        )
    by_label = {}
    for group in groups:  # a group is stratified by its first row's stratum
        by_label.setdefault(stratum(group[0]), []).append(group)
    rng = random.Random(seed)
    assigned = {}
    for label in sorted(by_label, key=str):
        label_groups = list(by_label[label])
        rng.shuffle(label_groups)
        total = sum(len(group) for group in label_groups)
        quota = {"test": round(total * test_fraction), "val": round(total * val_fraction)}
        for group in label_groups:
            # Whole groups only; one too big for what is left of a quota trains.
            split = next((name for name in ("test", "val") if quota[name] >= len(group)), "train")
            if split != "train":
                quota[split] -= len(group)
            for record in group:
                assigned[record.row] = dataclasses.replace(record, split=split)
    return [assigned[record.row] for record in _records_in_order(groups)]


def _records_in_order(groups):
    return sorted((record for group in groups for record in group), key=lambda r: r.row)
