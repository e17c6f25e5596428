"""The package's version: the installed distribution's (``pyproject.toml`` is the one place it is written)."""

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("hgcnet_jax")
except _metadata.PackageNotFoundError:  # a source tree on sys.path, not installed
    __version__ = "0+unknown"
