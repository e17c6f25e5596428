"""Errors raised by the dataset loaders.

Each error subclasses the built-in exception a caller would naturally catch
(``FileNotFoundError``, ``ValueError``, ``pickle.UnpicklingError``), so code
that does not know about this module still handles it, while code that does can
react to the precise failure.
"""

from __future__ import annotations

import pickle

__all__ = [
    "ChecksumError",
    "CorruptFileError",
    "DatasetNotFoundError",
    "DownloadError",
    "UnsafePickleError",
]


class DatasetNotFoundError(FileNotFoundError):
    """A dataset file is in none of the places searched and could not be downloaded.

    The message lists every place that was searched and how to obtain the data.
    """


class ChecksumError(ValueError):
    """A file's SHA-256 differs from the known one: it is corrupt, truncated or not the original.

    The message names the file, the expected and the actual digest.
    """


class CorruptFileError(ValueError):
    """A file could not be parsed (truncated, wrong format, inconsistent contents).

    The message names the file.
    """


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle asked for a class or function outside the allow-list; nothing was executed."""


class DownloadError(OSError):
    """A download could not be started or completed (server unreachable, HTTP error, bad URL)."""
