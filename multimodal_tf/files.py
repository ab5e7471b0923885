"""Writing files a user or a later step reads: whole or not at all, readable by others."""

import contextlib
import os
import tempfile
from pathlib import Path


def current_umask():
    """The process's umask (read by setting it and putting it back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomically(path, text, encoding="utf-8"):
    """Writes `text` to a temporary file beside `path` and renames it over `path`.

    A kill leaves the old file or the new one, never half of one; the file gets
    the permissions the umask allows, as a plain write would.

    Example:
    >>> write_text_atomically(run / "metrics.json", "{}")  # doctest: +SKIP
    """
    write_bytes_atomically(path, text.encode(encoding))


def write_bytes_atomically(path, data):
    """`write_text_atomically` for bytes."""
    path = Path(path)
    with temporary_path_next_to(path) as temporary:
        with open(temporary, "wb") as handle:
            handle.write(data)
        os.chmod(temporary, 0o666 & ~current_umask())  # mkstemp makes it 0600
        os.replace(temporary, path)


@contextlib.contextmanager
def temporary_path_next_to(target):
    """A temporary file's path in `target`'s folder, removed if it is still there afterwards.

    Write it, then `os.replace` it over `target`: a kill leaves the old file or the new one.
    """
    handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    os.close(handle)
    try:
        yield name
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
