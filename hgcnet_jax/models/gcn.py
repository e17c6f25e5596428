r"""Graph convolutional network (Kipf & Welling, ICLR 2017), on jraph's GraphsTuple.

Layer: :math:`H' = \hat A H W + b` with :math:`\hat A = D^{-1/2}(A+I)D^{-1/2}`.
Two layers, 16 hidden units, ReLU, dropout 0.5 on the input of each layer,
Glorot-uniform weights and zero biases, as in the paper's Cora recipe.

The first layer's input is static, so :func:`prepare` stores it once as sparse
(row, col, value) triples when it is mostly zeros and the product
:math:`X W` costs ``nnz * hidden`` rather than ``n * d * hidden``; the propagation
is :math:`\hat A (X W)`, a sorted segment sum over the edges. Dropout on the
sparse input acts on its non-zero values, which is exactly dense dropout on
:math:`X` (a dropped zero stays zero).
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp
import jraph
import numpy as np
from jaxtyping import Array, Float

from hgcnet_jax.models.registry import register
from hgcnet_jax.models._graph import (
    SparseFeatures,
    add_self_loops,
    features_of,
    gcn_normalise,
    num_nodes_of,
    propagate,
    sparse_matmul,
)

__all__ = ["GCN", "GCNConv", "prepare_gcn"]


def prepare_gcn(graph: jraph.GraphsTuple, *, sparse: bool | None = None) -> jraph.GraphsTuple:
    """Self-loops, symmetric normalisation and (when sparse) COO features, computed once.

    Args:
        graph: one graph with ``nodes`` of shape ``(n, d)`` and symmetric
            ``senders``/``receivers`` without self-loops (the Dataset contract).
        sparse: store features as COO triples; ``None`` decides by density (≤ 10 % non-zeros).

    Returns:
        A GraphsTuple whose ``edges`` are the normalised weights of :math:`\\hat A`,
        sorted by receiver, and whose ``nodes`` are dense or :class:`SparseFeatures`.
    """
    n = num_nodes_of(graph)
    s, r = add_self_loops(np.asarray(graph.senders), np.asarray(graph.receivers), n)
    w = gcn_normalise(s, r, n)
    return jraph.GraphsTuple(
        nodes=features_of(graph, sparse),
        edges=jnp.asarray(w),
        senders=jnp.asarray(s),
        receivers=jnp.asarray(r),
        n_node=jnp.asarray([n], jnp.int32),
        n_edge=jnp.asarray([len(s)], jnp.int32),
        globals=None,
    )


class GCNConv(nn.Module):
    """One graph convolution :math:`\\hat A H W + b` (``graph.edges`` holds :math:`\\hat A`'s weights)."""

    features: int
    use_bias: bool = True

    @nn.compact
    def __call__(self, h, graph: jraph.GraphsTuple, vals=None) -> Float[Array, "n f"]:
        d = h.num_cols if isinstance(h, SparseFeatures) else h.shape[-1]
        w = self.param("kernel", nn.initializers.glorot_uniform(), (d, self.features))
        hw = sparse_matmul(h, w, vals) if isinstance(h, SparseFeatures) else h @ w
        out = propagate(hw, graph)
        if self.use_bias:
            out = out + self.param("bias", nn.initializers.zeros, (self.features,))
        return out


@register("gcn", kinds=("node",), prepare=prepare_gcn)
class GCN(nn.Module):
    """Kipf & Welling's GCN: ``num_layers`` graph convolutions, ReLU, dropout before each.

    Attributes:
        num_classes: output width.
        hidden: hidden width (16 in the paper).
        dropout: dropout rate on the input of every layer (0.5).
        num_layers: number of graph convolutions (2).
    """

    num_classes: int
    hidden: int = 16
    dropout: float = 0.5
    num_layers: int = 2

    @nn.compact
    def __call__(self, graph: jraph.GraphsTuple, *, train: bool = False) -> Float[Array, "n c"]:
        x = graph.nodes
        drop = nn.Dropout(self.dropout, deterministic=not train)
        widths = [self.hidden] * (self.num_layers - 1) + [self.num_classes]
        h = x
        for i, f in enumerate(widths):
            if isinstance(h, SparseFeatures):
                out = GCNConv(f, name=f"conv{i}")(h, graph, drop(h.vals))
            else:
                out = GCNConv(f, name=f"conv{i}")(drop(h), graph)
            h = nn.relu(out) if i < len(widths) - 1 else out
        return h
