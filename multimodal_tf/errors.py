"""Errors raised for bad user input.

Each carries a message that names the file, the row and the field involved, so a
user can fix their data or config without reading a traceback.
"""


class MultimodalTFError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(MultimodalTFError, ValueError):
    """A run config has an unknown key or a value of the wrong type."""


class DataError(MultimodalTFError, ValueError):
    """A manifest, a row of it, or a file it points at cannot be used."""
