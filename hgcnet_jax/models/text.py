"""A small Transformer text classifier: token + position embedding, 2 encoder layers, mean pooling.

Inputs are ``(n, L)`` int32 token ids with 0 as padding; attention ignores the
padding and the pooled representation is the mean over non-padding tokens.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from hgcnet_jax.models.registry import register

__all__ = ["TransformerClassifier", "EncoderLayer"]


class EncoderLayer(nn.Module):
    """Pre-norm Transformer encoder layer (self-attention and a ReLU MLP, both residual)."""

    dim: int
    heads: int
    mlp_dim: int
    dropout: float = 0.1

    @nn.compact
    def __call__(self, h, mask, *, train: bool):
        a = nn.LayerNorm()(h)
        a = nn.MultiHeadDotProductAttention(num_heads=self.heads, dropout_rate=self.dropout, deterministic=not train)(
            a, a, mask=mask
        )
        h = h + nn.Dropout(self.dropout, deterministic=not train)(a)
        m = nn.LayerNorm()(h)
        m = nn.Dense(self.dim)(nn.relu(nn.Dense(self.mlp_dim)(m)))
        return h + nn.Dropout(self.dropout, deterministic=not train)(m)


@register("transformer", kinds=("text",))
class TransformerClassifier(nn.Module):
    """Embedding → ``num_layers`` encoder layers → mean over non-padding tokens → dense.

    Attributes:
        num_classes: output width.
        vocab_size: number of token ids (id 0 is padding).
        max_len: longest sequence (learned position embeddings).
        dim, heads, mlp_dim, num_layers, dropout: sizes (64, 4, 128, 2, 0.1).
    """

    num_classes: int
    vocab_size: int
    max_len: int = 512
    dim: int = 64
    heads: int = 4
    mlp_dim: int = 128
    num_layers: int = 2
    dropout: float = 0.1

    @nn.compact
    def __call__(self, tokens: Int[Array, "n L"], *, train: bool = False) -> Float[Array, "n c"]:
        tokens = tokens.astype(jnp.int32)
        keep = tokens > 0
        h = nn.Embed(self.vocab_size, self.dim)(tokens)
        pos = self.param("pos_embedding", nn.initializers.normal(0.02), (self.max_len, self.dim))
        h = h + pos[None, : tokens.shape[1]]
        mask = nn.make_attention_mask(keep, keep)
        for _ in range(self.num_layers):
            h = EncoderLayer(self.dim, self.heads, self.mlp_dim, self.dropout)(h, mask, train=train)
        h = nn.LayerNorm()(h)
        w = keep.astype(h.dtype)[..., None]
        pooled = jnp.sum(h * w, axis=1) / jnp.maximum(jnp.sum(w, axis=1), 1.0)
        return nn.Dense(self.num_classes)(pooled)
