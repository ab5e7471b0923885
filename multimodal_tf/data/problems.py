"""What can be wrong with a row of data, and how it is reported."""

import collections
import csv
import dataclasses

MAX_LISTED_PROBLEMS = 20

# Every kind a report can name, with what a user should know about it.
KINDS = {
    "empty_id": "the id field is empty",
    "duplicate_id": "the same id appears on more than one row",
    "empty_text": "the text field is empty",
    "empty_image": "the image field is empty",
    "empty_label": "the label field is empty (multi-label: names no class between the |)",
    "label_whitespace": "the label is another row's label with different spaces around it",
    "unknown_label": "the label is not one the model is trained on",
    "unknown_split": "the split is not train, val or test",
    "invalid_encoding": "a field is not valid in the manifest's encoding",
    "invalid_json": "a JSONL line is not valid JSON, or holds no JSON object",
    "path_escape": "the image path leaves the data folder (../, absolute path, symlink)",
    "missing_file": "the image file does not exist",
    "zero_byte": "the image file is empty",
    "unsupported_format": "the file is not JPEG, PNG, GIF or BMP",
    "too_many_pixels": "the image is larger than the pixel limit (decompression-bomb guard)",
    "unreadable_image": "the image cannot be decoded (truncated or corrupt)",
    "duplicate_image_across_splits": "the same image bytes appear in more than one split",
    "duplicate_text_across_splits": "the same text appears in more than one split",
}
WARNING_KINDS = {
    "duplicate_image_across_splits",
    "duplicate_text_across_splits",
    "label_whitespace",
}


@dataclasses.dataclass(frozen=True)
class Problem:
    """One problem with one row (or, for duplicates, a group of rows).

    Args:
        kind: str. A key of `KINDS`.
        message: str. What is wrong, with the file involved.
        row: int or None. 1-based data row.
        id: str or None. The row's id; `None` when the row has none to read
            (a JSONL line that is not a JSON object).
        field: str or None. `id`, `text`, `image`, `label` or `split`; `None`
            for a problem with the whole row.
        source: str. The manifest (or folder) name.
    """

    kind: str
    message: str
    row: int | None = None
    id: str | None = None
    field: str | None = None
    source: str = ""

    @property
    def severity(self):
        """`error` (the row cannot be used) or `warning` (usable, but check it)."""
        return "warning" if self.kind in WARNING_KINDS else "error"

    def __str__(self):
        if self.row is None:
            return f"{self.source} {self.message}".strip()
        return f"{location(self.row, self.id, self.field, self.source)}: {self.message}"


def location(row, row_id, field, source=""):
    """`manifest.csv row 12 (id 'a7'), field 'image'`: how every message names a place.

    A `None` id or field is left out: `manifest.jsonl row 3` names a whole row
    that has no id to read.
    """
    place = f"{source} row {row}" if source else f"row {row}"
    if row_id is not None:
        place += f" (id {row_id!r})"
    return place if field is None else f"{place}, field {field!r}"


def format_problems(problems, source, limit=MAX_LISTED_PROBLEMS):
    """The first `limit` problems, one a line, then the counts by kind."""
    shown = problems[:limit]
    lines = [f"{source}: {len(problems)} problem(s) found:"] + [f"  - {p}" for p in shown]
    if len(problems) > len(shown):
        lines.append(f"  ... and {len(problems) - len(shown)} more.")
    counts = collections.Counter(problem.kind for problem in problems)
    lines.append("By kind: " + ", ".join(f"{kind} {n}" for kind, n in counts.most_common()))
    return "\n".join(lines)


def write_problems_csv(problems, path):
    """Writes every problem as a CSV row: row, id, field, kind, severity, message."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["row", "id", "field", "kind", "severity", "message"])
        for p in problems:
            writer.writerow([p.row, p.id, p.field, p.kind, p.severity, p.message])
