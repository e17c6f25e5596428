r"""Granger-causal importance of weights (Shah et al. 2024), magnitude and random baselines.

A weight :math:`\theta_j` *Granger-causes* the loss when its squared updates help
predict the loss changes: the Lasso (no intercept, scikit-learn's objective)

.. math::  \gamma = \arg\min_\gamma \frac{1}{2T}\lVert y - X\gamma\rVert^2 + \alpha\lVert\gamma\rVert_1,
           \quad y_t = L_{t+1} - L_t,\; X_{tj} = (\Delta\theta_{tj}/\eta)^2 ,

is fitted per layer (``scope="layer"``, the authors' original code) or over all
prunable weights at once (``scope="global"``, their later code), and

* ``mode="exact"`` prunes every alive weight with :math:`\gamma_j = 0` exactly (the
  paper's rule), with :math:`\alpha` given relative to :math:`\alpha_{\max} =
  \lVert X^\top y\rVert_\infty/T` (scale-free, ``alpha_scale="relative"``) or in the
  units of the features (``"absolute"``; the authors' 1e-14 was for raw
  :math:`\Delta\theta^2`, i.e. ``1e-14 * lr**2`` here). Note a property of the exact
  Lasso that bounds this rule: with :math:`T` rows it has at most :math:`T` nonzero
  coefficients (data in general position), so a converged fit keeps at most
  :math:`T` weights per fit;
* ``mode="rank"`` keeps a budget of weights (a sparsity schedule, e.g. the cubic one):
  alive weights are ranked by ``(γ_j ≠ 0, |γ_j|)`` and, among those with
  :math:`\gamma_j = 0`, by :math:`|x_j^\top R|/T` — the value of :math:`\alpha` at which
  weight :math:`j` would enter the Lasso path locally (the KKT conditions give
  :math:`|x_j^\top R|/T \le \alpha` for zeros). This extends the |γ| ranking of the
  later code to budgets larger than the Lasso's support.

Every fit's duality gap is returned with the scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import numpy as np

from hgcnet_jax import _keys
from hgcnet_jax.prune.masks import keep_top
from hgcnet_jax.prune.solvers import LassoResult, alpha_max, lasso, lasso_batch, lasso_gram

__all__ = ["GrangerFit", "granger_fit", "granger_fit_gram", "granger_keep", "granger_keep_stats",
           "granger_keep_stats_batch", "magnitude_keep",
           "random_keep", "rank_key"]


@dataclass(frozen=True)
class GrangerFit:
    """One Granger regression.

    Attributes:
        coef: ``(P,)`` Lasso coefficients γ (0 for dead columns).
        corr: ``(P,)`` :math:`|x_j^\\top R|/T` at the solution.
        alpha: the penalty used (absolute, in the units of the features).
        result: the :class:`~hgcnet_jax.prune.LassoResult` (objective, gap, convergence).
    """

    coef: np.ndarray
    corr: np.ndarray
    alpha: float
    result: LassoResult


def _fold_momentum(v: np.ndarray, P: int) -> np.ndarray:
    """Collapse ``3P`` momentum-feature scores to ``P`` (max |.| over the three blocks)."""
    if v.shape[0] == P:
        return v
    return np.max(np.abs(v.reshape(-1, P)), axis=0)


def _scaled_columns(X: np.ndarray, alive: np.ndarray | None, standardize: bool) -> tuple[np.ndarray, np.ndarray, int]:
    """The fitted design: dead weights' columns zeroed, optionally unit-RMS columns; ``(Xn float32, live, P)``.

    Dead columns are zeroed, not dropped: the shape (and so the compiled solver) stays
    the same from one pruning iteration to the next; zero columns are screened at once.
    With momentum features (``3P`` columns) a weight's three columns share its flag.
    """
    ncol = X.shape[1]
    blocks = 3 if alive is not None and ncol == 3 * np.size(alive) else 1
    P = ncol // blocks
    alive = np.ones(P, bool) if alive is None else np.asarray(alive, bool)
    live = np.tile(alive, blocks)
    Xn = np.where(live[None, :], X, 0.0).astype(np.float32)
    if standardize:
        rms = np.sqrt(np.mean(np.square(Xn, dtype=np.float64), axis=0))
        Xn = (Xn / np.where(rms > 0, rms, 1.0)).astype(np.float32)
    return Xn, live, P


def granger_fit(
    X: np.ndarray,
    y: np.ndarray,
    *,
    alive: np.ndarray | None = None,
    alpha: float = 0.05,
    alpha_scale: str = "relative",
    standardize: bool = True,
    solver: str = "auto",
    tol: float = 1e-4,
    warn: bool = True,
) -> GrangerFit:
    r"""Fit the Lasso of loss changes on squared parameter changes.

    With ``standardize=True`` (default) each column is divided by its root mean square
    before the fit (no centring: the model keeps no intercept), i.e. a weighted Lasso
    whose penalty on :math:`\gamma_j` is proportional to the scale of
    :math:`\Delta\theta_j^2`; ``coef`` and ``corr`` are then reported in the
    standardised units, which is what the ranking compares. Without it, weights whose
    squared updates are large (noisy weights) enter the fit first, since with no
    intercept the always-positive features also absorb the mean of ``y`` — the planted
    test in ``tests/prune`` shows the unstandardised fit selecting such weights.

    Args:
        X: ``(T, P)`` or ``(T, 3P)`` (momentum features) design.
        y: ``(T,)`` loss changes.
        alive: ``(P,)`` bool; dead weights' columns are dropped (their γ is 0).
        alpha: the penalty; ``alpha_scale="relative"`` multiplies :math:`\\alpha_{\\max}`.
        alpha_scale: ``"relative"`` or ``"absolute"`` (absolute values are in the units
            of the standardised features when ``standardize``).
        standardize: scale columns to unit root mean square (see above).
        solver, tol, warn: as in :func:`hgcnet_jax.prune.lasso`.

    Returns:
        A :class:`GrangerFit` with ``P``-long ``coef`` and ``corr``.
    """
    import jax.numpy as jnp

    X = np.asarray(X, np.float32)
    y = np.asarray(y, np.float32)
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise ValueError(f"granger_fit: need X (T, P) and y (T,), got {X.shape} and {y.shape}")
    if alpha_scale not in ("relative", "absolute"):
        raise ValueError(f"granger_fit: alpha_scale must be 'relative' or 'absolute', got {alpha_scale!r}")
    if alpha < 0:
        raise ValueError(f"granger_fit: alpha must be >= 0, got {alpha}")
    Xn, live, P = _scaled_columns(X, alive, standardize)
    if not live.any():
        raise ValueError("granger_fit: no alive weights to fit")
    Xa = jnp.asarray(Xn)
    ya = jnp.asarray(y)
    amax = float(alpha_max(Xa, ya))
    a = alpha * amax if alpha_scale == "relative" else float(alpha)
    res = lasso(Xa, ya, a, solver=solver, tol=tol, warn=warn)
    coef = np.where(live, np.asarray(res.coef, np.float64), 0.0)
    r = np.asarray(ya, np.float64) - Xn.astype(np.float64) @ coef
    corr = np.where(live, np.abs(r @ Xn.astype(np.float64)) / X.shape[0], 0.0)
    return GrangerFit(_fold_momentum(coef, P), _fold_momentum(corr, P), a, res)


def granger_fit_gram(
    gram: np.ndarray,
    xty: np.ndarray,
    yty: float,
    n: int,
    *,
    sumsq: np.ndarray | None = None,
    alive: np.ndarray | None = None,
    alpha: float = 0.05,
    alpha_scale: str = "relative",
    standardize: bool = True,
    tol: float = 1e-4,
    warn: bool = True,
) -> GrangerFit:
    r""":func:`granger_fit` from streamed sufficient statistics (no design matrix).

    The same problem as :func:`granger_fit` — columns of dead weights zeroed, columns
    scaled to unit root mean square :math:`\sqrt{\sum_t X_{tj}^2/n}` (``sumsq``, default
    the Gram's diagonal), :math:`\alpha` relative to :math:`\alpha_{\max} = \lVert
    X^\top y\rVert_\infty/n` — solved by :func:`hgcnet_jax.prune.lasso_gram`
    (coordinate descent in covariance form, the solvers' public entry point for
    sufficient statistics), so memory is :math:`O(p^2)` whatever the number of rows.
    ``corr`` is :math:`|X^\top y - X^\top X\gamma|/n`. Equal to ``granger_fit(X, y,
    solver="cd")`` up to float rounding (``lasso(solver="cd")`` forms the same Gram).

    Args:
        gram: ``(p, p)`` :math:`X^\top X` (unnormalised), ``p = P`` or ``3P`` (momentum).
        xty: ``(p,)`` :math:`X^\top y`.
        yty: :math:`y^\top y`.
        n: rows accumulated.
        sumsq: ``(p,)`` column sums of squares (default ``diag(gram)``).
        alive, alpha, alpha_scale, standardize, tol, warn: as in :func:`granger_fit`.

    Returns:
        A :class:`GrangerFit` with ``P``-long ``coef`` and ``corr``.
    """
    G = np.asarray(gram, np.float64)
    q = np.asarray(xty, np.float64)
    ncol = q.shape[0]
    if G.shape != (ncol, ncol):
        raise ValueError(f"granger_fit_gram: need gram (p, p) and xty (p,), got {G.shape} and {q.shape}")
    if alpha_scale not in ("relative", "absolute"):
        raise ValueError(f"granger_fit_gram: alpha_scale must be 'relative' or 'absolute', got {alpha_scale!r}")
    if alpha < 0:
        raise ValueError(f"granger_fit_gram: alpha must be >= 0, got {alpha}")
    blocks = 3 if alive is not None and ncol == 3 * np.size(alive) else 1
    P = ncol // blocks
    alive = np.ones(P, bool) if alive is None else np.asarray(alive, bool)
    live = np.tile(alive, blocks)
    if not live.any():
        raise ValueError("granger_fit_gram: no alive weights to fit")
    scale = live.astype(np.float64)
    if standardize:
        ss = np.diagonal(G) if sumsq is None else np.asarray(sumsq, np.float64)
        rms = np.sqrt(ss / n)
        scale = scale / np.where(rms > 0, rms, 1.0)
    Gs = G * scale[:, None] * scale[None, :]
    qs = q * scale
    amax = float(np.max(np.abs(qs)) / n)
    a = alpha * amax if alpha_scale == "relative" else float(alpha)
    res = lasso_gram(Gs.astype(np.float32), qs.astype(np.float32), np.float32(yty), int(n), a, tol=tol, warn=warn)
    coef = np.where(live, np.asarray(res.coef, np.float64), 0.0)
    corr = np.where(live, np.abs(qs - Gs @ coef) / n, 0.0)
    return GrangerFit(_fold_momentum(coef, P), _fold_momentum(corr, P), a, res)


def rank_key(coef: np.ndarray, corr: np.ndarray) -> np.ndarray:
    """Importance ranks (larger = more important) for ``mode="rank"``.

    Nonzero-γ weights first, by |γ|; then the zeros by ``corr`` (the local entry
    ``alpha``). Returns ranks ``0..P-1`` as float for :func:`keep_top`.
    """
    nz = coef != 0
    order = np.lexsort((np.where(nz, np.abs(coef), corr), nz.astype(np.int8)))
    ranks = np.empty(coef.shape[0], np.float64)
    ranks[order] = np.arange(coef.shape[0])
    return ranks


def granger_keep(
    X: np.ndarray,
    y: np.ndarray,
    alive: np.ndarray,
    layer_slices: dict[str, slice],
    *,
    mode: str = "rank",
    scope: str = "global",
    target_sparsity: float | None = None,
    alpha: float = 0.05,
    alpha_scale: str = "relative",
    standardize: bool = True,
    solver: str = "auto",
    tol: float = 1e-4,
    warn: bool = True,
) -> tuple[np.ndarray, list[GrangerFit]]:
    """The new keep-mask (``(P,)`` bool) of one replica by Granger-causal pruning.

    Args:
        X, y: the replica's regression (:meth:`~hgcnet_jax.prune.record.Recording.design`).
        alive: ``(P,)`` current mask.
        layer_slices: name → slice of the ``P`` axis per prunable layer.
        mode: ``"exact"`` (prune γ = 0) or ``"rank"`` (keep a budget by importance).
        scope: ``"global"`` (one Lasso, one budget over all layers) or ``"layer"``
            (one Lasso per layer; in rank mode every layer gets the same sparsity).
        target_sparsity: fraction of all prunable weights pruned after this step
            (``mode="rank"`` only).
        alpha, alpha_scale, standardize, solver, tol, warn: see :func:`granger_fit`.

    Returns:
        ``(keep, fits)``.
    """
    _check_keep_args(mode, target_sparsity, "granger_keep")
    if scope not in ("global", "layer"):
        raise ValueError(f"granger_keep: scope must be 'global' or 'layer', got {scope!r}")
    alive = np.asarray(alive, bool)
    P = alive.shape[0]
    momentum = X.shape[1] == 3 * P
    groups = {"all": slice(0, P)} if scope == "global" else layer_slices
    keep = np.zeros(P, bool)
    fits = []
    for _, sl in groups.items():
        a = alive[sl]
        if not a.any():
            continue
        cols = np.arange(P)[sl]
        Xg = X[:, np.concatenate([cols + k * P for k in range(3)])] if momentum else X[:, sl]
        fit = granger_fit(Xg, y, alive=a, alpha=alpha, alpha_scale=alpha_scale, standardize=standardize,
                          solver=solver, tol=tol, warn=warn)
        fits.append(fit)
        keep[sl] = _keep_from_fit(fit, a, mode, target_sparsity)
    return keep, fits


def _keep_from_fit(fit: GrangerFit, alive: np.ndarray, mode: str, target_sparsity: float | None) -> np.ndarray:
    if mode == "exact":
        return alive & (fit.coef != 0)
    n_keep = int(round((1.0 - target_sparsity) * alive.shape[0]))
    return keep_top(rank_key(fit.coef, fit.corr), alive, n_keep)


def _check_keep_args(mode, target_sparsity, name):
    if mode not in ("exact", "rank"):
        raise ValueError(f"{name}: mode must be 'exact' or 'rank', got {mode!r}")
    if mode == "rank" and (target_sparsity is None or not 0.0 <= target_sparsity < 1.0):
        raise ValueError(f"{name}: mode='rank' needs target_sparsity in [0, 1), got {target_sparsity!r}")


def granger_keep_stats(
    stats,
    replica: int,
    alive: np.ndarray,
    *,
    mode: str = "rank",
    target_sparsity: float | None = None,
    alpha: float = 0.05,
    alpha_scale: str = "relative",
    standardize: bool = True,
    solver: str = "auto",
    tol: float = 1e-4,
    warn: bool = True,
) -> tuple[np.ndarray, list[GrangerFit]]:
    """:func:`granger_keep` from streamed :class:`~hgcnet_jax.prune.record.GrangerStats`.

    The fit groups (and so the scope) are the statistics' groups: one ``"all"`` group
    is the global scope, one group per layer the per-layer scope. A Gram group is
    fitted by :func:`granger_fit_gram` (``solver`` is not used there: covariance-form
    coordinate descent); a group kept as columns by :func:`granger_fit` on its design
    with ``solver``. The keep rules are those of :func:`granger_keep`.

    Returns:
        ``(keep (P,) bool, fits)``.
    """
    _check_keep_args(mode, target_sparsity, "granger_keep_stats")
    alive = np.asarray(alive, bool)
    keep = np.zeros(alive.shape[0], bool)
    fits = []
    for name, sl in stats.groups.items():
        a = alive[sl]
        if not a.any():
            continue
        if name in stats.gram:
            fit = granger_fit_gram(stats.gram[name][replica], stats.xty[name][replica], float(stats.yty[replica]),
                                   stats.n, sumsq=stats.sumsq[name][replica], alive=a, alpha=alpha,
                                   alpha_scale=alpha_scale, standardize=standardize, tol=tol, warn=warn)
        else:
            X, y = stats.design(replica, name)
            fit = granger_fit(X, y, alive=a, alpha=alpha, alpha_scale=alpha_scale, standardize=standardize,
                              solver=solver, tol=tol, warn=warn)
        fits.append(fit)
        keep[sl] = _keep_from_fit(fit, a, mode, target_sparsity)
    return keep, fits


def granger_keep_stats_batch(
    stats,
    alive: np.ndarray,
    *,
    mode: str = "rank",
    target_sparsity: float | None = None,
    alpha: float = 0.05,
    alpha_scale: str = "relative",
    standardize: bool = True,
    tol: float = 1e-4,
    warn: bool = True,
) -> tuple[np.ndarray, list[list[GrangerFit]]]:
    """:func:`granger_keep_stats` for every replica at once: the column groups' Lassos as one batch.

    A group kept as columns (not a Gram group) is fitted for all replicas by one
    :func:`~hgcnet_jax.prune.lasso_batch` call (one vmapped working-set program, each
    replica's fit with its own certificate), with the same column scaling, penalty and
    keep rules as :func:`granger_fit` / :func:`granger_keep_stats`; Gram groups are
    fitted per replica by :func:`granger_fit_gram` as there.

    Args:
        stats: :class:`~hgcnet_jax.prune.record.GrangerStats` of ``S`` replicas.
        alive: ``(S, P)`` current masks.
        mode, target_sparsity, alpha, alpha_scale, standardize, tol, warn: as in
            :func:`granger_keep_stats`.

    Returns:
        ``(keep (S, P) bool, fits)``: ``fits[s]`` lists replica ``s``'s fits in group order
        (groups with no alive weight skipped), as :func:`granger_keep_stats` returns them.
    """
    import jax.numpy as jnp

    _check_keep_args(mode, target_sparsity, "granger_keep_stats_batch")
    if alpha_scale not in ("relative", "absolute"):
        raise ValueError(f"granger_keep_stats_batch: alpha_scale must be 'relative' or 'absolute', got {alpha_scale!r}")
    alive = np.asarray(alive, bool)
    S = alive.shape[0]
    keep = np.zeros_like(alive)
    fits: list[list[GrangerFit]] = [[] for _ in range(S)]
    for name, sl in stats.groups.items():
        todo = [s for s in range(S) if alive[s, sl].any()]
        if not todo:
            continue
        if name in stats.gram:
            for s in todo:
                f = granger_fit_gram(stats.gram[name][s], stats.xty[name][s], float(stats.yty[s]), stats.n,
                                     sumsq=stats.sumsq[name][s], alive=alive[s, sl], alpha=alpha,
                                     alpha_scale=alpha_scale, standardize=standardize, tol=tol, warn=warn)
                fits[s].append(f)
                keep[s, sl] = _keep_from_fit(f, alive[s, sl], mode, target_sparsity)
            continue
        Xb = Yb = None
        lives = []
        for b, s in enumerate(todo):
            X, y = stats.design(s, name)
            Xn, live, P = _scaled_columns(X, alive[s, sl], standardize)
            if Xb is None:
                Xb = np.empty((len(todo),) + Xn.shape, np.float32)
                Yb = np.empty((len(todo), Xn.shape[0]), np.float32)
            Xb[b], Yb[b] = Xn, y
            lives.append(live)
            del X, Xn
        n = Xb.shape[1]
        amax = np.array([float(alpha_max(jnp.asarray(Xb[b]), jnp.asarray(Yb[b]))) for b in range(len(todo))])
        a = alpha * amax if alpha_scale == "relative" else np.full(len(todo), float(alpha))
        res = lasso_batch(jnp.asarray(Xb), jnp.asarray(Yb), a.astype(np.float32), tol=tol, warn=warn)
        coefs = np.asarray(res.coef, np.float64)
        for b, s in enumerate(todo):
            live = lives[b]
            coef = np.where(live, coefs[b], 0.0)
            r = Yb[b].astype(np.float64) - Xb[b].astype(np.float64) @ coef
            corr = np.where(live, np.abs(r @ Xb[b].astype(np.float64)) / n, 0.0)
            one = LassoResult(*(f[b] for f in res))
            f = GrangerFit(_fold_momentum(coef, P), _fold_momentum(corr, P), float(a[b]), one)
            fits[s].append(f)
            keep[s, sl] = _keep_from_fit(f, alive[s, sl], mode, target_sparsity)
    return keep, fits


def magnitude_keep(weights: np.ndarray, alive: np.ndarray, layer_slices: dict[str, slice], *,
                   target_sparsity: float, scope: str = "global") -> np.ndarray:
    """Keep the largest-|θ| alive weights: globally, or the same sparsity per layer."""
    return _budget_keep(np.abs(np.asarray(weights, np.float64)), alive, layer_slices, target_sparsity, scope)


def random_keep(alive: np.ndarray, layer_slices: dict[str, slice], *, target_sparsity: float,
                key: jax.Array, scope: str = "global") -> np.ndarray:
    """Keep a uniformly random subset of the alive weights of the budgeted size.

    Args:
        alive: ``(P,)`` bool, currently unpruned.
        layer_slices: ``{layer: slice}`` into the flat weights (used by ``scope="layer"``).
        target_sparsity: fraction of all weights (of each layer) to prune, in ``[0, 1)``.
        key: PRNG key (keyword-only) of the random order.
        scope: ``"global"`` (one budget) or ``"layer"`` (the same sparsity per layer).

    Returns:
        ``(P,)`` bool keep-mask, a subset of ``alive``.
    """
    key = _keys.check_key(key, where="random_keep")
    # a random permutation as scores: distinct ranks, so every subset of the budgeted
    # size among the alive weights is equally likely (no ties left to break by position)
    scores = np.asarray(jax.random.permutation(key, int(np.shape(alive)[0])), np.float64)
    return _budget_keep(scores, alive, layer_slices, target_sparsity, scope)


def _budget_keep(scores, alive, layer_slices, target_sparsity, scope):
    if scope not in ("global", "layer"):
        raise ValueError(f"scope must be 'global' or 'layer', got {scope!r}")
    if not 0.0 <= target_sparsity < 1.0:
        raise ValueError(f"target_sparsity must be in [0, 1), got {target_sparsity}")
    alive = np.asarray(alive, bool)
    P = alive.shape[0]
    groups = {"all": slice(0, P)} if scope == "global" else layer_slices
    keep = np.zeros(P, bool)
    for sl in groups.values():
        n_keep = int(round((1.0 - target_sparsity) * (sl.stop - sl.start)))
        keep[sl] = keep_top(scores[sl], alive[sl], n_keep)
    return keep
