"""What a run was made from: library versions and a fingerprint of its data.

`train()` writes both to `run.json` beside `config.yaml`, so two runs can be
compared, and a resumed run can check that it is resuming on the same data.
"""

import hashlib
import importlib.metadata
import json
import platform
from pathlib import Path

from multimodal_tf.files import write_text_atomically

PACKAGES = ("multimodal_tf", "tensorflow", "keras", "numpy", "spacy", "pillow", "keras-tuner")


def library_versions():
    """Python, platform and the installed versions of the packages a run depends on.

    Example:
    >>> library_versions()["keras"]  # doctest: +SKIP
    '3.15.1'
    """
    versions = {"python": platform.python_version(), "platform": platform.platform()}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def data_fingerprint(path, source):
    """A fingerprint of a training run's data: file hashes and sample counts.

    Args:
        path: str or Path. What `train` was given (manifest, folder, prepared folder).
        source: `TrainingData`. The loaded splits.

    Returns:
        dict. `source` (the path), `sha256` of the manifest file (or of
        `prepared.json`), per-split sample counts and, for manifests, the number
        of images and one sha256 over every image's content digest in row order.
    """
    path = Path(path)
    if source.prepared is not None:
        return {
            "source": str(path),
            "sha256": _file_sha256(path / "prepared.json"),
            "samples": {s: v["num_samples"] for s, v in source.prepared["splits"].items()},
        }
    records = [record for split in source.splits.values() for record in split]
    images = hashlib.sha256()
    for row in sorted(source.image_digests):
        images.update(f"{row}:{source.image_digests[row]}\n".encode())
    return {
        "source": str(path),
        "sha256": _file_sha256(path) if path.is_file() else None,
        "samples": {split: len(rows) for split, rows in source.splits.items()},
        "images": sum(record.image is not None for record in records),
        "images_sha256": images.hexdigest(),
    }


def write_run_record(run_dir, **fields):
    """Writes `run_dir/run.json`: versions plus the given fields (fingerprint, timing).

    Fields already in the file and not given again are kept (a resumed run adds
    its timing to the record of the run it resumes).
    """
    path = Path(run_dir) / "run.json"
    record = json.loads(path.read_text()) if path.is_file() else {}
    record.update(fields)
    record["versions"] = library_versions()
    write_text_atomically(path, json.dumps(record, indent=2, sort_keys=True) + "\n")
    return record


def read_run_record(run_dir):
    """`run.json` of a run directory as a dict (empty when there is none)."""
    path = Path(run_dir) / "run.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
