"""Hessian-vector products and losses accumulated over a data set in chunks.

Two ways to describe the loss whose curvature is measured:

* any function ``loss_fn(params) -> scalar`` (data closed over), or
* a :class:`DataLoss`: a per-example loss over a data set, evaluated chunk by chunk
  so that the memory of one gradient or Hessian-vector product is bounded by one
  chunk's activations, whatever the size of the data set.

Every curvature routine of this package accepts either (and the operators of
:mod:`hgcnet_jax.curvature.operators`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

__all__ = ["DataLoss", "hvp", "value_and_grad"]

PyTree = Any


def _leading_size(data: PyTree, name: str) -> int:
    leaves = jax.tree_util.tree_leaves(data)
    if not leaves:
        raise ValueError(f"{name}: the data pytree has no arrays; pass at least one array with a leading example axis")
    sizes = {int(jnp.shape(x)[0]) if jnp.ndim(x) else -1 for x in leaves}
    if -1 in sizes or len(sizes) != 1:
        raise ValueError(
            f"{name}: every array of `data` needs the same leading example axis, got leading sizes "
            f"{sorted(s for s in sizes)} (-1 = scalar)"
        )
    (n,) = sizes
    if n == 0:
        raise ValueError(f"{name}: `data` holds zero examples")
    return n


def chunk_data(data: PyTree, weights: Array, chunk_size: int) -> tuple[PyTree, Array]:
    """Reshape ``data`` (leading axis n) into ``(num_chunks, chunk_size, ...)``.

    The last chunk is padded with copies of example 0 carrying weight 0, so padding
    never changes a weighted sum.
    """
    n = weights.shape[0]
    num_chunks = math.ceil(n / chunk_size)
    pad = num_chunks * chunk_size - n
    idx = jnp.concatenate([jnp.arange(n), jnp.zeros((pad,), jnp.int32)]) if pad else jnp.arange(n)
    w = jnp.concatenate([weights, jnp.zeros((pad,), weights.dtype)]) if pad else weights

    def reshape(x):
        x = jnp.take(jnp.asarray(x), idx, axis=0) if pad else jnp.asarray(x)
        return x.reshape((num_chunks, chunk_size) + x.shape[1:])

    return jax.tree_util.tree_map(reshape, data), w.reshape(num_chunks, chunk_size)


@dataclasses.dataclass(frozen=True)
class DataLoss:
    r"""A weighted mean of per-example losses over a data set, evaluated in chunks.

    .. math:: L(\theta) = \sum_{i=1}^{n} w_i\, \ell(\theta; x_i), \qquad \sum_i w_i = 1

    (uniform :math:`w_i = 1/n` unless ``weights`` is given; weights are normalised).

    ``per_example_loss(params, batch)`` receives a slice of ``data`` with a leading
    axis of ``chunk_size`` examples and returns their ``(chunk_size,)`` losses. For a
    node task ``data`` is the array of node indices and ``per_example_loss`` propagates
    the full graph and returns the rows asked for; for an image task ``data`` can be
    indices or ``(x, y)`` arrays.

    Gradients and Hessian-vector products (:func:`hvp`, :func:`value_and_grad`) are
    accumulated chunk by chunk with ``lax.scan``, so the memory is that of one chunk
    (plus one parameter-sized accumulator); ``chunk_size=None`` uses a single chunk.

    Attributes:
        per_example_loss: ``(params, batch) -> (b,)`` losses.
        data: pytree of arrays with a common leading example axis ``n``.
        chunk_size: examples per chunk (``None``: all at once). Must be ≥ 1.
        weights: optional ``(n,)`` non-negative example weights (normalised to sum 1).

    Raises:
        ValueError: naming the field, for a non-callable loss, inconsistent leading
            axes, a bad chunk size or bad weights.
    """

    per_example_loss: Callable[[PyTree, PyTree], Float[Array, " b"]]
    data: PyTree
    chunk_size: int | None = None
    weights: Float[Array, " n"] | None = None

    def __post_init__(self):
        if not callable(self.per_example_loss):
            raise TypeError("DataLoss.per_example_loss must be callable (params, batch) -> (b,) losses")
        n = _leading_size(self.data, "DataLoss.data")
        if self.chunk_size is not None and (not isinstance(self.chunk_size, int) or self.chunk_size < 1):
            raise ValueError(f"DataLoss.chunk_size must be a positive int or None, got {self.chunk_size!r}")
        if self.weights is not None:
            if jnp.shape(self.weights) != (n,):
                raise ValueError(
                    f"DataLoss.weights must have shape ({n},) to match the data, got {jnp.shape(self.weights)}"
                )

    @property
    def num_examples(self) -> int:
        return _leading_size(self.data, "DataLoss.data")

    def chunks(self, dtype=jnp.float32) -> tuple[PyTree, Float[Array, "c b"]]:
        """``(data, weights)`` reshaped to ``(num_chunks, chunk_size, ...)``; weights sum to 1."""
        n = self.num_examples
        w = jnp.full((n,), 1.0 / n, dtype) if self.weights is None else jnp.asarray(self.weights, dtype)
        if self.weights is not None:
            w = w / jnp.sum(w)
        return chunk_data(self.data, w, n if self.chunk_size is None else min(self.chunk_size, n))

    def chunk_loss(self, params: PyTree, batch: PyTree, w: Float[Array, " b"]) -> Float[Array, ""]:
        """The weighted sum ``Σ w_i ℓ_i`` over one chunk."""
        losses = self.per_example_loss(params, batch)
        return jnp.sum(w * losses.astype(w.dtype))

    def __call__(self, params: PyTree) -> Float[Array, ""]:
        data, w = self.chunks(_dtype_of(params))
        return jnp.sum(jax.lax.map(lambda c: self.chunk_loss(params, c[0], c[1]), (data, w)))


def _dtype_of(params: PyTree):
    leaves = jax.tree_util.tree_leaves(params)
    if not leaves:
        raise ValueError("params: the pytree has no arrays")
    return jnp.result_type(*leaves)


def _tree_add(a, b):
    return jax.tree_util.tree_map(jnp.add, a, b)


def hvp(loss_fn: Callable[[PyTree], Array] | DataLoss, params: PyTree, v: PyTree) -> PyTree:
    r"""Hessian-vector product :math:`H v = \nabla^2 L(\theta)\, v`, forward over reverse.

    Computed as ``jvp(grad(L), (θ,), (v,))``: one forward and one backward pass with
    forward-mode tangents, about the cost of two to three gradients, without ever
    forming :math:`H` (Pearlmutter 1994). For a :class:`DataLoss` the product is summed
    over chunks with ``lax.scan``.

    Args:
        loss_fn: ``params -> scalar`` or a :class:`DataLoss`.
        params: the point θ (any pytree of float arrays).
        v: a pytree with the structure and shapes of ``params``.

    Returns:
        ``H v`` with the structure of ``params``.
    """
    if isinstance(loss_fn, DataLoss):
        data, w = loss_fn.chunks(_dtype_of(params))

        def step(acc, chunk):
            batch, wc = chunk
            g = lambda p: jax.grad(loss_fn.chunk_loss)(p, batch, wc)  # noqa: E731
            return _tree_add(acc, jax.jvp(g, (params,), (v,))[1]), None

        zero = jax.tree_util.tree_map(jnp.zeros_like, params)
        return jax.lax.scan(step, zero, (data, w))[0]
    return jax.jvp(jax.grad(loss_fn), (params,), (v,))[1]


def value_and_grad(loss_fn: Callable[[PyTree], Array] | DataLoss, params: PyTree) -> tuple[Array, PyTree]:
    """Loss and gradient; for a :class:`DataLoss` accumulated chunk by chunk.

    Args:
        loss_fn: ``params -> scalar`` or a :class:`DataLoss`.
        params: the point.

    Returns:
        ``(L(θ), ∇L(θ))``.
    """
    if isinstance(loss_fn, DataLoss):
        data, w = loss_fn.chunks(_dtype_of(params))

        def step(acc, chunk):
            batch, wc = chunk
            val, g = jax.value_and_grad(loss_fn.chunk_loss)(params, batch, wc)
            return (acc[0] + val, _tree_add(acc[1], g)), None

        zero = (jnp.zeros((), _dtype_of(params)), jax.tree_util.tree_map(jnp.zeros_like, params))
        return jax.lax.scan(step, zero, (data, w))[0]
    return jax.value_and_grad(loss_fn)(params)
