"""Crafted pickles must be refused before any of their code runs."""

from __future__ import annotations

import builtins
import collections
import os
import pickle
import shutil

import numpy as np
import pytest

from hgcnet_jax.data import ChecksumError, CorruptFileError, UnsafePickleError, load
from hgcnet_jax.data._safe_pickle import allowed_globals, safe_load


class _SystemPayload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _ExecPayload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (builtins.exec, (f"open({self.marker!r}, 'w').close()",))


def _payloads(marker):
    nested = collections.defaultdict(list)
    nested[0] = [1, 2, _SystemPayload(marker)]  # hidden inside a Planetoid-like adjacency dict
    return {
        "os.system": _SystemPayload(marker),
        "builtins.exec": _ExecPayload(marker),
        "nested": nested,
    }


@pytest.mark.parametrize("protocol", [0, 2, 4])
@pytest.mark.parametrize("kind", ["os.system", "builtins.exec", "nested"])
def test_safe_load_refuses_code_execution(tmp_path, protocol, kind):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps(_payloads(marker)[kind], protocol=protocol))
    with pytest.raises(UnsafePickleError, match=r"evil\.pkl.*refusing to unpickle (posix|__builtin__|builtins)\."):
        safe_load(evil)
    assert not marker.exists()


def test_crafted_pickle_is_refused_through_load(tmp_path, isolated, fake_planetoid):
    """PubMed has no built-in checksums, so the restricted unpickler is the line of defence."""
    fake_planetoid(tmp_path, "pubmed")
    marker = tmp_path / "pwned"
    (tmp_path / "ind.pubmed.graph").write_bytes(pickle.dumps(_SystemPayload(marker), protocol=2))
    with pytest.raises(UnsafePickleError, match=r"ind\.pubmed\.graph.*Nothing from it was executed"):
        load("pubmed", root=tmp_path)
    assert not marker.exists()


def test_crafted_pickle_in_place_of_a_known_file_fails_its_checksum(tmp_path, isolated, data_dir):
    folder = tmp_path / "planetoid"
    folder.mkdir()
    for f in (data_dir / "planetoid").glob("ind.cora.*"):
        shutil.copy(f, folder / f.name)
    marker = tmp_path / "pwned"
    (folder / "ind.cora.x").write_bytes(pickle.dumps(_SystemPayload(marker), protocol=2))
    with pytest.raises(ChecksumError, match=r"ind\.cora\.x"):
        load("cora", root=tmp_path)
    assert not marker.exists()


def test_allow_list_is_data_only():
    table = allowed_globals()
    modules = {m for m, _ in table}
    assert modules <= {
        "numpy",
        "numpy.core.multiarray",
        "numpy._core.multiarray",
        "numpy.core.numeric",
        "numpy._core.numeric",
        "scipy.sparse.csr",
        "scipy.sparse._csr",
        "scipy.sparse.csc",
        "scipy.sparse._csc",
        "scipy.sparse.coo",
        "scipy.sparse._coo",
        "scipy.sparse.lil",
        "scipy.sparse._lil",
        "__builtin__",
        "builtins",
        "collections",
        "_codecs",
    }
    assert {n for m, n in table if m in ("builtins", "__builtin__")} == {"list"}
    for forbidden in (eval, exec, getattr, open, os.system, __import__):
        assert forbidden not in table.values()


def test_codecs_encode_is_restricted_to_latin1(tmp_path):
    ok = tmp_path / "ok.pkl"
    ok.write_bytes(pickle.dumps(np.arange(4, dtype=np.int64), protocol=2))  # uses _codecs.encode(..., 'latin1')
    np.testing.assert_array_equal(safe_load(ok), np.arange(4))

    class OtherCodec:
        def __reduce__(self):
            import _codecs

            return (_codecs.encode, ("payload", "rot13"))

    bad = tmp_path / "bad.pkl"
    bad.write_bytes(pickle.dumps(OtherCodec(), protocol=2))
    with pytest.raises(CorruptFileError, match=r"bad\.pkl"):
        safe_load(bad)


def test_truncated_pickle_is_named(tmp_path):
    f = tmp_path / "short.pkl"
    f.write_bytes(pickle.dumps(np.arange(1000), protocol=2)[:-50])
    with pytest.raises(CorruptFileError, match=r"short\.pkl"):
        safe_load(f)
    g = tmp_path / "garbage.pkl"
    g.write_bytes(b"this is not a pickle")
    with pytest.raises(CorruptFileError, match=r"garbage\.pkl"):
        safe_load(g)
