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
sub-optimality, as for :func:`hgcnet_jax.prune.lasso`. :func:`group_lasso_gram` solves
the same problem from the sufficient statistics :math:`X^\top X`, :math:`X^\top y`,
:math:`y^\top y` that :meth:`hgcnet_jax.prune.Trainer.record_stats` streams.

**Structured pruning** (:func:`structured_granger_keep`, method ``"granger_structured"``
of :func:`hgcnet_jax.prune.run_pruning`) keeps or removes whole output units: the mask
zeroes the unit's whole kernel slice (every input weight of a neuron, the whole
``H×W×C_in`` filter of a channel). Biases are never pruned (as everywhere in this
package), so a removed ReLU unit still emits the constant ``relu(bias)``; the next
layer's weights reading it are not masked by this rule.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int

from hgcnet_jax.prune.solvers import (
    LassoResult,
    _check_gram,
    _floor,
    _gap_from_stats,
    _lipschitz,
    _lipschitz_gram,
    _maybe_warn,
    _requested_float64,
    _status,
    fista_loop,
)

__all__ = ["group_lasso", "group_lasso_gram", "group_alpha_max", "output_groups", "structured_granger_keep",
           "structured_granger_keep_stats"]


def _group_norms(v, groups, num_groups):
    return jnp.sqrt(jax.ops.segment_sum(v * v, groups, num_segments=num_groups))


def group_alpha_max(X: ArrayLike, y: ArrayLike, groups: ArrayLike, num_groups: int) -> Array:
    """Smallest α with :math:`w = 0` optimal: :math:`\\max_g \\lVert X_g^\\top y\\rVert / (n\\sqrt{|g|})`."""
    X, y, groups = jnp.asarray(X), jnp.asarray(y), jnp.asarray(groups)
    sizes = jax.ops.segment_sum(jnp.ones_like(groups, X.dtype), groups, num_segments=num_groups)
    gn = _group_norms(X.T @ y / X.shape[0], groups, num_groups)
    return jnp.max(jnp.where(sizes > 0, gn / jnp.sqrt(jnp.maximum(sizes, 1)), 0.0))


def _group_gap(rr, w, c, alpha, groups, num_groups, sqrt_sizes):
    """Primal and gap of the group Lasso from ``rr = ||R||^2/n`` and ``c = X^T R / n``.

    The dual point ``s R`` with ``s = min(1, alpha / max_g (||c_g|| / sqrt|g|))`` is
    feasible; the gap is computed in the cancellation-free form of
    :func:`hgcnet_jax.prune.solvers._gap_from_stats`.
    """
    cn = _group_norms(c, groups, num_groups)
    corr_inf = jnp.max(jnp.where(sqrt_sizes > 0, cn / jnp.where(sqrt_sizes > 0, sqrt_sizes, 1.0), 0.0))
    penalty = alpha * jnp.sum(sqrt_sizes * _group_norms(w, groups, num_groups))
    return _gap_from_stats(rr, jnp.dot(w, c), corr_inf, penalty, alpha)


def _block_prox(groups, num_groups, sqrt_sizes, threshold):
    """``z -> prox`` of ``threshold * sum_g sqrt|g| ||z_g||`` (block soft-thresholding)."""

    def prox(z):
        nrm = _group_norms(z, groups, num_groups)
        scale = jnp.maximum(0.0, 1.0 - threshold * sqrt_sizes / jnp.maximum(nrm, jnp.finfo(z.dtype).tiny))
        return z * scale[groups]

    return prox


@partial(jax.jit, static_argnames=("num_groups", "max_iter", "check_every"))
def _group_fista(X, y, w0, alpha, groups, num_groups: int, tol_abs, max_iter: int, check_every: int = 10):
    n, p = X.shape
    sqrt_sizes = jnp.sqrt(jax.ops.segment_sum(jnp.ones((p,), X.dtype), groups, num_segments=num_groups))
    step = 1.0 / _lipschitz(X)

    def certificate(w):
        r = y - X @ w
        return _group_gap(jnp.dot(r, r) / n, w, r @ X / n, alpha, groups, num_groups, sqrt_sizes)

    return fista_loop(w0, lambda z: -((y - X @ z) @ X) / n, _block_prox(groups, num_groups, sqrt_sizes, step * alpha),
                      certificate, step, tol_abs, _floor(jnp.dot(y, y) / n, p), max_iter, check_every)


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
    requested64 = _requested_float64(X, y)
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
    w, it, obj, gap, stalled = _group_fista(X, y, w0, jnp.asarray(alpha, X.dtype), jnp.asarray(g, jnp.int32), ng,
                                            tol_abs, max_iter)
    res = LassoResult(w, obj, gap, it, gap <= tol_abs, _status(gap, tol_abs, stalled))
    _maybe_warn(res, tol_abs, "group-fista", warn, tol=tol, requested64=requested64)
    return res


@partial(jax.jit, static_argnames=("num_groups", "max_iter", "check_every"))
def _group_fista_gram(G, q, yy, w0, alpha, groups, num_groups: int, tol_abs, max_iter: int, check_every: int = 10):
    """FISTA on normalised statistics ``G = X^T X / n``, ``q = X^T y / n``, ``yy = y^T y / n``."""
    p = G.shape[0]
    sqrt_sizes = jnp.sqrt(jax.ops.segment_sum(jnp.ones((p,), G.dtype), groups, num_segments=num_groups))
    step = 1.0 / _lipschitz_gram(G)

    def certificate(w):
        c = q - G @ w                                   # X^T R / n
        rr = jnp.maximum(yy - jnp.dot(w, q) - jnp.dot(w, c), 0.0)
        return _group_gap(rr, w, c, alpha, groups, num_groups, sqrt_sizes)

    return fista_loop(w0, lambda z: G @ z - q, _block_prox(groups, num_groups, sqrt_sizes, step * alpha),
                      certificate, step, tol_abs, _floor(yy, p), max_iter, check_every)


def group_lasso_gram(
    gram: Float[ArrayLike, "p p"],
    xty: Float[ArrayLike, " p"],
    yty: ArrayLike,
    n: int,
    alpha: ArrayLike,
    groups: Int[ArrayLike, " p"],
    *,
    num_groups: int | None = None,
    coef_init: Float[ArrayLike, " p"] | None = None,
    tol: float = 1e-4,
    max_iter: int = 20000,
    warn: bool = True,
) -> LassoResult:
    r""":func:`group_lasso` from sufficient statistics (:math:`O(p^2)` memory whatever ``n``).

    :math:`\lVert R\rVert^2 = y^\top y - 2w^\top X^\top y + w^\top X^\top X w` and
    :math:`X^\top R = X^\top y - X^\top X w` give the gradient and the same certificate.

    Args:
        gram: :math:`X^\top X` (unnormalised), ``(p, p)``.
        xty: :math:`X^\top y`, ``(p,)``.
        yty: :math:`y^\top y`.
        n: rows accumulated.
        alpha, groups, num_groups, coef_init, tol, max_iter, warn: as in :func:`group_lasso`.
    """
    requested64 = _requested_float64(gram, xty, yty)
    G, q = _check_gram(gram, xty, n, "group_lasso_gram")
    g = np.asarray(groups)
    if g.shape != (G.shape[0],) or not np.issubdtype(g.dtype, np.integer) or (g.size and g.min() < 0):
        raise ValueError(f"group_lasso_gram: groups must be {G.shape[0]} non-negative ints, got shape {g.shape}")
    ng = int(g.max()) + 1 if num_groups is None else int(num_groups)
    if float(alpha) < 0:
        raise ValueError(f"group_lasso_gram: alpha must be >= 0, got {alpha}")
    w0 = jnp.zeros((G.shape[0],), G.dtype) if coef_init is None else jnp.asarray(coef_init, G.dtype)
    yy = jnp.asarray(yty, G.dtype) / n
    tol_abs = tol * yy
    w, it, obj, gap, stalled = _group_fista_gram(G / n, q / n, yy, w0, jnp.asarray(alpha, G.dtype),
                                                 jnp.asarray(g, jnp.int32), ng, tol_abs, max_iter)
    res = LassoResult(w, obj, gap, it, gap <= tol_abs, _status(gap, tol_abs, stalled))
    _maybe_warn(res, tol_abs, "group-fista-gram", warn, tol=tol, requested64=requested64)
    return res


def output_groups(shape: tuple[int, ...]) -> np.ndarray:
    """Group id of every entry of a flattened kernel: its output unit (last axis)."""
    out = shape[-1]
    return np.tile(np.arange(out, dtype=np.int32), int(np.prod(shape[:-1])))


def _unit_ranks(w, corr, g, n_units):
    """Unit importance ranks (0 … units − 1): by (‖γ_g‖ > 0, ‖γ_g‖), then ‖X_g^T R‖/(n√|g|)."""
    from hgcnet_jax.prune.granger import rank_key

    gn = np.sqrt(np.bincount(g, weights=w * w, minlength=n_units))
    cn = np.sqrt(np.bincount(g, weights=corr * corr, minlength=n_units))
    sizes = np.bincount(g, minlength=n_units)
    return rank_key(gn, cn / np.sqrt(np.maximum(sizes, 1)))


def _unit_keep(w, corr, g, n_units, alive_l, target_sparsity, scores_out=None, name=None):
    """Rank units (:func:`_unit_ranks`); keep the top units' alive weights (ranks to ``scores_out[name]``)."""
    from hgcnet_jax.prune.masks import keep_top

    unit_alive = np.bincount(g[: alive_l.shape[0]], weights=alive_l.astype(np.float64), minlength=n_units) > 0
    ranks = _unit_ranks(w, corr, g, n_units)
    if scores_out is not None:
        scores_out[name] = ranks
    k_units = int(round((1.0 - target_sparsity) * n_units))
    unit_keep = keep_top(ranks, unit_alive, k_units)
    return unit_keep[g[: alive_l.shape[0]]] & alive_l


def _layer_groups(shape, ncol, size):
    g = output_groups(shape)
    if ncol == 3 * size:                              # momentum: a weight's three features share its unit
        g = np.tile(g, 3)
    elif ncol != size:
        raise ValueError(f"structured: layer of {size} weights has {ncol} feature columns (expected {size} or {3 * size})")
    return g


def _check_structured(target_sparsity, layer_shapes, groups, protect):
    if not 0.0 <= target_sparsity < 1.0:
        raise ValueError(f"structured_granger_keep: target_sparsity must be in [0, 1), got {target_sparsity}")
    missing = [n for n in groups if n not in layer_shapes]
    if missing:
        raise ValueError(f"structured_granger_keep: no shape for layers {missing}")
    unknown = [n for n in protect if n not in groups]
    if unknown:
        raise ValueError(f"structured_granger_keep: protect names unknown layers {unknown}; layers: {list(groups)}")


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
    protect: tuple[str, ...] = (),
    unit_scores: dict | None = None,
) -> tuple[np.ndarray, list[LassoResult]]:
    """Keep whole output units per layer by the group-Lasso Granger regression.

    Per layer, the group Lasso of ``y`` on the layer's (standardised) columns is fitted
    at ``alpha * group_alpha_max``; units are ranked by ``(‖γ_g‖ > 0, ‖γ_g‖)`` then by
    ``‖X_g^T R‖ / (n √|g|)`` (the local entry penalty) and the top
    ``round((1 - target_sparsity) * units)`` units of each layer are kept; every alive
    weight of a kept unit stays, every weight of a removed unit goes.

    Args:
        X, y: the regression, ``(T, P)`` or ``(T, 3P)`` with momentum features
            (:meth:`~hgcnet_jax.prune.record.Recording.design`).
        alive: ``(P,)`` current mask.
        layer_slices, layer_shapes: name → slice of the ``P`` axis, and kernel shape (the
            last axis is the output unit).
        target_sparsity: fraction of each layer's units removed.
        protect: layers whose units are never removed (e.g. the classifier, whose units
            are the classes); their alive weights are all kept.
        unit_scores: a dict to receive ``layer -> (units,)`` importance ranks of every
            fitted layer (larger = kept first), e.g. to compare with an oracle.

    Returns:
        ``(keep (P,) bool, fits)``.
    """
    _check_structured(target_sparsity, layer_shapes, layer_slices, protect)
    alive = np.asarray(alive, bool)
    P = alive.shape[0]
    momentum = X.shape[1] == 3 * P
    keep = np.zeros_like(alive)
    fits = []
    for name, sl in layer_slices.items():
        if name in protect:
            keep[sl] = alive[sl]
            continue
        shape = layer_shapes[name]
        size = sl.stop - sl.start
        cols = np.arange(P)[sl]
        Xl = np.asarray(X[:, np.concatenate([cols + k * P for k in range(3)])] if momentum else X[:, sl], np.float32)
        g = _layer_groups(shape, Xl.shape[1], size)
        live = np.tile(alive[sl], Xl.shape[1] // size)
        if standardize:
            rms = np.sqrt(np.mean(np.square(Xl, dtype=np.float64), axis=0))
            Xl = (Xl / np.where(rms > 0, rms, 1.0)).astype(np.float32)
        Xl = np.where(live[None, :], Xl, 0.0).astype(np.float32)
        n_units = shape[-1]
        amax = float(group_alpha_max(Xl, y.astype(np.float32), g, n_units))
        res = group_lasso(Xl, y.astype(np.float32), alpha * amax, g, num_groups=n_units, tol=tol, warn=warn)
        fits.append(res)
        w = np.asarray(res.coef, np.float64)
        r = y.astype(np.float64) - Xl.astype(np.float64) @ w
        keep[sl] = _unit_keep(w, r @ Xl.astype(np.float64) / X.shape[0], g, n_units, alive[sl], target_sparsity,
                              unit_scores, name)
    return keep, fits


def structured_granger_keep_stats(
    stats,
    replica: int,
    alive: np.ndarray,
    layer_shapes: dict[str, tuple[int, ...]],
    *,
    target_sparsity: float,
    alpha: float = 0.05,
    standardize: bool = True,
    tol: float = 1e-4,
    warn: bool = True,
    protect: tuple[str, ...] = (),
    unit_scores: dict | None = None,
) -> tuple[np.ndarray, list[LassoResult]]:
    """:func:`structured_granger_keep` from streamed :class:`~hgcnet_jax.prune.record.GrangerStats`.

    ``stats`` must be per layer (``record_stats(scope="layer")``). A layer with a Gram is
    fitted by :func:`group_lasso_gram`; a layer kept as columns by :func:`group_lasso`
    on its design. Same standardisation, penalty and ranking as the design version
    (``unit_scores`` as there).
    """
    _check_structured(target_sparsity, layer_shapes, stats.groups, protect)
    alive = np.asarray(alive, bool)
    keep = np.zeros_like(alive)
    fits = []
    for name, sl in stats.groups.items():
        if name in protect:
            keep[sl] = alive[sl]
            continue
        if name not in stats.gram:
            X, y = stats.design(replica, name)
            k, f = structured_granger_keep(X, y, alive[sl], {name: slice(0, sl.stop - sl.start)}, layer_shapes,
                                           target_sparsity=target_sparsity, alpha=alpha, standardize=standardize,
                                           tol=tol, warn=warn, unit_scores=unit_scores)
            keep[sl] = k
            fits += f
            continue
        shape = layer_shapes[name]
        size = sl.stop - sl.start
        Gm = np.asarray(stats.gram[name][replica], np.float64)
        q = np.asarray(stats.xty[name][replica], np.float64)
        n = stats.n
        g = _layer_groups(shape, q.shape[0], size)
        scale = np.tile(alive[sl], q.shape[0] // size).astype(np.float64)
        if standardize:
            rms = np.sqrt(np.asarray(stats.sumsq[name][replica], np.float64) / n)
            scale = scale / np.where(rms > 0, rms, 1.0)
        Gs = (Gm * scale[:, None] * scale[None, :]).astype(np.float32)
        qs = (q * scale).astype(np.float32)
        n_units = shape[-1]
        sizes = np.bincount(g, minlength=n_units)
        gq = np.sqrt(np.bincount(g, weights=(qs.astype(np.float64) / n) ** 2, minlength=n_units))
        amax = float(np.max(np.where(sizes > 0, gq / np.sqrt(np.maximum(sizes, 1)), 0.0)))
        res = group_lasso_gram(Gs, qs, np.float32(stats.yty[replica]), n, alpha * amax, g, num_groups=n_units,
                               tol=tol, warn=warn)
        fits.append(res)
        w = np.asarray(res.coef, np.float64)
        keep[sl] = _unit_keep(w, (qs.astype(np.float64) - Gs.astype(np.float64) @ w) / n, g, n_units, alive[sl],
                              target_sparsity, unit_scores, name)
    return keep, fits
