"""Small file-system helpers: atomic writes and checksums.

Every file the toolkit writes goes through :func:`atomic_write` or
:func:`atomic_path` (or the helpers built on them), so an interrupted process
never leaves a half-written file behind: data is written to a temporary file in
the same folder, flushed, fsync'ed and then renamed over the target, which POSIX
makes atomic. The finished file gets the permissions a plain ``open(path, "w")``
would give it (``0o666`` minus the process umask), not the ``0o600`` of the
temporary file, so colleagues on a shared machine can read the results when the
umask lets them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = [
    "atomic_write",
    "atomic_path",
    "write_text",
    "write_bytes",
    "write_json",
    "sha256_file",
    "ensure_writable_dir",
    "upsert_section",
]


def _umask() -> int:
    """The process umask (read by setting and restoring it: there is no getter before Python 3.14)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _default_mode() -> int:
    """Permissions of a newly created regular file: ``0o666`` minus the umask."""
    return 0o666 & ~_umask()


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file next to ``path``; rename it over ``path`` on success.

    On any exception the temporary file is removed and ``path`` is untouched. The
    file ends up with mode ``0o666 & ~umask``, as if created by ``open``.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write: mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as f:
            yield f
            f.flush()
            os.fchmod(f.fileno(), _default_mode())
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path next to ``path``, renamed over it when the body succeeds.

    For writers that need a file name rather than a file object (netCDF via h5netcdf):
    the same guarantees as :func:`atomic_write` (removed on any exception, ``path``
    untouched; mode ``0o666 & ~umask``, contents fsync'ed before the rename).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, _default_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_write(path, "w") as f:
        f.write(text)
    return Path(path)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_write(path, "wb") as f:
        f.write(data)
    return Path(path)


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def ensure_writable_dir(path: str | os.PathLike, *, what: str = "output folder") -> Path:
    """Create ``path`` if needed and check that files can be written in it.

    Raises:
        PermissionError: naming the folder and what to do, before any work starts.
    """
    path = Path(path)
    blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        which = "it is a file" if blocker == path else f"{str(blocker)!r} is a file"
        raise PermissionError(
            f"cannot write to the {what} {str(path)!r}: {which}, not a folder; "
            "choose another folder (e.g. --out) or move the file away"
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe.", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise PermissionError(
            f"cannot write to the {what} {str(path)!r} ({e.strerror or e}); "
            "choose another folder (e.g. --out) or fix its permissions"
        ) from None
    return path


def upsert_section(path: str | os.PathLike, name: str, markdown: str, *, title: str = "# Results\n") -> Path:
    """Replace (or append) the marker-delimited section ``name`` of a Markdown file.

    Sections look like ``<!-- section:NAME -->`` … ``<!-- /section:NAME -->``, so that
    several experiment scripts can each own a part of ``docs/results.md``. The file
    is rewritten atomically.
    """
    path = Path(path)
    begin, end = f"<!-- section:{name} -->", f"<!-- /section:{name} -->"
    doc = path.read_text(encoding="utf-8") if path.exists() else title
    block = f"{begin}\n{markdown.strip()}\n{end}"
    if begin in doc and end in doc:
        head, rest = doc.split(begin, 1)
        _, tail = rest.split(end, 1)
        doc = head + block + tail
    else:
        doc = doc.rstrip() + "\n\n" + block + "\n"
    return write_text(path, doc)
