"""Stochastic trace estimators: Hutchinson and Hutch++."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Float

from hgcnet_jax.curvature.density import probe_vectors
from hgcnet_jax.curvature.operators import as_operator

__all__ = ["TraceEstimate", "hessian_trace"]

PyTree = Any


class TraceEstimate(NamedTuple):
    """A stochastic trace estimate.

    Attributes:
        trace: the estimate (unbiased).
        stderr: its standard error, from the spread of the Hutchinson samples
            (for Hutch++, of the samples on the deflated remainder; the low-rank part is
            deterministic given the sketch).
        samples: the per-probe Hutchinson samples :math:`z^\\top A z` (deflated ones for Hutch++).
    """

    trace: Float[Array, ""]
    stderr: Float[Array, ""]
    samples: Float[Array, " s"]


def _apply(matvec_flat, X, batch_size):
    # rows of X are vectors
    return jax.lax.map(matvec_flat, X, batch_size=batch_size or X.shape[0])


def hessian_trace(
    loss_fn: Any,
    params: PyTree,
    *,
    key: Array,
    num_probes: int = 30,
    method: str = "hutchinson",
    probe: str = "rademacher",
    batch_size: int | None = None,
) -> TraceEstimate:
    r"""Estimate :math:`\operatorname{tr}(H)` from ``num_probes`` operator products.

    * ``"hutchinson"`` (Hutchinson 1989): :math:`\frac1s\sum_l z_l^\top H z_l` with
      Rademacher :math:`z_l`; variance :math:`\frac2s(\|H\|_F^2 - \sum_i H_{ii}^2)`.
    * ``"hutch++"`` (Meyer, Musco, Musco & Woodruff 2021): with a budget of :math:`s`
      products, sketch :math:`Y = H S` (:math:`S`: :math:`s/3` probes), take an
      orthonormal basis :math:`Q` of :math:`Y`, and return
      :math:`\operatorname{tr}(Q^\top H Q) + \frac{1}{s'}\sum_l g_l^\top (I-QQ^\top) H (I-QQ^\top) g_l`
      with the remaining :math:`s' = s - 2\lfloor s/3\rfloor` probes. Unbiased, and far
      more accurate when a few large eigenvalues dominate the trace, as for neural-network
      Hessians (Ghorbani et al. 2019; Papyan 2020).

    Args:
        loss_fn: ``params -> scalar``, a :class:`~hgcnet_jax.curvature.DataLoss`, or an operator.
        params: the point.
        key: PRNG key (keyword-only).
        num_probes: number of operator products (≥ 2 for Hutchinson, ≥ 3 for Hutch++).
        method: ``"hutchinson"`` or ``"hutch++"``.
        probe: ``"rademacher"`` or ``"normal"``.
        batch_size: products evaluated in parallel (``vmap``); default all.

    Returns:
        :class:`TraceEstimate`.

    Raises:
        ValueError: for an unknown method or too few probes.
    """
    op = as_operator(loss_fn)
    flat, unravel = ravel_pytree(params)
    P, dtype = flat.shape[0], flat.dtype
    if method not in ("hutchinson", "hutch++"):
        raise ValueError(f"method must be 'hutchinson' or 'hutch++', got {method!r}")
    need = 2 if method == "hutchinson" else 3
    if not isinstance(num_probes, int) or num_probes < need:
        raise ValueError(f"num_probes must be an int >= {need} for method={method!r}, got {num_probes!r}")

    def matvec_flat(x):
        return ravel_pytree(op.matvec(params, unravel(x)))[0].astype(dtype)

    if method == "hutchinson":
        Z = probe_vectors(key, num_probes, P, dtype, probe)
        samples = jnp.sum(Z * _apply(matvec_flat, Z, batch_size), axis=1)
        return TraceEstimate(jnp.mean(samples), jnp.std(samples, ddof=1) / jnp.sqrt(num_probes), samples)

    ns = min(num_probes // 3, P)
    nh = num_probes - 2 * ns
    k_s, k_g = jax.random.split(key)
    S = probe_vectors(k_s, ns, P, dtype, probe)
    Y = _apply(matvec_flat, S, batch_size)  # (ns, P)
    Q = jnp.linalg.qr(Y.T)[0].T  # (ns, P) orthonormal rows
    low_rank = jnp.sum(Q * _apply(matvec_flat, Q, batch_size))
    G = probe_vectors(k_g, nh, P, dtype, probe)
    G = G - (G @ Q.T) @ Q
    samples = jnp.sum(G * _apply(matvec_flat, G, batch_size), axis=1)
    se = jnp.std(samples, ddof=1) / jnp.sqrt(nh) if nh > 1 else jnp.full((), jnp.nan, dtype)
    return TraceEstimate(low_rank + jnp.mean(samples), se, samples)
