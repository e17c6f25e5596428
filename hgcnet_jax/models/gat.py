r"""Graph attention network (Veličković et al., ICLR 2018), on jraph's GraphsTuple.

Per head :math:`k`, with :math:`z_i = W^k h_i`,
:math:`e_{ij} = \mathrm{LeakyReLU}_{0.2}(a_{\mathrm{src}}^{k\top} z_j + a_{\mathrm{dst}}^{k\top} z_i)`
over the edges :math:`j \to i` (self-loops included),
:math:`\alpha_{ij} = \mathrm{softmax}_j(e_{ij})` (``jraph.segment_softmax``) and
:math:`h'_i = \sum_j \alpha_{ij} z_j`. The Cora recipe: 8 heads × 8 hidden
(concatenated), ELU, one output head, dropout 0.6 on every layer's input and on
the attention coefficients.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import jraph
import numpy as np
from jaxtyping import Array, Float

from hgcnet_jax.models.registry import register
from hgcnet_jax.models._graph import SparseFeatures, add_self_loops, features_of, num_nodes_of, sparse_matmul

__all__ = ["GAT", "GATConv", "prepare_gat"]


def prepare_gat(graph: jraph.GraphsTuple, *, sparse: bool | None = None) -> jraph.GraphsTuple:
    """Self-loops (sorted by receiver) and, when mostly zeros, COO features; computed once."""
    n = num_nodes_of(graph)
    s, r = add_self_loops(np.asarray(graph.senders), np.asarray(graph.receivers), n)
    return jraph.GraphsTuple(
        nodes=features_of(graph, sparse),
        edges=None,
        senders=jnp.asarray(s),
        receivers=jnp.asarray(r),
        n_node=jnp.asarray([n], jnp.int32),
        n_edge=jnp.asarray([len(s)], jnp.int32),
        globals=None,
    )


class GATConv(nn.Module):
    """One multi-head graph-attention layer.

    Attributes:
        heads: number of attention heads.
        features: width per head.
        concat: concatenate heads (hidden layers) or average them (output layer).
        attn_dropout: dropout rate on the attention coefficients.
    """

    heads: int
    features: int
    concat: bool = True
    attn_dropout: float = 0.6
    negative_slope: float = 0.2

    @nn.compact
    def __call__(self, h, graph: jraph.GraphsTuple, vals=None, *, train: bool = False) -> Float[Array, "n f"]:
        n = h.num_rows if isinstance(h, SparseFeatures) else h.shape[0]
        d = h.num_cols if isinstance(h, SparseFeatures) else h.shape[-1]
        hf = self.heads * self.features
        w = self.param("kernel", nn.initializers.glorot_uniform(), (d, hf))
        z = sparse_matmul(h, w, vals) if isinstance(h, SparseFeatures) else h @ w
        z = z.reshape(n, self.heads, self.features)
        glorot = nn.initializers.glorot_uniform(in_axis=-1, out_axis=-2)
        a_src = self.param("att_src", glorot, (self.heads, self.features))
        a_dst = self.param("att_dst", glorot, (self.heads, self.features))
        s_src = jnp.sum(z * a_src, axis=-1)  # (n, heads)
        s_dst = jnp.sum(z * a_dst, axis=-1)
        e = nn.leaky_relu(s_src[graph.senders] + s_dst[graph.receivers], self.negative_slope)
        alpha = jraph.segment_softmax(e, graph.receivers, num_segments=n, indices_are_sorted=True)
        alpha = nn.Dropout(self.attn_dropout, deterministic=not train)(alpha)
        msg = z[graph.senders] * alpha[..., None]
        out = jax.ops.segment_sum(msg, graph.receivers, num_segments=n, indices_are_sorted=True)
        out = out.reshape(n, hf) if self.concat else out.mean(axis=1)
        width = hf if self.concat else self.features
        return out + self.param("bias", nn.initializers.zeros, (width,))


@register("gat", kinds=("node",), prepare=prepare_gat)
class GAT(nn.Module):
    """Veličković et al.'s two-layer GAT.

    Attributes:
        num_classes: output width.
        hidden: width per head of the hidden layer (8).
        heads: heads of the hidden layer (8).
        out_heads: heads of the output layer (1 on Cora; averaged).
        dropout: dropout on each layer's input and on attention (0.6).
    """

    num_classes: int
    hidden: int = 8
    heads: int = 8
    out_heads: int = 1
    dropout: float = 0.6

    @nn.compact
    def __call__(self, graph: jraph.GraphsTuple, *, train: bool = False) -> Float[Array, "n c"]:
        x = graph.nodes
        drop = nn.Dropout(self.dropout, deterministic=not train)
        conv1 = GATConv(self.heads, self.hidden, concat=True, attn_dropout=self.dropout, name="conv0")
        if isinstance(x, SparseFeatures):
            h = conv1(x, graph, drop(x.vals), train=train)
        else:
            h = conv1(drop(x), graph, train=train)
        h = nn.elu(h)
        conv2 = GATConv(self.out_heads, self.num_classes, concat=False, attn_dropout=self.dropout, name="conv1")
        return conv2(drop(h), graph, train=train)
