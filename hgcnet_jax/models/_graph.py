"""Graph helpers shared by the GCN and GAT: sparse features, self-loops, normalisation.

Everything here is computed once per dataset (``prepare``) outside the replica
axis, so a vmapped bucket of runs shares one copy.
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp
import jraph
import numpy as np
from jaxtyping import Array, Float, Int

__all__ = ["SparseFeatures", "to_sparse", "sparse_matmul", "add_self_loops", "gcn_normalise", "propagate"]

#: Features with at most this fraction of non-zeros are stored as (row, col, value) triples.
SPARSE_DENSITY = 0.1


@flax.struct.dataclass
class SparseFeatures:
    """A sparse ``(num_rows, num_cols)`` feature matrix as COO triples sorted by row.

    ``X @ W`` then costs ``nnz * h`` (a gather of ``W``'s rows and a sorted
    segment sum) instead of ``num_rows * num_cols * h``. Cora's features are
    98.7 % zeros, which makes the first layer about 75 times cheaper.
    """

    rows: Int[Array, " nnz"]
    cols: Int[Array, " nnz"]
    vals: Float[Array, " nnz"]
    num_rows: int = flax.struct.field(pytree_node=False)
    num_cols: int = flax.struct.field(pytree_node=False)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.num_rows, self.num_cols)

    def todense(self) -> Float[Array, "n d"]:
        return jnp.zeros(self.shape, self.vals.dtype).at[self.rows, self.cols].add(self.vals)


def to_sparse(x: np.ndarray) -> SparseFeatures:
    """COO triples of a dense 2-D array (row-major order, so rows are sorted)."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"to_sparse: x must be 2-D, got shape {x.shape}")
    rows, cols = np.nonzero(x)
    return SparseFeatures(
        rows=jnp.asarray(rows, jnp.int32),
        cols=jnp.asarray(cols, jnp.int32),
        vals=jnp.asarray(x[rows, cols], jnp.float32),
        num_rows=int(x.shape[0]),
        num_cols=int(x.shape[1]),
    )


def sparse_matmul(x: SparseFeatures, w: Float[Array, "d h"], vals: Float[Array, " nnz"] | None = None) -> Float[Array, "n h"]:
    """``X @ W`` for COO ``X``; ``vals`` overrides ``x.vals`` (e.g. after dropout)."""
    v = x.vals if vals is None else vals
    contrib = jnp.take(w, x.cols, axis=0) * v[:, None]
    return jax.ops.segment_sum(contrib, x.rows, num_segments=x.num_rows, indices_are_sorted=True)


def add_self_loops(senders: np.ndarray, receivers: np.ndarray, num_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Append one self-loop per node (existing self-loops are dropped first) and sort by receiver."""
    senders = np.asarray(senders, np.int64)
    receivers = np.asarray(receivers, np.int64)
    keep = senders != receivers
    loops = np.arange(num_nodes)
    s = np.concatenate([senders[keep], loops])
    r = np.concatenate([receivers[keep], loops])
    order = np.lexsort((s, r))
    return s[order].astype(np.int32), r[order].astype(np.int32)


def gcn_normalise(senders: np.ndarray, receivers: np.ndarray, num_nodes: int) -> np.ndarray:
    r"""Edge weights of :math:`\hat A = D^{-1/2} (A + I) D^{-1/2}` (Kipf & Welling 2017, eq. 2).

    ``senders``/``receivers`` must already contain the self-loops; the degree is
    the in-degree of the receivers, which equals the out-degree for a symmetric graph.
    """
    deg = np.bincount(receivers, minlength=num_nodes).astype(np.float64)
    inv = np.where(deg > 0, 1.0 / np.sqrt(np.maximum(deg, 1.0)), 0.0)
    return (inv[senders] * inv[receivers]).astype(np.float32)


def propagate(h: Float[Array, "n f"], graph: jraph.GraphsTuple) -> Float[Array, "n f"]:
    r"""Weighted message passing :math:`\sum_{j \to i} w_{ji} h_j` with ``graph.edges`` as weights.

    ``graph.receivers`` must be sorted (``prepare_gcn`` sorts them).
    """
    n = h.shape[0]
    msg = jnp.take(h, graph.senders, axis=0) * graph.edges[:, None]
    return jax.ops.segment_sum(msg, graph.receivers, num_segments=n, indices_are_sorted=True)


def features_of(graph: jraph.GraphsTuple, sparse: bool | None) -> SparseFeatures | Float[Array, "n d"]:
    x = np.asarray(graph.nodes, dtype=np.float32)
    if sparse is None:
        sparse = x.ndim == 2 and np.count_nonzero(x) <= SPARSE_DENSITY * x.size
    return to_sparse(x) if sparse else jnp.asarray(x)


def num_nodes_of(graph: jraph.GraphsTuple) -> int:
    return int(np.asarray(graph.n_node).sum())
