"""A restricted unpickler for the Planetoid ``ind.*`` files.

``pickle.load`` on an untrusted file runs arbitrary code: the pickle names any
importable callable (``os.system``, ``builtins.exec`` ...) and the unpickler
calls it. The Planetoid files only ever contain numpy arrays, scipy sparse
matrices, lists and a ``collections.defaultdict``, so :func:`safe_load` admits
exactly those classes and refuses every other global *before* anything is
called. Names are mapped to concrete objects from an explicit table; nothing is
imported by name from the file.

The files were written by Python 2, so byte strings are decoded as latin-1 and
Python 2 module names (``__builtin__``, ``numpy.core.multiarray``,
``scipy.sparse.csr``) are accepted next to their Python 3 spellings; so is
``_codecs.encode`` restricted to latin-1, which Python 3 uses to store bytes in
protocol-2 pickles.
"""

from __future__ import annotations

import collections
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from hgcnet_jax.data.errors import CorruptFileError, UnsafePickleError

__all__ = ["allowed_globals", "safe_load"]


def _reconstruct() -> Any:
    try:  # numpy >= 2
        from numpy._core.multiarray import _reconstruct as f
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct as f
    return f


def _frombuffer() -> Any:
    try:  # numpy >= 2
        from numpy._core.numeric import _frombuffer as f
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.numeric import _frombuffer as f
    return f


def _scalar() -> Any:
    try:  # numpy >= 2
        from numpy._core.multiarray import scalar as f
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import scalar as f
    return f


def _latin1_encode(text: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` as Python 3 uses it to pickle bytes at protocol 2, restricted to latin-1."""
    if not isinstance(text, str) or encoding.lower().replace("_", "-") not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"only _codecs.encode(str, 'latin1') is allowed, got encoding {encoding!r}")
    return text.encode("latin-1", errors)


def allowed_globals() -> dict[tuple[str, str], Any]:
    """The allow-list: ``(module, name)`` as written in a pickle -> the object it resolves to."""
    table: dict[tuple[str, str], Any] = {}
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        table[(mod, "_reconstruct")] = _reconstruct()
        table[(mod, "scalar")] = _scalar()
    for mod in ("numpy.core.numeric", "numpy._core.numeric"):
        table[(mod, "_frombuffer")] = _frombuffer()  # protocol-5 arrays
    table[("numpy", "ndarray")] = np.ndarray
    table[("numpy", "dtype")] = np.dtype
    for fmt, cls in (("csr", sp.csr_matrix), ("csc", sp.csc_matrix), ("coo", sp.coo_matrix), ("lil", sp.lil_matrix)):
        table[(f"scipy.sparse.{fmt}", f"{fmt}_matrix")] = cls
        table[(f"scipy.sparse._{fmt}", f"{fmt}_matrix")] = cls
    for mod in ("__builtin__", "builtins"):
        table[(mod, "list")] = list
    table[("collections", "defaultdict")] = collections.defaultdict
    table[("_codecs", "encode")] = _latin1_encode
    return table


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: Any, path: Path) -> None:
        super().__init__(file, encoding="latin1")
        self._path = path
        self._allowed = allowed_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"{self._path}: refusing to unpickle {module}.{name}: this file may only contain numpy arrays, "
                "scipy.sparse matrices, lists and a defaultdict (the Planetoid format), so it is not a genuine "
                "Planetoid file. Nothing from it was executed. Delete it and obtain the original files "
                "(see docs/data.md)."
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"{self._path}: refusing a persistent-id reference; not a Planetoid file")


def safe_load(path: str | Path) -> Any:
    """Unpickle ``path`` admitting only the classes of the Planetoid format.

    Args:
        path: A pickle file (protocol <= 5; Python 2 pickles are decoded as latin-1).

    Returns:
        The unpickled object.

    Raises:
        UnsafePickleError: If the pickle names any global outside :func:`allowed_globals`;
            the offending callable is never called.
        CorruptFileError: If the file is truncated or not a pickle (names the file).
    """
    path = Path(path)
    with open(path, "rb") as f:
        try:
            return _RestrictedUnpickler(f, path).load()
        except UnsafePickleError:
            raise
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as e:
            raise CorruptFileError(
                f"{path}: truncated or not a valid pickle ({type(e).__name__}: {e}); "
                "delete it and obtain the file again"
            ) from None
