"""Curvature operators: the Hessian, the generalised Gauss-Newton and the empirical Fisher.

An operator is any object with a method ``matvec(params, v) -> pytree``; every
spectral routine of :mod:`hgcnet_jax.curvature` (``lanczos``-based eigenvalues,
stochastic Lanczos quadrature, trace estimators) accepts an operator wherever it
accepts a ``loss_fn``; a plain ``loss_fn`` (or :class:`~hgcnet_jax.curvature.DataLoss`)
means its Hessian.

All three are symmetric; the Gauss-Newton matrix and the empirical Fisher are
positive semi-definite (for a convex output loss), the Hessian in general is not.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from hgcnet_jax.curvature.hvp import DataLoss, _dtype_of, _leading_size, _tree_add, chunk_data, hvp

__all__ = ["CurvatureOperator", "Hessian", "GaussNewton", "EmpiricalFisher", "as_operator"]

PyTree = Any


@runtime_checkable
class CurvatureOperator(Protocol):
    """A symmetric linear operator on parameter space at a point ``params``."""

    def matvec(self, params: PyTree, v: PyTree) -> PyTree: ...


@dataclasses.dataclass(frozen=True)
class Hessian:
    """The Hessian of ``loss_fn`` (a ``params -> scalar`` function or a :class:`DataLoss`)."""

    loss_fn: Callable[[PyTree], Array] | DataLoss

    def __post_init__(self):
        if not callable(self.loss_fn):
            raise TypeError("Hessian.loss_fn must be callable: params -> scalar loss")

    def matvec(self, params: PyTree, v: PyTree) -> PyTree:
        return hvp(self.loss_fn, params, v)


class _Chunked:
    """Shared chunking of ``data`` for the operators defined per example."""

    def _chunks(self, params):
        n = _leading_size(self.data, f"{type(self).__name__}.data")
        dtype = _dtype_of(params)
        w = jnp.full((n,), 1.0 / n, dtype) if self.weights is None else jnp.asarray(self.weights, dtype)
        if self.weights is not None:
            w = w / jnp.sum(w)
        return chunk_data(self.data, w, n if self.chunk_size is None else min(self.chunk_size, n))

    def _validate(self):
        name = type(self).__name__
        n = _leading_size(self.data, f"{name}.data")
        if self.chunk_size is not None and (not isinstance(self.chunk_size, int) or self.chunk_size < 1):
            raise ValueError(f"{name}.chunk_size must be a positive int or None, got {self.chunk_size!r}")
        if self.weights is not None and jnp.shape(self.weights) != (n,):
            raise ValueError(f"{name}.weights must have shape ({n},), got {jnp.shape(self.weights)}")

    def _accumulate(self, params, v, per_chunk):
        data, w = self._chunks(params)

        def step(acc, chunk):
            return _tree_add(acc, per_chunk(chunk[0], chunk[1])), None

        zero = jax.tree_util.tree_map(jnp.zeros_like, params)
        return jax.lax.scan(step, zero, (data, w))[0]


@dataclasses.dataclass(frozen=True)
class GaussNewton(_Chunked):
    r"""The generalised Gauss-Newton matrix :math:`G = \sum_i w_i J_i^\top H_{\ell,i} J_i`.

    :math:`J_i` is the Jacobian of the model output for example *i* with respect to the
    parameters and :math:`H_{\ell,i}` the Hessian of the loss with respect to that output
    (Schraudolph 2002; Martens 2020, "New insights and perspectives on the natural
    gradient method"). The product is computed as ``vjp(f)(H_ℓ · jvp(f)(v))`` per chunk:
    one forward-mode and one reverse-mode pass through the model and an HVP through
    the (cheap) output loss only.

    Attributes:
        predict_fn: ``(params, batch) -> outputs`` with a leading example axis (e.g. logits).
        output_loss_fn: ``(outputs, batch) -> (b,)`` per-example losses of the outputs.
        data: pytree with a leading example axis.
        chunk_size: examples per chunk (``None``: one chunk).
        weights: optional ``(n,)`` example weights (normalised to sum 1; default uniform).
    """

    predict_fn: Callable[[PyTree, PyTree], Array]
    output_loss_fn: Callable[[Array, PyTree], Float[Array, " b"]]
    data: PyTree
    chunk_size: int | None = None
    weights: Float[Array, " n"] | None = None

    def __post_init__(self):
        if not callable(self.predict_fn):
            raise TypeError("GaussNewton.predict_fn must be callable (params, batch) -> outputs")
        if not callable(self.output_loss_fn):
            raise TypeError("GaussNewton.output_loss_fn must be callable (outputs, batch) -> (b,) losses")
        self._validate()

    def loss(self, params: PyTree) -> Float[Array, ""]:
        """The weighted mean loss whose Gauss-Newton matrix this is."""
        data, w = self._chunks(params)
        per = lambda c: jnp.sum(c[1] * self.output_loss_fn(self.predict_fn(params, c[0]), c[0]))  # noqa: E731
        return jnp.sum(jax.lax.map(per, (data, w)))

    def matvec(self, params: PyTree, v: PyTree) -> PyTree:
        def per_chunk(batch, wc):
            f = lambda p: self.predict_fn(p, batch)  # noqa: E731
            out, jv = jax.jvp(f, (params,), (v,))
            out_grad = jax.grad(lambda o: jnp.sum(wc * self.output_loss_fn(o, batch)))
            h_jv = jax.jvp(out_grad, (out,), (jv,))[1]
            return jax.vjp(f, params)[1](h_jv)[0]

        return self._accumulate(params, v, per_chunk)


@dataclasses.dataclass(frozen=True)
class EmpiricalFisher(_Chunked):
    r"""The empirical Fisher :math:`F = \sum_i w_i\, g_i g_i^\top`, :math:`g_i = \nabla \ell_i(\theta)`.

    Uncentred, over the observed labels (Kunstner, Balles & Hennig 2019, "Limitations
    of the empirical Fisher approximation"). With :math:`J` the Jacobian of the vector
    of per-example losses, :math:`F v = J^\top (w \odot J v)`: one ``jvp`` and one ``vjp``
    per chunk, never the per-example gradients themselves; this works for node tasks,
    whose per-example losses share one forward pass, as well.

    Attributes:
        per_example_loss: ``(params, batch) -> (b,)`` losses.
        data: pytree with a leading example axis.
        chunk_size: examples per chunk (``None``: one chunk).
        weights: optional ``(n,)`` example weights (normalised to sum 1; default uniform).
    """

    per_example_loss: Callable[[PyTree, PyTree], Float[Array, " b"]]
    data: PyTree
    chunk_size: int | None = None
    weights: Float[Array, " n"] | None = None

    def __post_init__(self):
        if not callable(self.per_example_loss):
            raise TypeError("EmpiricalFisher.per_example_loss must be callable (params, batch) -> (b,) losses")
        self._validate()

    def matvec(self, params: PyTree, v: PyTree) -> PyTree:
        def per_chunk(batch, wc):
            f = lambda p: self.per_example_loss(p, batch)  # noqa: E731
            jv = jax.jvp(f, (params,), (v,))[1]
            return jax.vjp(f, params)[1](wc * jv)[0]

        return self._accumulate(params, v, per_chunk)


def as_operator(loss_or_operator: Any) -> CurvatureOperator:
    """A :class:`CurvatureOperator` from an operator (returned as is) or a loss (its Hessian).

    Raises:
        TypeError: when the argument is neither.
    """
    if hasattr(loss_or_operator, "matvec") and callable(loss_or_operator.matvec):
        return loss_or_operator
    if callable(loss_or_operator):
        return Hessian(loss_or_operator)
    raise TypeError(
        "expected a loss function params -> scalar, a DataLoss, or an operator with "
        f".matvec(params, v) (Hessian, GaussNewton, EmpiricalFisher); got {type(loss_or_operator).__name__}"
    )
