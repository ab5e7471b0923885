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


def write_text_atomically(path, text):
    """Writes `text` to a temporary file beside `path` and renames it over `path`."""
    temporary = Path(path).with_name(f".{Path(path).name}.tmp")
    temporary.write_text(text)
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
