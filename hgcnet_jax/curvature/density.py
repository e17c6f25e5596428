"""Spectral density by stochastic Lanczos quadrature (SLQ).

For a symmetric :math:`A \\in \\mathbb R^{P\\times P}` with eigenvalues :math:`\\lambda_i`,
the spectral density :math:`\\phi(t) = \\frac1P \\sum_i \\delta(t-\\lambda_i)` satisfies
:math:`\\int f\\,d\\phi = \\frac1P \\operatorname{tr} f(A) = \\mathbb E_v[v^\\top f(A) v]` for a
random unit vector :math:`v` with :math:`\\mathbb E[vv^\\top] = I/P`. Lanczos started at
:math:`v` gives the Gauss quadrature :math:`v^\\top f(A) v \\approx \\sum_j \\tau_j f(\\theta_j)`
with nodes :math:`\\theta_j` (eigenvalues of ``T``) and weights :math:`\\tau_j = s_{1j}^2`
(squared first components of its eigenvectors), exact for polynomials of degree
:math:`< 2m` (Golub & Meurant 2010; Ubaru, Chen & Saad 2017; Ghorbani, Krishnan & Xiao
2019; Papyan 2019). Averaging over probes estimates :math:`\\phi`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Float

from hgcnet_jax.curvature.lanczos import _check_steps, _lanczos_flat, symmetric_eigh, tridiagonal
from hgcnet_jax.curvature.operators import as_operator

__all__ = ["SpectralDensity", "spectral_density", "smooth_density", "probe_vectors"]

PyTree = Any


class SpectralDensity(NamedTuple):
    """The output of :func:`spectral_density`.

    Attributes:
        nodes: ``(num_probes, num_steps)`` quadrature nodes (Ritz values) per probe.
        weights: ``(num_probes, num_steps)`` quadrature weights; each row sums to 1.
        grid: ``(grid_size,)`` points spanning the nodes (padded by 5 sigma).
        density: ``(grid_size,)`` Gaussian-smoothed density on ``grid`` (integrates to ≈ 1).
        residuals: ``(num_probes, num_steps)`` Lanczos residual norms of the Ritz pairs,
            :math:`r_j = |\\beta_m s_{mj}| = \\|A y_j - \\theta_j y_j\\|`: the operator has an
            eigenvalue within :math:`r_j` of every node :math:`\\theta_j` (Parlett 1998, §13.2);
            never below the rounding of the process, ``num_steps · eps · max|θ|``.
            ``None`` only for a density built by hand.
    """

    nodes: Float[Array, "p m"]
    weights: Float[Array, "p m"]
    grid: Float[Array, " g"]
    density: Float[Array, " g"]
    residuals: Float[Array, "p m"] | None = None

    def expect(self, f: Callable[[Array], Array]) -> Float[Array, ""]:
        """:math:`\\int f\\,d\\phi \\approx \\frac1P \\operatorname{tr} f(A)`, averaged over probes."""
        return jnp.mean(jnp.sum(self.weights * f(self.nodes), axis=-1))

    def moment(self, order: int) -> Float[Array, ""]:
        """The moment :math:`\\frac1P \\operatorname{tr}(A^{\\text{order}})`."""
        return self.expect(lambda t: t**order)


def probe_vectors(key: Array, num: int, dim: int, dtype=jnp.float32, kind: str = "rademacher") -> Array:
    """``(num, dim)`` random probes with :math:`\\mathbb E[zz^\\top] = I`.

    Args:
        key: PRNG key.
        num: number of probes.
        dim: dimension.
        dtype: float dtype.
        kind: ``"rademacher"`` (±1, the lowest-variance choice for trace estimation,
            Hutchinson 1989) or ``"normal"``.
    """
    if kind == "rademacher":
        return jax.random.rademacher(key, (num, dim), dtype)
    if kind == "normal":
        return jax.random.normal(key, (num, dim), dtype)
    raise ValueError(f"probe kind must be 'rademacher' or 'normal', got {kind!r}")


def smooth_density(
    nodes: Float[Array, "p m"],
    weights: Float[Array, "p m"],
    grid: Float[Array, " g"],
    sigma: float | Array,
) -> Float[Array, " g"]:
    """Gaussian-smoothed density :math:`\\frac1{n_p}\\sum_{l,j} \\tau_{lj}\\,\\mathcal N(t;\\theta_{lj},\\sigma^2)` on ``grid``."""
    z = (grid[:, None, None] - nodes[None]) / sigma
    k = jnp.exp(-0.5 * z**2) / (sigma * jnp.sqrt(2 * jnp.pi))
    return jnp.mean(jnp.sum(weights[None] * k, axis=-1), axis=-1)


def spectral_density(
    loss_fn: Any,
    params: PyTree,
    *,
    key: Array,
    num_probes: int = 8,
    num_steps: int = 64,
    grid_size: int = 256,
    sigma: float | None = None,
    probe: str = "rademacher",
    batch_size: int | None = None,
) -> SpectralDensity:
    """Stochastic Lanczos quadrature of the Hessian (or another operator) spectrum.

    Each probe runs ``num_steps`` steps of fully reorthogonalised Lanczos; all probes
    run in one compiled program (``lax.map`` over probes, ``batch_size`` at a time with
    ``vmap``). Memory ``batch_size × (num_steps + 1) × P`` for the bases.

    Args:
        loss_fn: ``params -> scalar``, a :class:`~hgcnet_jax.curvature.DataLoss`, or an operator.
        params: the point (its dtype sets the precision).
        key: PRNG key (keyword-only).
        num_probes: number of random probes.
        num_steps: Lanczos steps per probe (``≤ P``); the quadrature is exact for
            polynomials of degree ``< 2 num_steps``.
        grid_size: points of the smoothed density.
        sigma: Gaussian smoothing width; default 1 % of the node range.
        probe: ``"rademacher"`` or ``"normal"`` (normalised to unit length).
        batch_size: probes run in parallel (default: all).

    Returns:
        :class:`SpectralDensity`.

    Raises:
        ValueError: for bad counts.
    """
    op = as_operator(loss_fn)
    flat, unravel = ravel_pytree(params)
    P, dtype = flat.shape[0], flat.dtype
    m = _check_steps(num_steps, P)
    if not isinstance(num_probes, int) or num_probes < 1:
        raise ValueError(f"num_probes must be a positive int, got {num_probes!r}")
    if not isinstance(grid_size, int) or grid_size < 2:
        raise ValueError(f"grid_size must be an int >= 2, got {grid_size!r}")
    k_probe, k_restart = jax.random.split(key)
    V = probe_vectors(k_probe, num_probes, P, dtype, probe)

    def matvec_flat(x):
        return ravel_pytree(op.matvec(params, unravel(x)))[0].astype(dtype)

    def one(args):
        v, i = args
        alphas, betas, _, _ = _lanczos_flat(
            matvec_flat, v, m, reorthogonalize=True, keep_basis=True, key=jax.random.fold_in(k_restart, i)
        )
        theta, S = symmetric_eigh(tridiagonal(alphas, betas[:-1]))
        # betas[-1] is the norm of the residual after the last step (0 after a breakdown:
        # the Krylov space is then invariant). A converged node's last eigenvector component
        # underflows to 0 in float32, but the computed Lanczos relation holds only to the
        # rounding of m steps, O(m · eps · ‖T‖) (Paige 1976): the bound is never below it.
        floor = m * jnp.finfo(dtype).eps * jnp.max(jnp.abs(theta))
        return theta, S[0] ** 2, jnp.maximum(jnp.abs(betas[-1] * S[-1]), floor)

    nodes, weights, res = jax.lax.map(one, (V, jnp.arange(num_probes)), batch_size=batch_size or num_probes)
    lo, hi = jnp.min(nodes), jnp.max(nodes)
    span = jnp.maximum(hi - lo, jnp.finfo(dtype).eps * jnp.maximum(jnp.abs(hi), 1.0))
    s = 0.01 * span if sigma is None else jnp.asarray(sigma, dtype)
    grid = jnp.linspace(lo - 5 * s, hi + 5 * s, grid_size, dtype=dtype)
    return SpectralDensity(nodes, weights, grid, smooth_density(nodes, weights, grid, s), res)
