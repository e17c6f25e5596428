"""The :class:`Dataset` container and seeded split helpers.

One array holds every example and the splits are int32 index arrays into it,
so a sweep moves a dataset to the device once and every replica indexes into it
(see ``docs/design.md``).
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import jraph
import numpy as np
from jaxtyping import Float, Int

__all__ = ["KINDS", "SPLIT_NAMES", "Dataset", "carve_validation", "stratified_split"]

KINDS = ("node", "image", "text", "tabular")
SPLIT_NAMES = ("train", "val", "test")

_NDIM = {"node": 2, "image": 4, "text": 2, "tabular": 2}


def _readonly(a: np.ndarray) -> np.ndarray:
    """A read-only view of ``a`` (the caller's array keeps its own flags)."""
    v = a.view()
    v.flags.writeable = False
    return v


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """A whole dataset: every example in one array, splits as index arrays.

    Attributes:
        name: The dataset's name, e.g. ``"cora"``.
        kind: What the examples are: ``"node"`` (nodes of one graph), ``"image"``,
            ``"text"`` (token-id sequences) or ``"tabular"``.
        x: All examples. node: ``(n_nodes, d)`` float32; image: ``(n, H, W, C)``
            float32 in [0, 1]; text: ``(n, L)`` int32 token ids (0 = padding);
            tabular: ``(n, d)`` float32.
        y: ``(n,)`` int32 labels in ``[0, num_classes)``. ``-1`` marks an
            unlabelled example (CiteSeer's 15 padded nodes); such an
            example belongs to no split.
        num_classes: Number of classes.
        splits: ``"train"``, ``"val"``, ``"test"`` -> sorted, disjoint int32
            index arrays into ``x`` / ``y`` (``"val"`` may be empty).
        graph: node kind only: one ``jraph.GraphsTuple`` with ``nodes=x``,
            symmetric ``senders`` / ``receivers`` without self-loops (models add
            their own), ``edges=None``; ``None`` for every other kind.
        meta: Extra facts: source files, split name, seed, class names,
            vocabulary size, tokenizer, ...

    The arrays are exposed read-only; ``splits`` and ``meta`` are read-only
    mappings. Construction validates every field and names the one at fault. It
    refuses only what is wrong — shapes, out-of-range labels or indices, a repeated
    index, overlapping splits — and casts what merely has another dtype: any integer
    ``y`` and split indices become int32 (a split is sorted), floating ``x`` becomes
    float32 (integer token ids, for text, int32), and array-likes (lists, JAX arrays)
    become numpy arrays. A missing ``"val"`` split is empty. :meth:`from_arrays` builds
    one from plain ``(x, y)`` arrays.
    """

    name: str
    kind: Literal["node", "image", "text", "tabular"]
    x: np.ndarray
    y: Int[np.ndarray, " n"]
    num_classes: int
    splits: Mapping[str, Int[np.ndarray, " m"]]
    graph: Any = None
    meta: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"Dataset.name must be a non-empty string, got {self.name!r}")
        if self.kind not in KINDS:
            raise ValueError(f"Dataset.kind must be one of {KINDS}, got {self.kind!r}")
        x = _as_array(self.x, "Dataset.x")
        want_ndim = _NDIM[self.kind]
        if x.ndim != want_ndim:
            raise ValueError(f"Dataset.x for kind {self.kind!r} must have {want_ndim} dimensions, got shape {x.shape}")
        if self.kind == "text":
            x = _as_int32(x, "Dataset.x", "token ids")
        elif np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer) or x.dtype == np.bool_:
            x = x.astype(np.float32, copy=False)
        else:
            raise ValueError(f"Dataset.x for kind {self.kind!r} must be a numeric array, got {x.dtype}")
        n = x.shape[0]
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int | np.integer):
            raise TypeError(f"Dataset.num_classes must be an int, got {type(self.num_classes).__name__}")
        if self.num_classes < 1:
            raise ValueError(f"Dataset.num_classes must be >= 1, got {self.num_classes}")
        y = _as_array(self.y, "Dataset.y")
        if y.shape != (n,):
            raise ValueError(
                f"Dataset.y must be an integer array of shape ({n},), got "
                f"{type(self.y).__name__} {getattr(y, 'dtype', '')} {getattr(y, 'shape', '')}"
            )
        y = _as_int32(y, "Dataset.y", "labels")
        if n and (y.min() < -1 or y.max() >= self.num_classes):
            raise ValueError(
                f"Dataset.y must lie in [-1, {self.num_classes}) (-1 = unlabelled), got range [{y.min()}, {y.max()}]"
            )
        given = dict(self.splits) if isinstance(self.splits, Mapping) else None
        if given is not None:
            given.setdefault("val", np.zeros(0, np.int32))
        if given is None or set(given) != set(SPLIT_NAMES):
            raise ValueError(
                f"Dataset.splits must map {SPLIT_NAMES} ('val' may be left out) to index arrays, got keys "
                f"{sorted(self.splits) if isinstance(self.splits, Mapping) else type(self.splits).__name__}"
            )
        seen = np.zeros(n, dtype=bool)
        splits = {}
        for key in SPLIT_NAMES:
            idx = _as_array(given[key], f"Dataset.splits[{key!r}]")
            if idx.ndim != 1 or not (np.issubdtype(idx.dtype, np.integer) or (idx.size == 0)):
                raise ValueError(
                    f"Dataset.splits[{key!r}] must be a 1-d array of integer indices, got "
                    f"{type(given[key]).__name__} {getattr(idx, 'dtype', '')} {getattr(idx, 'shape', '')}"
                )
            if idx.size:
                if idx.min() < 0 or idx.max() >= n:
                    raise ValueError(f"Dataset.splits[{key!r}] has indices outside [0, {n})")
                idx = np.sort(idx)
                if np.any(np.diff(idx) == 0):
                    raise ValueError(f"Dataset.splits[{key!r}] repeats an index ({int(idx[1:][np.diff(idx) == 0][0])})")
                if seen[idx].any():
                    raise ValueError(f"Dataset.splits[{key!r}] overlaps another split")
                if (y[idx] < 0).any():
                    raise ValueError(f"Dataset.splits[{key!r}] contains unlabelled examples (y == -1)")
                seen[idx] = True
            splits[key] = _readonly(idx.astype(np.int32, copy=False))
        if self.kind == "node":
            _check_graph(self.graph, n)
        elif self.graph is not None:
            raise ValueError(f"Dataset.graph must be None for kind {self.kind!r}")
        if not isinstance(self.meta, Mapping):
            raise TypeError(f"Dataset.meta must be a mapping, got {type(self.meta).__name__}")
        object.__setattr__(self, "x", _readonly(x))
        object.__setattr__(self, "y", _readonly(y))
        object.__setattr__(self, "num_classes", int(self.num_classes))
        object.__setattr__(self, "splits", types.MappingProxyType(splits))
        object.__setattr__(self, "meta", types.MappingProxyType(dict(self.meta)))
        if self.kind == "node":
            g = self.graph
            object.__setattr__(
                self,
                "graph",
                g._replace(
                    nodes=self.x,
                    senders=_readonly(g.senders),
                    receivers=_readonly(g.receivers),
                    n_node=_readonly(g.n_node),
                    n_edge=_readonly(g.n_edge),
                ),
            )

    @classmethod
    def from_arrays(
        cls,
        x: Any,
        y: Any,
        *,
        kind: str | None = None,
        splits: Mapping[str, Any] | None = None,
        fractions: Sequence[float] = (0.7, 0.1, 0.2),
        seed: int = 0,
        num_classes: int | None = None,
        name: str = "arrays",
    ) -> Dataset:
        """A :class:`Dataset` from plain arrays, the kind read from their shape.

        Args:
            x: examples: ``(n, d)`` floats (tabular), ``(n, L)`` integers (text token
                ids), ``(n, H, W, C)`` (images); ``(n, H, W)`` gets a channel axis.
            y: ``(n,)`` integer labels (any integer dtype).
            kind: ``"tabular"``, ``"image"`` or ``"text"``; default from ``x`` as above.
            splits: ``{"train", "val", "test"} -> indices``; default a seeded,
                class-stratified split by ``fractions``.
            fractions: ``(train, val, test)`` of that default split.
            seed: its seed.
            num_classes: default ``max(y) + 1``.
            name: the dataset's name.

        Raises:
            ValueError: naming the argument at fault (a node dataset needs a graph:
                build the :class:`Dataset` itself).
        """
        xa = _as_array(x, "Dataset.from_arrays: x")
        ya = _as_array(y, "Dataset.from_arrays: y")
        if kind is None:
            if xa.ndim == 4 or xa.ndim == 3:
                kind = "image"
            elif xa.ndim == 2:
                kind = "text" if np.issubdtype(xa.dtype, np.integer) else "tabular"
            else:
                raise ValueError(f"Dataset.from_arrays: x of shape {xa.shape} is neither (n, d), (n, L) nor "
                                 "(n, H, W[, C]); pass kind=")
        if kind == "node":
            raise ValueError("Dataset.from_arrays: a node dataset needs its graph; build Dataset(kind='node', graph=...)")
        if kind == "image" and xa.ndim == 3:
            xa = xa[..., None]
        if ya.ndim != 1 or ya.shape[0] != xa.shape[0]:
            raise ValueError(f"Dataset.from_arrays: y must be 1-d with {xa.shape[0]} labels (one per row of x), "
                             f"got shape {ya.shape}")
        ya = _as_int32(ya, "Dataset.from_arrays: y", "class labels")
        k = int(ya.max()) + 1 if num_classes is None else num_classes
        if splits is None:
            splits = stratified_split(ya, fractions, seed=seed)
        return cls(name=name, kind=kind, x=xa, y=ya, num_classes=k, splits=splits,
                   meta={"source": "arrays", "split_seed": int(seed)})

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # The read-only mappings are not picklable; rebuild (and re-validate) from plain dicts.
        return (
            Dataset,
            (self.name, self.kind, self.x, self.y, self.num_classes, dict(self.splits), self.graph, dict(self.meta)),
        )

    @property
    def train_idx(self) -> Int[np.ndarray, " m"]:
        """Sorted int32 indices of the training examples."""
        return self.splits["train"]

    @property
    def val_idx(self) -> Int[np.ndarray, " m"]:
        """Sorted int32 indices of the validation examples (may be empty)."""
        return self.splits["val"]

    @property
    def test_idx(self) -> Int[np.ndarray, " m"]:
        """Sorted int32 indices of the test examples."""
        return self.splits["test"]

    @property
    def num_examples(self) -> int:
        """Number of examples (rows of ``x``), labelled or not."""
        return int(self.x.shape[0])

    @property
    def num_features(self) -> int:
        """Input size per example: ``d`` for node / tabular, ``H*W*C`` for image, ``L`` for text."""
        return int(np.prod(self.x.shape[1:]))

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k}={len(v)}" for k, v in self.splits.items())
        g = ""
        if self.graph is not None:
            g = f", edges={int(self.graph.n_edge[0])}"
        return (
            f"Dataset(name={self.name!r}, kind={self.kind!r}, x={self.x.dtype}{list(self.x.shape)}, "
            f"num_classes={self.num_classes}, splits({sizes}){g})"
        )


def _as_array(a: Any, field: str) -> np.ndarray:
    """``a`` as a numpy array (lists, tuples, JAX arrays); anything else is named."""
    if isinstance(a, np.ndarray):
        return a
    if isinstance(a, (list, tuple)) or hasattr(a, "__array__"):
        return np.asarray(a)
    raise TypeError(f"{field} must be an array (numpy, JAX or a list), got {type(a).__name__}")


def _integral_floats(a: np.ndarray) -> bool:
    """Floats that are all whole numbers (labels read from a CSV, say)."""
    return np.issubdtype(a.dtype, np.floating) and bool(np.all(np.isfinite(a)) and np.all(a == np.round(a)))


def _as_int32(a: np.ndarray, field: str, what: str) -> np.ndarray:
    """``a`` cast to int32, refusing values that int32 cannot hold (they are wrong, not another dtype)."""
    if not (np.issubdtype(a.dtype, np.integer) or _integral_floats(a)):
        raise ValueError(f"{field} must hold integer {what}, got {a.dtype}")
    if a.size and (a.min() < np.iinfo(np.int32).min or a.max() > np.iinfo(np.int32).max):
        raise ValueError(f"{field}: {what} outside the int32 range ([{a.min()}, {a.max()}])")
    return a.astype(np.int32, copy=False)


def _check_graph(graph: Any, n: int) -> None:

    if not isinstance(graph, jraph.GraphsTuple):
        raise TypeError(f"Dataset.graph must be a jraph.GraphsTuple for kind 'node', got {type(graph).__name__}")
    s, r = graph.senders, graph.receivers
    for field, a in (("senders", s), ("receivers", r)):
        if not isinstance(a, np.ndarray) or a.dtype != np.int32 or a.ndim != 1:
            raise ValueError(f"Dataset.graph.{field} must be a 1-d int32 numpy array")
    if s.shape != r.shape:
        raise ValueError("Dataset.graph.senders and receivers must have the same length")
    if s.size and (min(s.min(), r.min()) < 0 or max(s.max(), r.max()) >= n):
        raise ValueError(f"Dataset.graph has node indices outside [0, {n})")
    if np.any(s == r):
        raise ValueError("Dataset.graph must have no self-loops (models add their own)")
    fwd = np.sort(s.astype(np.int64) * n + r)
    bwd = np.sort(r.astype(np.int64) * n + s)
    if np.any(fwd[1:] == fwd[:-1]):
        raise ValueError("Dataset.graph has repeated edges")
    if not np.array_equal(fwd, bwd):
        raise ValueError("Dataset.graph must be symmetric: every edge (i, j) needs its reverse (j, i)")
    if graph.edges is not None:
        raise ValueError("Dataset.graph.edges must be None (the graphs carry no edge features)")
    if np.asarray(graph.n_node).tolist() != [n] or np.asarray(graph.n_edge).tolist() != [s.size]:
        raise ValueError(f"Dataset.graph must hold one graph: n_node == [{n}] and n_edge == [{s.size}]")
    if getattr(graph.nodes, "shape", (None,))[0] != n:
        raise ValueError("Dataset.graph.nodes must be Dataset.x")


def node_graph(x: np.ndarray, senders: np.ndarray, receivers: np.ndarray) -> jraph.GraphsTuple:
    """The one-graph ``GraphsTuple`` of a node dataset: ``nodes=x``, no edge or global features."""
    return jraph.GraphsTuple(
        nodes=x,
        edges=None,
        senders=senders,
        receivers=receivers,
        n_node=np.array([x.shape[0]], dtype=np.int32),
        n_edge=np.array([senders.size], dtype=np.int32),
        globals=None,
    )


def sorted_unique(a: np.ndarray) -> np.ndarray:
    """``np.unique`` for integer arrays by sort-and-compare (NumPy 2's hash-based unique is slow on millions)."""
    a = np.sort(a, kind="stable")
    if a.size:
        a = a[np.concatenate(([True], a[1:] != a[:-1]))]
    return a


def _check_fractions(fractions: Sequence[float], argname: str = "fractions") -> tuple[float, float, float]:
    try:
        if isinstance(fractions, str):
            raise TypeError
        f = tuple(float(v) for v in fractions)
    except (TypeError, ValueError):
        raise TypeError(f"{argname} must be three numbers (train, val, test), got {fractions!r}") from None
    if len(f) != 3 or any(not np.isfinite(v) or v < 0 for v in f) or abs(sum(f) - 1.0) > 1e-6:
        raise ValueError(
            f"{argname} must be three non-negative numbers (train, val, test) summing to 1, got {fractions!r}"
        )
    if f[0] == 0 or f[2] == 0:
        raise ValueError(f"{argname}: the train and test fractions must be positive, got {fractions!r}")
    return f


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    return int(seed)


def stratified_split(
    y: Int[np.ndarray, " n"],
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
    *,
    seed: int = 0,
    candidates: Int[np.ndarray, " m"] | None = None,
) -> dict[str, Int[np.ndarray, " k"]]:
    """A seeded class-stratified train / val / test split.

    Within every class ``c`` with ``n_c`` candidate examples (in a seeded random
    order), the first ``round(f_train n_c)`` go to train, the next
    ``round(f_val n_c)`` to val and the rest to test, so every class keeps the
    same proportions. Unlabelled examples (``y == -1``) are never placed.

    Args:
        y: ``(n,)`` integer labels; ``-1`` = unlabelled.
        fractions: ``(train, val, test)`` fractions, non-negative, summing to 1.
        seed: Seed of the NumPy generator that orders each class.
        candidates: Optional subset of indices to split (default: all labelled).

    Returns:
        ``{"train", "val", "test"}`` -> sorted int32 index arrays.

    Raises:
        ValueError: If ``fractions`` or ``seed`` is invalid.
    """
    f = _check_fractions(fractions)
    seed = _check_seed(seed)
    y = np.asarray(y)
    cand = np.arange(y.shape[0]) if candidates is None else np.asarray(candidates)
    return _stratified(y, cand, f, np.random.default_rng(seed))


def _stratified(
    y: np.ndarray, cand: np.ndarray, f: tuple[float, float, float], rng: np.random.Generator
) -> dict[str, np.ndarray]:
    cand = cand[y[cand] >= 0]
    parts: dict[str, list[np.ndarray]] = {k: [] for k in SPLIT_NAMES}
    for c in np.unique(y[cand]):
        members = cand[y[cand] == c]
        members = members[rng.permutation(members.size)]
        m = members.size
        n_train = min(m, int(round(f[0] * m)))
        n_val = min(m - n_train, int(round(f[1] * m)))
        parts["train"].append(members[:n_train])
        parts["val"].append(members[n_train : n_train + n_val])
        parts["test"].append(members[n_train + n_val :])
    return {k: np.sort(np.concatenate(v)).astype(np.int32) if v else np.zeros(0, np.int32) for k, v in parts.items()}


def carve_validation(
    y: Int[np.ndarray, " n"], train_idx: Int[np.ndarray, " m"], val_fraction: float, *, seed: int = 0
) -> tuple[Int[np.ndarray, " a"], Int[np.ndarray, " b"]]:
    """Move a seeded, class-stratified fraction of ``train_idx`` into a validation set.

    Args:
        y: ``(n,)`` integer labels.
        train_idx: The training indices to carve from.
        val_fraction: Fraction in ``[0, 1)`` of each class's training examples to move.
        seed: NumPy seed.

    Returns:
        ``(train, val)``: sorted, disjoint int32 index arrays whose union is ``train_idx``.

    Raises:
        ValueError: If ``val_fraction`` is outside ``[0, 1)``.
    """
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, int | float) or not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be a number in [0, 1), got {val_fraction!r}")
    train_idx = np.sort(np.asarray(train_idx)).astype(np.int32)
    if val_fraction == 0:
        return train_idx, np.zeros(0, np.int32)
    seed = _check_seed(seed)
    # Split each class of the training set into (train, val, nothing): the "test" part is empty
    # except for rounding leftovers, which stay in train.
    s = _stratified(np.asarray(y), train_idx, (1.0 - val_fraction, val_fraction, 0.0), np.random.default_rng(seed))
    train = np.sort(np.concatenate([s["train"], s["test"]])).astype(np.int32)
    return train, s["val"]


def as_float_features(x: Any) -> Float[np.ndarray, "n d"]:
    """Dense float32 copy of a dense or scipy.sparse matrix."""
    if hasattr(x, "toarray"):
        x = x.toarray()
    return np.ascontiguousarray(np.asarray(x, dtype=np.float32))
