"""Find a dataset's files, or download them, verified by SHA-256.

Every file is looked for in this order (the first hit wins):

1. the ``root=`` argument: ``root/<subdir>/<file>``, then ``root/<file>``;
2. the environment variable ``HGCNET_DATA_DIR`` (same two layouts);
3. the standard system folder, where one exists
   (``/usr/share/datasets/fashion-mnist`` from Debian's ``dataset-fashion-mnist``);
4. the user cache ``$XDG_CACHE_HOME/hgcnet_jax/<subdir>/<file>``
   (``~/.cache/hgcnet_jax/...`` when ``XDG_CACHE_HOME`` is unset);
5. a download into that cache, from the mirror ``base_url=`` / ``HGCNET_DATA_URL``
   (``<base>/<subdir>/<file>``, the layout of a data folder) when one is set, else
   from the file's canonical public URL.

A file with a known SHA-256 (built into the package, or passed by the caller as
``checksums=``) is verified wherever it is found. A download is refused unless
the digest is known, is streamed into a temporary file in the cache folder while
being hashed, and is renamed into place only when the digest matches, so a
failed or corrupt download leaves nothing in the cache.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

from hgcnet_jax._io import atomic_write, sha256_file
from hgcnet_jax.data._checksums import KNOWN_FILES, SYSTEM_DIRS, KnownFile
from hgcnet_jax.data.errors import ChecksumError, DatasetNotFoundError, DownloadError

__all__ = ["ENV_DATA_DIR", "ENV_DATA_URL", "cache_dir", "check_checksums", "fetch", "known_file"]

logger = logging.getLogger(__name__)

ENV_DATA_DIR = "HGCNET_DATA_DIR"
ENV_DATA_URL = "HGCNET_DATA_URL"

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1 << 20


def cache_dir() -> Path:
    """The user cache folder: ``$XDG_CACHE_HOME/hgcnet_jax``, else ``~/.cache/hgcnet_jax``."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "hgcnet_jax"


def known_file(name: str) -> KnownFile:
    """The :class:`KnownFile` entry of ``name`` (file name, e.g. ``"ind.cora.x"``)."""
    return KNOWN_FILES[name]


def check_checksums(checksums: Mapping[str, str] | None) -> dict[str, str]:
    """Validate a user ``checksums=`` mapping of file name -> SHA-256 hex digest."""
    if checksums is None:
        return {}
    if not isinstance(checksums, Mapping):
        raise TypeError(f"checksums must map file names to SHA-256 hex digests, got {type(checksums).__name__}")
    out = {}
    for name, digest in checksums.items():
        if not isinstance(name, str) or not isinstance(digest, str) or not _HEX64.match(digest.lower()):
            raise ValueError(f"checksums[{name!r}] must be a 64-character SHA-256 hex digest, got {digest!r}")
        out[name] = digest.lower()
    return out


def _check_base_url(base_url: str | None) -> str | None:
    if base_url is None:
        base_url = os.environ.get(ENV_DATA_URL) or None
        arg = ENV_DATA_URL
    else:
        arg = "base_url"
    if base_url is None:
        return None
    if not isinstance(base_url, str) or urllib.parse.urlsplit(base_url).scheme not in ("http", "https", "file"):
        raise ValueError(f"{arg} must be an http://, https:// or file:// URL, got {base_url!r}")
    return base_url.rstrip("/")


def _candidates(kf: KnownFile, root: str | os.PathLike | None) -> list[tuple[str, Path | None]]:
    """Places to look, in order; ``(label, None)`` records a place that is not configured."""
    places: list[tuple[str, Path | None]] = []
    if root is not None:
        r = Path(root).expanduser()
        if not r.is_dir():
            raise NotADirectoryError(
                f"root={str(root)!r} is not a folder: pass the data folder (the one holding {kf.subdir}/) "
                "or the folder holding the files themselves"
            )
        places += [("root=", r / kf.subdir / kf.name), ("root=", r / kf.name)]
    else:
        places.append(("root=", None))
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        e = Path(env).expanduser()
        if not e.is_dir():
            raise NotADirectoryError(f"{ENV_DATA_DIR}={env!r} is not a folder: point it at a data folder or unset it")
        places += [(ENV_DATA_DIR, e / kf.subdir / kf.name), (ENV_DATA_DIR, e / kf.name)]
    else:
        places.append((ENV_DATA_DIR, None))
    for d in SYSTEM_DIRS.get(kf.subdir, ()):
        places.append(("system", Path(d) / kf.name))
    places.append(("cache", cache_dir() / kf.subdir / kf.name))
    return places


def verify(path: Path, expected: str | None) -> Path:
    """Check ``path`` against ``expected`` (no-op when ``None``).

    Raises:
        ChecksumError: naming the file, the expected and the actual digest.
    """
    if expected is None:
        return path
    actual = sha256_file(path)
    if actual != expected:
        raise ChecksumError(
            f"{path}: SHA-256 is {actual}, expected {expected}: the file is truncated, corrupt or not the "
            f"original {path.name}. Delete it and obtain it again (see docs/data.md); if you are sure it is "
            f"right, pass checksums={{{path.name!r}: {actual!r}}}."
        )
    return path


def _download(url: str, dest: Path, expected: str, *, timeout: float) -> Path:
    """Stream ``url`` into ``dest`` atomically, verifying SHA-256 before the rename."""
    logger.info("downloading %s -> %s", url, dest)
    try:
        response = urllib.request.urlopen(url, timeout=timeout)
    except urllib.error.HTTPError as e:
        raise DownloadError(f"could not download {url}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        raise DownloadError(f"could not download {url}: {reason}") from None
    with response:
        h = hashlib.sha256()
        length = response.headers.get("Content-Length")
        try:
            with atomic_write(dest, "wb") as f:
                received = 0
                while chunk := response.read(_CHUNK):
                    h.update(chunk)
                    f.write(chunk)
                    received += len(chunk)
                if length is not None and length.isdigit() and received != int(length):
                    raise DownloadError(
                        f"download of {url} was interrupted after {received} of {length} bytes; "
                        "nothing was kept in the cache"
                    )
                actual = h.hexdigest()
                if actual != expected:
                    raise ChecksumError(
                        f"download of {dest.name} from {url} has SHA-256 {actual}, expected {expected}: "
                        "the server sent a corrupt or different file; nothing was kept in the cache"
                    )
        except (OSError, http.client.HTTPException) as e:
            if isinstance(e, DownloadError):
                raise
            raise DownloadError(f"download of {url} was interrupted: {e}; nothing was kept in the cache") from None
    return dest


def fetch(
    files: Sequence[str],
    *,
    dataset: str,
    how_to_obtain: str,
    root: str | os.PathLike | None = None,
    download: bool = True,
    base_url: str | None = None,
    checksums: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> dict[str, Path]:
    """Locate (or download) every file of a dataset.

    Args:
        files: File names, each a key of the known-file table.
        dataset: The dataset's name, for messages.
        how_to_obtain: A sentence for the error message: how a user gets the data.
        root: A folder searched first (data-folder layout or the files directly).
        download: Whether the last step may download into the cache.
        base_url: A mirror with the data-folder layout; default ``HGCNET_DATA_URL``,
            else each file's canonical URL.
        checksums: Extra or overriding SHA-256 digests, by file name (needed to
            download a file whose digest is not built in, e.g. PubMed's).
        timeout: Seconds to wait for the server.

    Returns:
        File name -> path of a verified file.

    Raises:
        DatasetNotFoundError: A file is nowhere and cannot be downloaded; lists every
            place searched and how to obtain the data.
        ChecksumError: A file found or downloaded has the wrong SHA-256.
    """
    if not isinstance(download, bool):
        raise TypeError(f"download must be True or False, got {download!r}")
    extra = check_checksums(checksums)
    mirror = _check_base_url(base_url)
    found: dict[str, Path] = {}
    for name in files:
        kf = KNOWN_FILES[name]
        expected = extra.get(name, kf.sha256)
        places = _candidates(kf, root)
        hit = next((p for _, p in places if p is not None and p.is_file()), None)
        if hit is not None:
            found[name] = verify(hit, expected)
            continue
        url = f"{mirror}/{urllib.parse.quote(kf.subdir)}/{urllib.parse.quote(name)}" if mirror else kf.url
        problem: str
        if not download:
            problem = "downloading is switched off (download=False)"
        elif url is None:
            problem = (
                f"{name} has no canonical download URL; set {ENV_DATA_URL} or base_url= to a mirror "
                "with the data-folder layout"
            )
        elif expected is None:
            problem = (
                f"no SHA-256 is known for {name}, and an unverified file is never downloaded; pass "
                f"checksums={{{name!r}: '<sha256>'}} to allow the download from {url}"
            )
        else:
            dest = cache_dir() / kf.subdir / name
            try:
                found[name] = _download(url, dest, expected, timeout=timeout)
                continue
            except DownloadError as e:
                problem = str(e)
        searched = "\n".join(f"  - {label}: {'(not set)' if p is None else p}" for label, p in places)
        raise DatasetNotFoundError(
            f"{dataset}: file {name} not found. Searched, in order:\n{searched}\n"
            f"and could not download it: {problem}.\n{how_to_obtain}"
        )
    return found
