"""Multi-layer perceptron on flattened inputs (any dataset kind with array features)."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp
import jraph
from jaxtyping import Array, Float

from hgcnet_jax.models.registry import register

__all__ = ["MLP"]


def _prepare_nodes(graph: jraph.GraphsTuple):
    # An MLP on a graph ignores the edges: its input is the node features.
    return jnp.asarray(graph.nodes, jnp.float32)


@register("mlp", kinds=("node", "image", "tabular"), prepare=_prepare_nodes)
class MLP(nn.Module):
    """Dense layers with ReLU and dropout; inputs are flattened per example.

    Attributes:
        num_classes: output width.
        hidden: hidden widths (default one layer of 64).
        dropout: dropout rate before every dense layer after the first.
    """

    num_classes: int
    hidden: Sequence[int] = (64,)
    dropout: float = 0.0

    @nn.compact
    def __call__(self, x: Float[Array, "n ..."], *, train: bool = False) -> Float[Array, "n c"]:
        h = x.reshape(x.shape[0], -1)
        for i, f in enumerate(self.hidden):
            if i > 0:
                h = nn.Dropout(self.dropout, deterministic=not train)(h)
            h = nn.relu(nn.Dense(f)(h))
        h = nn.Dropout(self.dropout, deterministic=not train)(h)
        return nn.Dense(self.num_classes)(h)
