"""Cora, CiteSeer and PubMed from the original Planetoid ``ind.<name>.<ext>`` files.

The files (Yang, Cohen & Salakhutdinov 2016, "Revisiting semi-supervised learning
with graph embeddings") are Python 2 pickles: ``x`` / ``y`` (the labelled training
nodes), ``allx`` / ``ally`` (every node that is not a test node), ``tx`` / ``ty``
(the test nodes, in the order of ``test.index``), ``graph`` (an adjacency dict)
and ``test.index`` (a text file of node ids). Node ``i < len(allx)`` is row ``i``
of ``allx``; test node ``test.index[j]`` is row ``j`` of ``tx``.

CiteSeer's test ids leave 15 gaps: nodes of the graph (each with one or two
edges) that appear in no feature or label file, the "isolated" nodes of the
Planetoid README. As in Kipf & Welling (2017) and PyG they are padded with zero
feature rows and keep their edges; unlike those, they get the label ``-1`` (not a
made-up class 0) and belong to no split.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hgcnet_jax.data._checksums import PLANETOID_EXTS
from hgcnet_jax.data._fetch import fetch
from hgcnet_jax.data._safe_pickle import safe_load
from hgcnet_jax.data.base import (
    Dataset,
    _check_fractions,
    _check_seed,
    as_float_features,
    node_graph,
    sorted_unique,
    stratified_split,
)
from hgcnet_jax.data.errors import CorruptFileError

__all__ = ["PLANETOID_NAMES", "PLANETOID_SPLITS", "load_planetoid"]

PLANETOID_NAMES = ("cora", "citeseer", "pubmed")
PLANETOID_SPLITS = ("public", "full")

_HOW = (
    "The Planetoid files are at https://github.com/kimiyoung/planetoid (folder data/, MIT licence): put the "
    "eight ind.{name}.* files in <folder>/planetoid/ and pass root=<folder> or set HGCNET_DATA_DIR=<folder>; "
    "with internet access they are downloaded into the cache automatically (PubMed only with checksums=)."
)


def _read_test_index(path: Path) -> np.ndarray:
    try:
        text = path.read_text(encoding="ascii")
        idx = np.array([int(t) for t in text.split()], dtype=np.int64)
    except (UnicodeDecodeError, ValueError) as e:
        raise CorruptFileError(f"{path}: expected one integer node id per line ({e})") from None
    if idx.size == 0 or idx.min() < 0 or np.unique(idx).size != idx.size:
        raise CorruptFileError(f"{path}: expected distinct non-negative node ids")
    return idx


def _labels(onehot: Any, path: Path, num_classes: int | None = None) -> np.ndarray:
    a = np.asarray(onehot)
    if a.ndim != 2 or (num_classes is not None and a.shape[1] != num_classes):
        raise CorruptFileError(f"{path}: expected a one-hot label matrix, got shape {a.shape}")
    y = np.argmax(a, axis=1).astype(np.int32)
    y[a.sum(axis=1) == 0] = -1
    return y


def _features(obj: Any, path: Path, d: int | None = None) -> np.ndarray:
    if not (hasattr(obj, "toarray") or isinstance(obj, np.ndarray)):
        raise CorruptFileError(f"{path}: expected a feature matrix, got {type(obj).__name__}")
    x = as_float_features(obj)
    if x.ndim != 2 or (d is not None and x.shape[1] != d):
        raise CorruptFileError(f"{path}: expected a (n, {d}) feature matrix, got shape {x.shape}")
    return x


def _edges(adj: Any, n: int, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric, deduplicated, self-loop-free (senders, receivers), sorted by (sender, receiver)."""
    if not isinstance(adj, Mapping):
        raise CorruptFileError(f"{path}: expected an adjacency dict, got {type(adj).__name__}")
    try:
        src = np.fromiter(
            (int(k) for k, nbrs in adj.items() for _ in nbrs), dtype=np.int64, count=sum(len(v) for v in adj.values())
        )
        dst = np.fromiter((int(v) for nbrs in adj.values() for v in nbrs), dtype=np.int64, count=src.size)
        keys = np.fromiter((int(k) for k in adj), dtype=np.int64, count=len(adj))
    except (TypeError, ValueError) as e:
        raise CorruptFileError(f"{path}: adjacency lists must hold integer node ids ({e})") from None
    for a in (src, dst, keys):
        if a.size and (a.min() < 0 or a.max() >= n):
            raise CorruptFileError(f"{path}: node ids must lie in [0, {n}), found [{a.min()}, {a.max()}]")
    s = np.concatenate([src, dst])
    r = np.concatenate([dst, src])
    keep = s != r
    codes = sorted_unique(s[keep] * n + r[keep])
    return (codes // n).astype(np.int32), (codes % n).astype(np.int32)


def load_planetoid(
    name: str,
    *,
    root: str | os.PathLike | None = None,
    split: str = "public",
    seed: int = 0,
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
    normalize_features: bool = False,
    download: bool = True,
    base_url: str | None = None,
    checksums: Mapping[str, str] | None = None,
) -> Dataset:
    """Load Cora, CiteSeer or PubMed as one graph.

    Args:
        name: ``"cora"``, ``"citeseer"`` or ``"pubmed"``.
        root: A data folder searched first (see ``docs/data.md`` for the search order).
        split: ``"public"``: the Planetoid split (20 labelled nodes per class for
            training, 500 validation and 1000 test nodes); ``"full"``: a seeded
            class-stratified split of all labelled nodes by ``fractions``
            (default 60/20/20), for batch sizes beyond the public split's 140.
        seed: Seed of the ``"full"`` split (ignored by ``"public"``).
        fractions: ``(train, val, test)`` fractions of the ``"full"`` split.
        normalize_features: Divide each feature row by its sum (zero rows stay zero).
        download: Allow downloading missing files into the cache.
        base_url: Mirror with the data-folder layout (default ``HGCNET_DATA_URL``).
        checksums: Extra SHA-256 digests by file name (PubMed's are not built in).

    Returns:
        A ``kind="node"`` :class:`Dataset` whose ``graph`` is symmetric with no
        self-loops and whose ``meta`` has ``source_files``, ``split``, ``seed``,
        ``num_unlabelled`` and ``normalize_features``.

    Raises:
        ValueError: Unknown ``name`` / ``split`` or bad ``fractions`` / ``seed``.
        DatasetNotFoundError, ChecksumError, CorruptFileError, UnsafePickleError:
            see :mod:`hgcnet_jax.data.errors`.
    """
    if name not in PLANETOID_NAMES:
        raise ValueError(f"name must be one of {PLANETOID_NAMES}, got {name!r}")
    if split not in PLANETOID_SPLITS:
        raise ValueError(f"{name}: split must be one of {PLANETOID_SPLITS}, got {split!r}")
    seed = _check_seed(seed)
    f = _check_fractions(fractions)
    if not isinstance(normalize_features, bool):
        raise TypeError(f"normalize_features must be True or False, got {normalize_features!r}")
    files = [f"ind.{name}.{ext}" for ext in PLANETOID_EXTS]
    paths = fetch(
        files,
        dataset=name,
        how_to_obtain=_HOW.format(name=name),
        root=root,
        download=download,
        base_url=base_url,
        checksums=checksums,
    )
    p = {ext: paths[f"ind.{name}.{ext}"] for ext in PLANETOID_EXTS}
    raw = {ext: safe_load(p[ext]) for ext in ("x", "y", "tx", "ty", "allx", "ally", "graph")}
    test_index = _read_test_index(p["test.index"])

    allx = _features(raw["allx"], p["allx"])
    d = allx.shape[1]
    tx = _features(raw["tx"], p["tx"], d)
    ally = _labels(raw["ally"], p["ally"])
    num_classes = np.asarray(raw["ally"]).shape[1]
    ty = _labels(raw["ty"], p["ty"], num_classes)
    x_train = _features(raw["x"], p["x"], d)
    y_train = _labels(raw["y"], p["y"], num_classes)
    if allx.shape[0] != ally.shape[0] or tx.shape[0] != ty.shape[0] or x_train.shape[0] != y_train.shape[0]:
        raise CorruptFileError(
            f"{p['allx'].parent}: ind.{name}.* row counts disagree "
            f"(allx {allx.shape[0]} / ally {ally.shape[0]}, tx {tx.shape[0]} / ty {ty.shape[0]}, "
            f"x {x_train.shape[0]} / y {y_train.shape[0]})"
        )
    if test_index.size != tx.shape[0]:
        raise CorruptFileError(f"{p['test.index']}: {test_index.size} ids for {tx.shape[0]} rows of ind.{name}.tx")
    n_all = allx.shape[0]
    if x_train.shape[0] > n_all or not np.array_equal(allx[: x_train.shape[0]], x_train):
        raise CorruptFileError(f"{p['x']}: the labelled training rows must be the first rows of ind.{name}.allx")
    if test_index.min() < n_all:
        raise CorruptFileError(f"{p['test.index']}: test ids must follow the {n_all} rows of ind.{name}.allx")
    n = int(test_index.max()) + 1

    x = np.zeros((n, d), dtype=np.float32)
    y = np.full(n, -1, dtype=np.int32)
    x[:n_all] = allx
    y[:n_all] = ally
    x[test_index] = tx
    y[test_index] = ty
    if normalize_features:
        rowsum = x.sum(axis=1, keepdims=True)
        np.divide(x, rowsum, out=x, where=rowsum != 0)

    senders, receivers = _edges(raw["graph"], n, p["graph"])

    if split == "public":
        n_train = x_train.shape[0]
        n_val = min(500, n_all - n_train)
        splits = {
            "train": np.arange(n_train, dtype=np.int32),
            "val": np.arange(n_train, n_train + n_val, dtype=np.int32),
            "test": np.sort(test_index).astype(np.int32),
        }
    else:
        splits = stratified_split(y, f, seed=seed)

    graph = node_graph(x, senders, receivers)
    meta = {
        "source_files": {k: str(v) for k, v in paths.items()},
        "split": split,
        "seed": seed if split == "full" else None,
        "fractions": f if split == "full" else None,
        "num_unlabelled": int((y < 0).sum()),
        "normalize_features": bool(normalize_features),
        "licence": "MIT (Planetoid, Yang et al. 2016)",
    }
    return Dataset(
        name=name, kind="node", x=x, y=y, num_classes=int(num_classes), splits=splits, graph=graph, meta=meta
    )
