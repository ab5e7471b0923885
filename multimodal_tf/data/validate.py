"""One pass over a dataset that finds every problem a user should fix before training."""

import collections
import concurrent.futures
import dataclasses
import hashlib
import io
import warnings
from pathlib import Path

import tensorflow as tf
from PIL import Image

from multimodal_tf.config import DataConfig
from multimodal_tf.data.labels import labels_of
from multimodal_tf.data.manifest import scan_manifest
from multimodal_tf.data.problems import Problem, format_problems, write_problems_csv
from multimodal_tf.data.readers import is_plain_manifest, read_any
from multimodal_tf.errors import DataError
from multimodal_tf.layers.preprocessing.image_decoder import ImageDecoder

DEFAULT_MAX_PIXELS = DataConfig.max_pixels
_FORMATS = {
    b"\xff\xd8\xff": "JPEG",
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"GIF87a": "GIF",
    b"GIF89a": "GIF",
    b"BM": "BMP",
}
_UNSUPPORTED = {b"RIFF": "WebP", b"II*\x00": "TIFF", b"MM\x00*": "TIFF", b"%PDF": "PDF"}


@dataclasses.dataclass
class ValidationReport:
    """The result of `validate_manifest`: usable records and every problem found.

    Args:
        source: str. What was validated (the manifest path).
        num_rows: int. Rows read.
        records: list of `Record`. Rows with no error (warnings allowed).
        problems: list of `Problem`. Errors and warnings, by row.
        image_digests: dict. `{row: sha256 of the image bytes}` of readable files.
        dropped: dict. Rows a layout's own rules left out (e.g. MVSA's
            positive-vs-negative posts), reason -> ids.
    """

    source: str
    num_rows: int
    records: list
    problems: list
    image_digests: dict = dataclasses.field(default_factory=dict)
    dropped: dict = dataclasses.field(default_factory=dict)

    @property
    def errors(self):
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self):
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def skipped_rows(self):
        """Row numbers that cannot be used (one or more errors)."""
        return sorted({p.row for p in self.errors if p.row is not None})

    def format(self, limit=20):
        """A summary line, then the first `limit` problems and the counts by kind."""
        head = (
            f"{self.source}: {self.num_rows} rows, {len(self.records)} usable, "
            f"{len(self.skipped_rows)} with errors, {len(self.warnings)} warning(s)."
        )
        dropped = {reason: ids for reason, ids in self.dropped.items() if ids}
        if dropped:
            head += (
                " Left out by the layout's rules: "
                + ", ".join(f"{reason} {len(ids)}" for reason, ids in dropped.items())
                + "."
            )
        if not self.problems:
            return head
        return head + "\n" + format_problems(self.problems, Path(self.source).name, limit)

    def raise_for_errors(self):
        """Raises `DataError` listing the errors, if there are any."""
        if self.errors:
            raise DataError(format_problems(self.errors, self.source))

    def write_csv(self, path):
        """Writes every problem (row, id, field, kind, severity, message) to a CSV."""
        write_problems_csv(self.problems, path)


def validate_manifest(
    path,
    encoding="utf-8",
    max_pixels=DEFAULT_MAX_PIXELS,
    class_names=None,
    workers=8,
    allow_missing=False,
    multi_label=False,
):
    """Checks every row and every image of a dataset; never raises for a bad row.

    `path` is a CSV/JSONL manifest or any layout `read_any` knows (Hateful
    Memes JSONL, a raw MVSA folder, class folders). For a plain manifest every
    row problem is collected; other layouts' readers raise one `DataError`
    listing their row problems.

    Finds: empty fields, bytes not valid in `encoding`, JSONL lines that are
    not valid JSON or hold no JSON object, duplicate ids, unknown splits,
    paths that leave the data folder, missing or zero-byte files, files that
    are not JPEG/PNG/GIF/BMP, images above `max_pixels` (checked from the
    header, before anything is decoded), truncated or undecodable images
    (decoded by the same decoder training uses), labels the model cannot
    know, and, as warnings, the same image bytes or text in more than one
    split and a label spelled with and without surrounding whitespace
    (`positive` and `positive `; both rows are kept, as `positive`).

    Args:
        path: str or Path. A manifest, or a folder/file `read_any` can read.
        encoding: str. The text encoding (for raw MVSA, a list to try per file,
            e.g. "utf-8,gb18030").
        max_pixels: int. Largest width x height accepted.
        class_names: list of str or None. With names (a trained model's),
            other labels are `unknown_label`; without, labels in val/test
            that never occur in train are.
        workers: int. Images checked at once.
        allow_missing: bool. Rows of a plain manifest may leave `text` or
            `image` empty (a sample with a missing modality) instead of that
            being an error.
        multi_label: bool. A label cell holds `|`-separated labels; each one
            is checked, and a cell with none (`"|"`) is an error.

    Returns:
        A `ValidationReport`.

    Example:
    >>> report = validate_manifest("data/demo/manifest.csv")  # doctest: +SKIP
    >>> print(report.format())  # doctest: +SKIP
    data/demo/manifest.csv: 2000 rows, 2000 usable, 0 with errors, 0 warning(s).
    """
    dropped = {}
    if is_plain_manifest(path):
        records, problems = scan_manifest(path, encoding=encoding, allow_missing=allow_missing)
    else:  # another layout: its reader raises for row problems, listing them all
        result = read_any(path, encoding=encoding)
        records, problems, dropped = result.records, [], result.dropped
    num_rows = len(records) + len({p.row for p in problems if p.severity == "error"})
    source = Path(path).name
    image_problems, digests = check_image_files(records, source, max_pixels, workers)
    problems += image_problems
    problems += _label_problems(records, class_names, source, multi_label)
    bad_rows = {p.row for p in problems if p.severity == "error"}
    usable = [record for record in records if record.row not in bad_rows]
    # Leakage is judged among the rows that will be used.
    problems += _cross_split_duplicates(usable, digests, source)
    problems.sort(key=lambda p: (p.row or 0, p.field or ""))
    return ValidationReport(str(path), num_rows, usable, problems, digests, dropped)


def check_images(records, manifest=None, max_pixels=DEFAULT_MAX_PIXELS, workers=8):
    """Raises `DataError` naming row, field and file of every unusable image.

    Args:
        records: list of `Record`.
        manifest: str or None. Named in the message.
        max_pixels: int. Largest width x height accepted.
        workers: int. Images checked at once.
    """
    problems, _ = check_image_files(records, manifest or "", max_pixels, workers)
    if problems:
        raise DataError(format_problems(problems, manifest or "images"))


def check_image_files(records, source, max_pixels=DEFAULT_MAX_PIXELS, workers=8):
    """Checks each record's image file; returns `(problems, {row: sha256})`."""
    decoder = ImageDecoder(image_size=(8, 8))
    # One graph call per image instead of a dozen eager ops: 0.6 against 3.4 ms per
    # MVSA photo, which `train` pays for every image before the first epoch.
    decode = tf.function(decoder.decode_one, input_signature=[tf.TensorSpec([], tf.string)])
    decode.get_concrete_function()  # traced once, before the threads call it

    def check(record):
        data = Path(record.image).read_bytes()
        problem = _image_problem(data, decoder, max_pixels, decode)
        return problem, hashlib.sha256(data).hexdigest()

    problems, digests = [], {}
    records = [record for record in records if record.image is not None]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            for record, (problem, digest) in zip(records, pool.map(check, records), strict=True):
                digests[record.row] = digest
                if problem:
                    kind, message = problem
                    problems.append(
                        Problem(
                            kind,
                            f"{message}: {record.image}",
                            record.row,
                            record.id,
                            "image",
                            source,
                        )
                    )
    return problems, digests


def _image_problem(data, decoder, max_pixels, decode):
    image_format = next((name for magic, name in _FORMATS.items() if data.startswith(magic)), None)
    if image_format is None:
        other = next((name for magic, name in _UNSUPPORTED.items() if data.startswith(magic)), None)
        found = f"a {other} file" if other else "not a known image format"
        return "unsupported_format", f"{found}; supported: JPEG, PNG, GIF, BMP"
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except Image.DecompressionBombError:
        return "too_many_pixels", f"image header declares over {max_pixels} pixels"
    except Exception as error:  # noqa: BLE001 - any Pillow failure means unreadable
        return "unreadable_image", f"{image_format} header cannot be read ({error})"
    if width * height > max_pixels:
        return "too_many_pixels", f"{width}x{height} pixels is over the limit of {max_pixels}"
    if _truncated(data, image_format):
        return "unreadable_image", f"truncated {image_format} (the file ends early)"
    try:
        decode(tf.constant(data))
        return None
    except (tf.errors.OpError, ValueError) as error:
        reason = _first_line(error)
    try:  # again eagerly: the failing op's own message, not "Graph execution error"
        decoder.decode_one(tf.constant(data))
    except (tf.errors.OpError, ValueError) as error:
        reason = _first_line(error)
    return "unreadable_image", f"cannot decode as {image_format} ({reason})"


def _first_line(error):
    return getattr(error, "message", str(error)).strip().splitlines()[0]


def _truncated(data, image_format):
    # Decoders often fill a cut-off image with grey instead of failing, so check
    # that the file has its format's end marker.
    if image_format == "JPEG":
        return b"\xff\xd9" not in data[-4096:]
    if image_format == "PNG":
        return b"IEND" not in data[-64:]
    if image_format == "GIF":
        return not data.rstrip(b"\x00").endswith(b";")
    if image_format == "BMP":
        return len(data) < int.from_bytes(data[2:6], "little")
    return False


def _label_problems(records, class_names, source, multi_label=False):
    labels = {r.row: labels_of(r.label, multi_label) for r in records if r.label is not None}
    problems = [
        Problem(
            "empty_label",
            f"no label in {r.label!r} (labels are separated by '|')",
            r.row,
            r.id,
            "label",
            source,
        )
        for r in records
        if r.row in labels and not labels[r.row]
    ]
    if class_names is not None:
        known, why = set(class_names), f"the model knows {', '.join(map(repr, class_names))}"
        candidates = records
    else:
        known = {name for r in records if r.split == "train" for name in labels.get(r.row, ())}
        why = "it never occurs in the train split, so no model can learn it"
        candidates = [r for r in records if r.split in ("val", "test")] if known else []
    for r in candidates:
        unknown = [name for name in labels.get(r.row, ()) if name not in known]
        if unknown:
            what = "unknown label" + ("s" if len(unknown) > 1 else "")
            message = f"{what} {', '.join(map(repr, unknown))}; {why}"
            problems.append(Problem("unknown_label", message, r.row, r.id, "label", source))
    return problems


def _cross_split_duplicates(records, digests, source):
    problems = []
    keys = {
        "image": lambda r: digests.get(r.row),
        "text": lambda r: " ".join(r.text.lower().split()),
    }
    for field, key in keys.items():
        groups = collections.defaultdict(list)
        for record in records:
            if record.split is not None and key(record):
                groups[key(record)].append(record)
        for group in groups.values():
            if len({r.split for r in group}) > 1:
                rows = ", ".join(f"{r.row} ({r.split})" for r in group[:10])
                more = f" and {len(group) - 10} more" if len(group) > 10 else ""
                what = "image bytes" if field == "image" else "text"
                first = group[0]
                problems.append(
                    Problem(
                        f"duplicate_{field}_across_splits",
                        f"same {what} on rows {rows}{more}",
                        first.row,
                        first.id,
                        field,
                        source,
                    )
                )
    return problems
