"""Small file-system helpers: atomic writes and checksums.

Every file the toolkit writes goes through :func:`atomic_write` (or the
helpers built on it), so an interrupted process never leaves a half-written
file behind: data is written to a temporary file in the same folder, flushed,
fsync'ed and then renamed over the target, which POSIX makes atomic.
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
    "write_text",
    "write_bytes",
    "write_json",
    "sha256_file",
    "ensure_writable_dir",
    "upsert_section",
]


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file next to ``path``; rename it over ``path`` on success.

    On any exception the temporary file is removed and ``path`` is untouched.
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
            os.fsync(f.fileno())
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
