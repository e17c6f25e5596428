r"""Structured Granger pruning: one coefficient group per output neuron or filter.

The group Lasso (Yuan & Lin 2006) with scikit-learn's scaling,

.. math:: \min_w \frac{1}{2n}\lVert y - Xw\rVert^2 + \alpha \sum_g \sqrt{|g|}\,\lVert w_g\rVert_2 ,

keeps or removes a whole group of weights at once. For Granger pruning the groups
are the weights feeding one output unit (the last axis of a flax ``kernel``: the
output neuron of a ``Dense``, the filter of a ``Conv``), so a group with
:math:`w_g = 0` removes a channel — the paper's open question.

Solved by FISTA with adaptive restart and the block soft-thresholding prox
:math:`w_g \leftarrow \max(0, 1 - t\alpha\sqrt{|g|}/\lVert z_g\rVert)\,z_g`. Certificate: the
dual point :math:`\nu = sR`, :math:`s = \min(1, \min_g n\alpha\sqrt{|g|}/\lVert X_g^\top R\rVert)`
is feasible, and the gap :math:`P(w) - (y^\top\nu - \lVert\nu\rVert^2/2)/n` bounds the
sub-optimality, as for :func:`hgcnet_jax.prune.lasso`.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int

from hgcnet_jax.prune.solvers import LassoResult, _maybe_warn

__all__ = ["group_lasso", "group_alpha_max", "output_groups", "structured_granger_keep"]


def _group_norms(v, groups, num_groups):
    return jnp.sqrt(jax.ops.segment_sum(v * v, groups, num_segments=num_groups))


def group_alpha_max(X: ArrayLike, y: ArrayLike, groups: ArrayLike, num_groups: int) -> Array:
    """Smallest α with :math:`w = 0` optimal: :math:`\\max_g \\lVert X_g^\\top y\\rVert / (n\\sqrt{|g|})`."""
    X, y, groups = jnp.asarray(X), jnp.asarray(y), jnp.asarray(groups)
    sizes = jax.ops.segment_sum(jnp.ones_like(groups, X.dtype), groups, num_segments=num_groups)
    gn = _group_norms(X.T @ y / X.shape[0], groups, num_groups)
    return jnp.max(jnp.where(sizes > 0, gn / jnp.sqrt(jnp.maximum(sizes, 1)), 0.0))


def _gap(X, y, w, alpha, groups, num_groups, sqrt_sizes):
    n = X.shape[0]
    r = y - X @ w
    corr_norm = _group_norms(r @ X / n, groups, num_groups)
    bound = alpha * sqrt_sizes
    ratio = jnp.where(bound > 0, corr_norm / jnp.where(bound > 0, bound, 1.0), 0.0)
    s = jnp.minimum(1.0, 1.0 / jnp.maximum(jnp.max(ratio), jnp.finfo(X.dtype).tiny))
    rr, yr = jnp.dot(r, r) / n, jnp.dot(y, r) / n
    primal = 0.5 * rr + alpha * jnp.sum(sqrt_sizes * _group_norms(w, groups, num_groups))
    dual = s * yr - 0.5 * s * s * rr
    return primal, jnp.maximum(primal - dual, 0.0)


@partial(jax.jit, static_argnames=("num_groups", "max_iter", "check_every"))
def _group_fista(X, y, w0, alpha, groups, num_groups: int, tol_abs, max_iter: int, check_every: int = 10):
    n, p = X.shape
    sizes = jax.ops.segment_sum(jnp.ones((p,), X.dtype), groups, num_segments=num_groups)
    sqrt_sizes = jnp.sqrt(sizes)
    v = jnp.ones((p,), X.dtype) / jnp.sqrt(p)
    v = jax.lax.fori_loop(0, 50, lambda _, v: (lambda u: u / jnp.maximum(jnp.linalg.norm(u), 1e-30))(X.T @ (X @ v)), v)
    L = 1.02 * jnp.linalg.norm(X @ v) ** 2 / n + jnp.finfo(X.dtype).tiny
    t_step = 1.0 / L

    def prox(z):
        nrm = _group_norms(z, groups, num_groups)
        scale = jnp.maximum(0.0, 1.0 - t_step * alpha * sqrt_sizes / jnp.maximum(nrm, 1e-30))
        return z * scale[groups]

    def one(state):
        w, z, t = state
        grad = -((y - X @ z) @ X) / n
        w_new = prox(z - t_step * grad)
        restart = jnp.dot(z - w_new, w_new - w) > 0
        t = jnp.where(restart, 1.0, t)
        t_new = 0.5 * (1.0 + jnp.sqrt(1.0 + 4.0 * t * t))
        z_new = jnp.where(restart, w_new, w_new + ((t - 1.0) / t_new) * (w_new - w))
        return w_new, z_new, t_new

    def cond(s):
        return (s[3] < max_iter) & (s[4] > tol_abs)

    def body(s):
        w, z, t, it, _ = s
        w, z, t = jax.lax.fori_loop(0, check_every, lambda _, st: one(st), (w, z, t))
        return w, z, t, it + check_every, _gap(X, y, w, alpha, groups, num_groups, sqrt_sizes)[1]

    init = (w0, w0, jnp.ones((), X.dtype), jnp.zeros((), jnp.int32), _gap(X, y, w0, alpha, groups, num_groups, sqrt_sizes)[1])
    w, _, _, it, _ = jax.lax.while_loop(cond, body, init)
    obj, gap = _gap(X, y, w, alpha, groups, num_groups, sqrt_sizes)
    return w, obj, gap, it


def group_lasso(
    X: Float[ArrayLike, "n p"],
    y: Float[ArrayLike, " n"],
    alpha: ArrayLike,
    groups: Int[ArrayLike, " p"],
    *,
    num_groups: int | None = None,
    coef_init: Float[ArrayLike, " p"] | None = None,
    tol: float = 1e-4,
    max_iter: int = 20000,
    warn: bool = True,
) -> LassoResult:
    """The group Lasso (module docstring) by FISTA, with a duality-gap certificate.

    Args:
        X, y: the problem.
        alpha: penalty (>= 0).
        groups: ``(p,)`` int group id of every column, in ``[0, num_groups)``.
        num_groups: number of groups (static; default ``max(groups) + 1``).
        coef_init: warm start.
        tol: converged when ``gap <= tol * ||y||^2 / n``.
        max_iter: FISTA iterations.
        warn: emit :class:`~hgcnet_jax.prune.LassoConvergenceWarning` when not converged.

    Returns:
        A :class:`~hgcnet_jax.prune.LassoResult`.
    """
    X = jnp.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"group_lasso: X must be 2-D, got shape {X.shape}")
    y = jnp.asarray(y, X.dtype)
    if y.shape != (X.shape[0],):
        raise ValueError(f"group_lasso: y must have shape ({X.shape[0]},), got {y.shape}")
    g = np.asarray(groups)
    if g.shape != (X.shape[1],) or not np.issubdtype(g.dtype, np.integer) or (g.size and g.min() < 0):
        raise ValueError(f"group_lasso: groups must be {X.shape[1]} non-negative ints, got shape {g.shape}")
    ng = int(g.max()) + 1 if num_groups is None else int(num_groups)
    if g.size and g.max() >= ng:
        raise ValueError(f"group_lasso: group ids must be < num_groups={ng}")
    if float(alpha) < 0:
        raise ValueError(f"group_lasso: alpha must be >= 0, got {alpha}")
    w0 = jnp.zeros((X.shape[1],), X.dtype) if coef_init is None else jnp.asarray(coef_init, X.dtype)
    tol_abs = tol * jnp.dot(y, y) / X.shape[0]
    w, obj, gap, it = _group_fista(X, y, w0, jnp.asarray(alpha, X.dtype), jnp.asarray(g, jnp.int32), ng, tol_abs, max_iter)
    res = LassoResult(w, obj, gap, it, gap <= tol_abs)
    _maybe_warn(res, tol_abs, "group-fista", warn)
    return res


def output_groups(shape: tuple[int, ...]) -> np.ndarray:
    """Group id of every entry of a flattened kernel: its output unit (last axis)."""
    out = shape[-1]
    return np.tile(np.arange(out, dtype=np.int32), int(np.prod(shape[:-1])))


def structured_granger_keep(
    X: np.ndarray,
    y: np.ndarray,
    alive: np.ndarray,
    layer_slices: dict[str, slice],
    layer_shapes: dict[str, tuple[int, ...]],
    *,
    target_sparsity: float,
    alpha: float = 0.05,
    standardize: bool = True,
    tol: float = 1e-4,
    warn: bool = True,
) -> tuple[np.ndarray, list[LassoResult]]:
    """Keep whole output units per layer by the group-Lasso Granger regression.

    Per layer, the group Lasso of ``y`` on the layer's (standardised) columns is fitted
    at ``alpha * group_alpha_max``; units are ranked by ``(‖γ_g‖ > 0, ‖γ_g‖)`` then by
    ``‖X_g^T R‖ / (n √|g|)`` (the local entry penalty) and the top
    ``round((1 - target_sparsity) * units)`` units of each layer are kept.

    Returns:
        ``(keep (P,) bool, fits)``.
    """
    from hgcnet_jax.prune.granger import rank_key
    from hgcnet_jax.prune.masks import keep_top

    alive = np.asarray(alive, bool)
    keep = np.zeros_like(alive)
    fits = []
    for name, sl in layer_slices.items():
        shape = layer_shapes[name]
        g = output_groups(shape)
        Xl = np.asarray(X[:, sl], np.float32)
        if standardize:
            rms = np.sqrt(np.mean(np.square(Xl, dtype=np.float64), axis=0))
            Xl = (Xl / np.where(rms > 0, rms, 1.0)).astype(np.float32)
        Xl = np.where(alive[sl][None, :], Xl, 0.0).astype(np.float32)
        n_units = shape[-1]
        amax = float(group_alpha_max(Xl, y.astype(np.float32), g, n_units))
        res = group_lasso(Xl, y.astype(np.float32), alpha * amax, g, num_groups=n_units, tol=tol, warn=warn)
        fits.append(res)
        w = np.asarray(res.coef, np.float64)
        gn = np.sqrt(np.bincount(g, weights=w * w, minlength=n_units))
        r = y.astype(np.float64) - Xl.astype(np.float64) @ w
        cn = np.sqrt(np.bincount(g, weights=(r @ Xl.astype(np.float64) / X.shape[0]) ** 2, minlength=n_units))
        sizes = np.bincount(g, minlength=n_units)
        unit_alive = np.bincount(g, weights=alive[sl].astype(np.float64), minlength=n_units) > 0
        ranks = rank_key(gn, cn / np.sqrt(np.maximum(sizes, 1)))
        k_units = int(round((1.0 - target_sparsity) * n_units))
        unit_keep = keep_top(ranks, unit_alive, k_units)
        keep[sl] = unit_keep[g] & alive[sl]
    return keep, fits
