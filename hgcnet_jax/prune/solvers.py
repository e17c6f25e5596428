r"""The Lasso in JAX, with scikit-learn's objective and a duality-gap certificate.

Every solver here minimises exactly scikit-learn's ``Lasso(fit_intercept=False)``
objective

.. math::

    P(w) = \frac{1}{2n}\,\lVert y - Xw \rVert_2^2 + \alpha \lVert w \rVert_1 ,

so coefficients, objectives and duality gaps compare one to one.

**Certificate.** With the residual :math:`R = y - Xw`, the dual point is the
rescaled residual :math:`\nu = sR`, :math:`s = \min(1, n\alpha / \lVert X^\top R
\rVert_\infty)` (feasible: :math:`\lVert X^\top\nu\rVert_\infty \le n\alpha`), the dual
objective is :math:`D(\nu) = (y^\top\nu - \lVert\nu\rVert^2/2)/n`, and the duality gap
:math:`P(w) - D(\nu) \ge P(w) - P(w^\star) \ge 0` bounds the sub-optimality. It equals
scikit-learn's ``Lasso.dual_gap_`` (which its Cython solver computes for :math:`nP`
and then divides by :math:`n`). A fit is
*converged* when ``gap <= tol * ||y||^2 / n``, which is scikit-learn's stopping rule for
the same ``tol``.

**The certificate in finite precision.** With :math:`c = X^\top R/n`, the identity
:math:`y^\top R/n = \lVert R\rVert^2/n + w^\top c` turns the gap into a sum of two
non-negative terms,

.. math:: \mathrm{gap} = \tfrac12 (1-s)^2\,\lVert R\rVert^2/n + \bigl(\alpha\lVert w\rVert_1 - s\,w^\top c\bigr),

which is how every solver here computes it: no difference of two numbers of the size
of :math:`\lVert y\rVert^2/n` is formed, so its rounding error scales with
:math:`\alpha\lVert w\rVert_1`, not with :math:`\lVert y\rVert^2/n`. Every solver
stops on the *same* certificate it reports (statistics recomputed, not carried), so
the stopping rule and ``converged`` cannot disagree. Below a certain gap the arithmetic
of the dtype cannot go: when the gap has not reached a new low for several checks
while it is within ``max(64, sqrt(p)) * eps * ||y||^2 / n`` of zero, the solver stops
with ``status == STATUS_PRECISION`` (:data:`STATUSES`) instead of running out of
iterations, and the warning names the dtype and how to compute in float64
(``jax.config.update("jax_enable_x64", True)``). A ``tol`` below the dtype's machine
epsilon cannot be certified at all and always warns (:class:`LassoPrecisionWarning`).
A fit that stops before its tolerance emits :class:`LassoConvergenceWarning`.

**Solvers** (``solver=``):

* ``"ws"`` — working sets with Gap Safe screening (Fercoq, Gramfort & Salmon 2015;
  Massias, Gramfort & Salmon 2018, "Celer"). An outer loop on the host computes the
  full correlation :math:`X^\top R`, the gap and the safe radius
  :math:`r = \sqrt{2\,\mathrm{gap}/n}/\alpha`; features with
  :math:`|x_j^\top\theta| + r\lVert x_j\rVert < 1` (:math:`\theta = \nu/(n\alpha)`) are
  provably zero and dropped; the working set is the current support plus the
  features closest to the dual constraint. The inner coordinate-descent solve works on
  a working set padded to a fixed capacity per design shape (twice the largest
  possible support, ``2 min(n, p)``, as a power of two) with the products over the
  padding skipped, so it compiles **once per design shape**, whatever the working-set
  sizes of the outer steps. The default for concrete (non-traced) inputs.
* ``"cd"`` — cyclic coordinate descent in covariance form on the Gram matrix
  :math:`G = X^\top X/n` (the form that also works from streamed sufficient statistics;
  see :func:`lasso_gram`). Memory :math:`O(p^2)`. jit-able.
* ``"fista"`` — accelerated proximal gradient (Beck & Teboulle 2009) with
  gradient-based adaptive restart (O'Donoghue & Candès 2015). Memory :math:`O(np)`. jit-able.
* ``"sgd"`` — the truncated-gradient (cumulative L1 penalty) SGD of Tsuruoka, Tsujii &
  Ananiadou (2009) that the Granger-pruning authors used, with scikit-learn's
  ``SGDRegressor(penalty='l1')`` schedule :math:`\eta_t = \eta_0 / t^{0.25}` and stopping
  rule. Kept for fidelity, never the default: it returns non-sparse, unconverged
  solutions on ill-scaled problems, which its certificate then reports.
* ``"auto"`` — ``"ws"`` for concrete inputs; under ``jit``/``vmap`` ``"cd"`` when
  :math:`p \le 4096`, else ``"fista"``.

A solver's own options travel with it, in the manner of optax's aliases: ``solver=``
takes a name (the solver with its defaults) or an options value —
:class:`WorkingSet`, :class:`CoordinateDescent`, :class:`Fista`, :class:`TruncatedSGD`
— e.g. ``lasso(X, y, a, solver=TruncatedSGD(eta0=0.05))``.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from functools import partial
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, Int

__all__ = [
    "lasso_batch",
    "LassoResult",
    "LassoPath",
    "WorkingSet",
    "CoordinateDescent",
    "Fista",
    "TruncatedSGD",
    "LassoConvergenceWarning",
    "LassoPrecisionWarning",
    "STATUSES",
    "STATUS_CONVERGED",
    "STATUS_MAX_ITER",
    "STATUS_PRECISION",
    "lasso",
    "lasso_gram",
    "lasso_path",
    "lasso_objective",
    "lasso_duality_gap",
    "alpha_max",
    "alpha_for_sparsity",
    "soft_threshold",
]

SOLVERS = ("auto", "ws", "cd", "fista", "sgd")

#: ``LassoResult.status`` codes: the tolerance was met; the iteration budget ran out
#: while the gap was still falling; the gap stopped falling at the dtype's rounding floor.
STATUS_CONVERGED, STATUS_MAX_ITER, STATUS_PRECISION = 0, 1, 2
STATUSES = ("converged", "max_iter", "precision")
_PATIENCE = 10          # checks without a new lowest gap before a floor is declared
_FLOOR_EPS = 64.0       # the floor is max(_FLOOR_EPS, sqrt(p)) * eps * ||y||^2 / n
_UNROLL = 4             # coordinate updates per loop step of the working-set CD


# ---------------------------------------------------------------------------
# Solver options (one frozen value per solver; the name alone means its defaults)
# ---------------------------------------------------------------------------


def _positive_int(obj, field: str) -> None:
    v = getattr(obj, field)
    if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
        raise ValueError(f"{type(obj).__name__}.{field}: must be a positive int, got {v!r}")


@dataclasses.dataclass(frozen=True)
class WorkingSet:
    """Options of ``solver="ws"`` (working sets with Gap Safe screening; module docstring).

    Attributes:
        max_iter: coordinate epochs summed over the inner solves.
        ws_start: the first working set's size (rounded up to a power of two).
        max_outer: outer (working-set) steps.
        inner_ratio: an inner solve stops at ``inner_ratio`` times the current full gap.
    """

    max_iter: int = 10_000
    ws_start: int = 256
    max_outer: int = 50
    inner_ratio: float = 0.02
    name: ClassVar[str] = "ws"

    def __post_init__(self):
        for f in ("max_iter", "ws_start", "max_outer"):
            _positive_int(self, f)
        if not 0.0 < self.inner_ratio < 1.0:
            raise ValueError(f"WorkingSet.inner_ratio: must be in (0, 1), got {self.inner_ratio!r}")


@dataclasses.dataclass(frozen=True)
class CoordinateDescent:
    """Options of ``solver="cd"`` (covariance-form coordinate descent).

    Attributes:
        max_iter: epochs.
    """

    max_iter: int = 1000
    name: ClassVar[str] = "cd"

    def __post_init__(self):
        _positive_int(self, "max_iter")


@dataclasses.dataclass(frozen=True)
class Fista:
    """Options of ``solver="fista"`` (accelerated proximal gradient with restart).

    Attributes:
        max_iter: iterations.
        check_every: iterations between duality-gap certificates.
    """

    max_iter: int = 20_000
    check_every: int = 10
    name: ClassVar[str] = "fista"

    def __post_init__(self):
        _positive_int(self, "max_iter")
        _positive_int(self, "check_every")


@dataclasses.dataclass(frozen=True)
class TruncatedSGD:
    """Options of ``solver="sgd"``: scikit-learn's ``SGDRegressor(penalty='l1')`` schedule.

    Attributes:
        max_iter: epochs.
        eta0, power_t: the step ``eta_t = eta0 / t**power_t``.
        n_iter_no_change, sgd_tol: stop after ``n_iter_no_change`` epochs whose loss did
            not fall by ``sgd_tol * n`` (the solver's own rule; ``tol`` of :func:`lasso`
            only decides the certificate).
    """

    max_iter: int = 1000
    eta0: float = 1e-2
    power_t: float = 0.25
    n_iter_no_change: int = 2
    sgd_tol: float = 1e-4
    name: ClassVar[str] = "sgd"

    def __post_init__(self):
        _positive_int(self, "max_iter")
        _positive_int(self, "n_iter_no_change")
        for f in ("eta0", "power_t", "sgd_tol"):
            v = getattr(self, f)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ValueError(f"TruncatedSGD.{f}: must be a finite number >= 0, got {v!r}")


_OPTIONS = {c.name: c for c in (WorkingSet, CoordinateDescent, Fista, TruncatedSGD)}


def _solver_options(solver, max_iter: int | None, traced: bool, p: int):
    """``(name, options)`` for ``solver=`` (a name or an options value); ``max_iter`` overrides."""
    if isinstance(solver, str):
        if solver not in SOLVERS:
            raise ValueError(f"lasso: solver must be one of {SOLVERS} or an options value "
                             f"({', '.join(c.__name__ for c in _OPTIONS.values())}), got {solver!r}")
        if solver == "auto":
            solver = ("cd" if p <= 4096 else "fista") if traced else "ws"
        opts = _OPTIONS[solver]()
    elif isinstance(solver, tuple(_OPTIONS.values())):
        opts = solver
    else:
        raise ValueError(f"lasso: solver must be one of {SOLVERS} or an options value "
                         f"({', '.join(c.__name__ for c in _OPTIONS.values())}), got {solver!r}")
    if max_iter is not None:
        opts = dataclasses.replace(opts, max_iter=max_iter)
    return opts.name, opts


class LassoConvergenceWarning(UserWarning):
    """A Lasso fit stopped before its duality gap met the tolerance."""


class LassoPrecisionWarning(LassoConvergenceWarning):
    """The tolerance asks for more than the arrays' dtype can certify."""


class LassoResult(NamedTuple):
    """The outcome of one Lasso fit.

    Attributes:
        coef: the coefficients ``w``, shape ``(p,)``.
        objective: ``P(w) = ||y - Xw||^2/(2n) + alpha ||w||_1``.
        duality_gap: ``P(w) - D(nu)`` for the rescaled-residual dual point (>= 0).
        n_iter: epochs (cd, sgd, ws inner epochs summed) or iterations (fista).
        converged: ``duality_gap <= tol * ||y||^2 / n``.
        status: why the solver stopped, an index into :data:`STATUSES`
            (``STATUS_CONVERGED``, ``STATUS_MAX_ITER`` or ``STATUS_PRECISION``: the
            gap stopped falling at the dtype's rounding floor).
    """

    coef: Float[Array, " p"]
    objective: Float[Array, ""]
    duality_gap: Float[Array, ""]
    n_iter: Int[Array, ""]
    converged: Bool[Array, ""]
    status: Int[Array, ""]


class LassoPath(NamedTuple):
    """A regularisation path: one :class:`LassoResult` field per ``alpha``, stacked.

    Attributes:
        alphas: ``(k,)`` regularisation strengths, in the order fitted (decreasing).
        coefs: ``(k, p)``.
        objectives, duality_gaps: ``(k,)``.
        n_iters: ``(k,)``.
        converged: ``(k,)``.
        statuses: ``(k,)`` (:attr:`LassoResult.status`).
    """

    alphas: Float[Array, " k"]
    coefs: Float[Array, "k p"]
    objectives: Float[Array, " k"]
    duality_gaps: Float[Array, " k"]
    n_iters: Int[Array, " k"]
    converged: Bool[Array, " k"]
    statuses: Int[Array, " k"]


# ---------------------------------------------------------------------------
# Shared formulas
# ---------------------------------------------------------------------------


def soft_threshold(z: ArrayLike, t: ArrayLike) -> Array:
    """``sign(z) * max(|z| - t, 0)``, the proximal operator of ``t * |.|``."""
    z = jnp.asarray(z)
    return jnp.sign(z) * jnp.maximum(jnp.abs(z) - t, 0.0)


def lasso_objective(X: ArrayLike, y: ArrayLike, w: ArrayLike, alpha: ArrayLike) -> Array:
    """scikit-learn's Lasso objective ``||y - Xw||^2 / (2n) + alpha * ||w||_1``."""
    X, y, w = jnp.asarray(X), jnp.asarray(y), jnp.asarray(w)
    r = y - X @ w
    return 0.5 * jnp.dot(r, r) / X.shape[0] + alpha * jnp.sum(jnp.abs(w))


def _gap_from_stats(rr: Array, wc: Array, corr_inf: Array, penalty: Array, alpha: Array) -> tuple[Array, Array]:
    r"""Primal objective and duality gap from normalised statistics, without cancellation.

    With :math:`c = X^\top R/n` and the dual scale :math:`s = \min(1, \alpha/\lVert
    c\rVert_\infty)`, :math:`P - D = \tfrac12(1-s)^2 rr + (\text{penalty} - s\,w^\top c)`
    (module docstring): two terms that are each ``>= 0`` in exact arithmetic.

    Args:
        rr: ``||R||^2 / n``. wc: ``w^T c`` with ``c = X^T R / n``.
        corr_inf: the dual norm of ``c`` in the penalty's units — ``||c||_inf`` for the
            Lasso, ``max_g ||c_g|| / sqrt|g|`` for the group Lasso.
        penalty: the penalty's value, ``alpha * ||w||_1`` for the Lasso.
        alpha: the bound ``corr_inf`` must not exceed for ``R`` to be dual feasible.

    Returns:
        ``(primal, gap)``.
    """
    s = jnp.where(corr_inf > alpha, alpha / jnp.maximum(corr_inf, jnp.finfo(rr.dtype).tiny), 1.0)
    primal = 0.5 * rr + penalty
    gap = 0.5 * (1.0 - s) ** 2 * rr + (penalty - s * wc)
    return primal, jnp.maximum(gap, 0.0)


def _lasso_gap(rr: Array, w: Array, c: Array, alpha: Array) -> tuple[Array, Array]:
    """:func:`_gap_from_stats` for the Lasso: ``c = X^T R / n`` and the coefficients ``w``."""
    return _gap_from_stats(rr, jnp.dot(w, c), jnp.max(jnp.abs(c)), alpha * jnp.sum(jnp.abs(w)), alpha)


def _floor(yy: Array, p: int) -> Array:
    """The gap below which the dtype's rounding is no longer small: ``max(64, sqrt p) eps yy``."""
    return max(_FLOOR_EPS, math.sqrt(p)) * jnp.finfo(yy.dtype).eps * yy


def _track(best: Array, since: Array, gap: Array) -> tuple[Array, Array]:
    """The lowest gap so far and the number of checks since it was reached."""
    better = gap < best
    return jnp.minimum(best, gap), jnp.where(better, 0, since + 1)


def _at_floor(best: Array, since: Array, floor: Array) -> Array:
    """The gap has made no new low for ``_PATIENCE`` checks while within the rounding floor."""
    return (since >= _PATIENCE) & (best <= floor)


def _status(gap: Array, tol_abs: Array, stalled: Array) -> Array:
    return jnp.where(gap <= tol_abs, STATUS_CONVERGED, jnp.where(stalled, STATUS_PRECISION, STATUS_MAX_ITER)).astype(jnp.int32)


def lasso_duality_gap(X: ArrayLike, y: ArrayLike, w: ArrayLike, alpha: ArrayLike) -> tuple[Array, Array]:
    """The primal objective and the duality gap of ``w`` (see the module docstring).

    Returns:
        ``(objective, gap)``; ``gap`` equals scikit-learn's ``Lasso.dual_gap_``.
    """
    X, y, w = jnp.asarray(X), jnp.asarray(y), jnp.asarray(w)
    n = X.shape[0]
    r = y - X @ w
    corr = (r @ X) / n
    return _lasso_gap(jnp.dot(r, r) / n, w, corr, alpha)


def alpha_max(X: ArrayLike, y: ArrayLike) -> Array:
    """The smallest ``alpha`` for which ``w = 0`` is optimal: ``||X^T y||_inf / n``."""
    X, y = jnp.asarray(X), jnp.asarray(y)
    return jnp.max(jnp.abs(X.T @ y)) / X.shape[0]


# ---------------------------------------------------------------------------
# Validation and warnings
# ---------------------------------------------------------------------------


def _is_traced(*xs) -> bool:
    return any(isinstance(x, jax.core.Tracer) for x in xs)


def _check_xy(X, y, name: str = "lasso") -> tuple[Array, Array]:
    X = jnp.asarray(X)
    y = jnp.asarray(y)
    if X.ndim != 2:
        raise ValueError(f"{name}: X must be a 2-D (n_samples, n_features) array, got shape {X.shape}")
    if y.ndim != 1 or y.shape[0] != X.shape[0]:
        raise ValueError(
            f"{name}: y must be 1-D with X.shape[0] = {X.shape[0]} entries, got shape {y.shape}"
        )
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"{name}: X must have at least one row and one column, got shape {X.shape}")
    if not jnp.issubdtype(X.dtype, jnp.floating):
        X = X.astype(jnp.result_type(float))
    y = y.astype(X.dtype)
    return X, y


def _check_gram(gram, xty, n, name: str) -> tuple[Array, Array]:
    """Validate sufficient statistics: a square ``gram``, an ``xty`` to match, ``n >= 1`` rows."""
    gram = jnp.asarray(gram)
    if gram.ndim != 2 or gram.shape[0] != gram.shape[1]:
        raise ValueError(f"{name}: gram must be square (p, p), got shape {gram.shape}")
    xty = jnp.asarray(xty, gram.dtype)
    if xty.shape != (gram.shape[0],):
        raise ValueError(f"{name}: xty must have shape ({gram.shape[0]},), got {xty.shape}")
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"{name}: n must be a positive int (rows accumulated), got {n!r}")
    return gram, xty


def _check_alpha(alpha, name: str = "lasso") -> None:
    if not _is_traced(alpha):
        a = np.asarray(alpha)
        if a.ndim != 0 or not np.isfinite(a) or a < 0:
            raise ValueError(f"{name}: alpha must be a finite scalar >= 0, got {alpha!r}")


def _requested_float64(*xs) -> bool:
    """Whether any input asked for float64 that JAX (``jax_enable_x64`` off) will not give."""
    if jax.config.jax_enable_x64:
        return False
    return any(getattr(x, "dtype", None) == np.float64 for x in xs if not _is_traced(x))


_ALTERNATIVE = {"fista": "ws", "sgd": "ws", "cd": "ws"}     # a faster solver on the same (X, y)


def _warn_host(status, gap, target, *, solver: str, tol: float, dtype, requested64: bool) -> None:
    status, gap, target = np.asarray(status), np.asarray(gap), np.asarray(target)
    dt = np.dtype(dtype)
    eps = float(np.finfo(dt).eps)
    below = tol < eps
    ran_out, floor = np.any(status == STATUS_MAX_ITER), np.any(status == STATUS_PRECISION)
    if not (below or ran_out or floor):
        return
    g, t = float(np.max(gap)), float(np.max(target))
    parts = []
    if ran_out and solver == "sgd":
        parts.append(f"did not converge: its own stopping rule (sgd_tol, n_iter_no_change) ended it with the "
                     f"duality gap {g:.3e} > tolerance {t:.3e}")
    elif ran_out:
        parts.append(f"did not converge: the iteration budget ran out with the duality gap {g:.3e} > tolerance {t:.3e}")
    elif floor:
        parts.append(f"did not converge: the duality gap stopped falling at {g:.3e} > tolerance {t:.3e}, "
                     f"the rounding floor of {dt.name} arithmetic on this problem")
    if below:
        parts.append(f"tol={tol:g} is below what {dt.name} can certify (machine epsilon {eps:.1e}), so a gap "
                     f"of {t:.3e} cannot be told from rounding noise")
    if requested64:
        parts.append("the inputs were float64, but jax_enable_x64 is off, so JAX computed in float32")
    fixes = []
    if below or floor:
        if dt != np.float64:
            fixes.append("compute in float64: jax.config.update('jax_enable_x64', True) at start-up, and float64 arrays")
        scale = t / tol if tol > 0 else 0.0                    # ||y||^2 / n
        floor_tol = max(_FLOOR_EPS * eps, g / scale if (floor and scale) else 0.0)
        fixes.append(f"use tol >= {floor_tol:.1e}")
    if ran_out and solver == "sgd":
        fixes.append("use solver='ws' for a certified solution (truncated-gradient SGD does not reach exact zeros "
                     "on ill-scaled problems)")
    elif ran_out:
        fixes.append("raise max_iter")
        if not below:
            fixes.append("loosen tol")
        if solver in _ALTERNATIVE:
            fixes.append(f"use solver={_ALTERNATIVE[solver]!r}")
    msg = f"lasso(solver={solver!r}) " + "; ".join(parts) + ". To fix: " + ", or ".join(fixes) + "."
    warnings.warn(msg, LassoPrecisionWarning if (below or floor) else LassoConvergenceWarning, stacklevel=4)


def _maybe_warn(result: LassoResult, target, solver: str, warn: bool, *, tol: float, requested64: bool = False) -> None:
    """Warn (on the host, also under ``jit``) when ``result`` did not meet ``target`` or ``tol``
    is below the dtype's resolution; the message says why and what to change."""
    if not warn:
        return
    kw = dict(solver=solver, tol=float(tol), dtype=np.dtype(result.duality_gap.dtype), requested64=requested64)
    if _is_traced(result.status, result.duality_gap, target):
        jax.debug.callback(partial(_warn_host, **kw), result.status, result.duality_gap, target)
    else:
        _warn_host(result.status, result.duality_gap, target, **kw)


# ---------------------------------------------------------------------------
# Coordinate descent in covariance form (Gram) — jit-able
# ---------------------------------------------------------------------------


@partial(jax.jit, static_argnames=("max_iter",))
def _cd_gram(gram, xty, yty, w0, alpha, tol_abs, max_iter: int):
    """Cyclic CD on ``G = X^T X / n``, ``q = X^T y / n``, ``yty = y^T y / n``.

    An epoch maintains ``c = q - G w = X^T R / n`` by rank-one updates. The certificate
    after every epoch recomputes ``c`` from ``w`` (one matrix-vector product, cheaper
    than the epoch's ``p`` coordinate updates), so the loop stops on exactly the gap it
    returns and the maintained ``c`` cannot drift from ``w``.

    Returns:
        ``(w, epochs, primal, gap, stalled)``; ``stalled``: the gap stopped falling at
        the dtype's floor before reaching ``tol_abs``.
    """
    p = gram.shape[0]
    diag = jnp.diagonal(gram)
    floor = _floor(yty, p)

    def coord(j, state):
        w, c = state
        gjj = diag[j]
        old = w[j]
        new = jnp.where(gjj > 0, soft_threshold(c[j] + gjj * old, alpha) / jnp.where(gjj > 0, gjj, 1.0), 0.0)
        d = new - old
        c = jax.lax.cond(d != 0, lambda c: c - gram[:, j] * d, lambda c: c, c)
        return w.at[j].set(new), c

    def certificate(w):
        c = xty - gram @ w
        wq = jnp.dot(w, xty)
        rr = jnp.maximum(yty - wq - jnp.dot(w, c), 0.0)
        primal, gap = _lasso_gap(rr, w, c, alpha)
        return c, primal, gap

    def cond(s):
        _, _, it, _, gap, best, since = s
        return (it < max_iter) & (gap > tol_abs) & ~_at_floor(best, since, floor)

    def body(s):
        w, c, it, _, _, best, since = s
        w, _ = jax.lax.fori_loop(0, p, coord, (w, c))
        c, primal, gap = certificate(w)
        best, since = _track(best, since, gap)
        return w, c, it + 1, primal, gap, best, since

    c0, primal0, gap0 = certificate(w0)
    init = (w0, c0, jnp.zeros((), jnp.int32), primal0, gap0, gap0, jnp.zeros((), jnp.int32))
    w, _, it, primal, gap, best, since = jax.lax.while_loop(cond, body, init)
    return w, it, primal, gap, _at_floor(best, since, floor) & (gap > tol_abs)


def lasso_gram(
    gram: Float[ArrayLike, "p p"],
    xty: Float[ArrayLike, " p"],
    yty: ArrayLike,
    n: int,
    alpha: ArrayLike,
    *,
    coef_init: Float[ArrayLike, " p"] | None = None,
    tol: float = 1e-4,
    max_iter: int = 1000,
    warn: bool = True,
) -> LassoResult:
    r"""The Lasso from sufficient statistics, by coordinate descent in covariance form.

    Solves scikit-learn's objective knowing only :math:`X^\top X`, :math:`X^\top y`,
    :math:`y^\top y` and :math:`n` — what the streaming recorder accumulates, in
    :math:`O(p^2)` memory whatever the number of rows. The duality gap is computed from
    the same statistics: :math:`\lVert R\rVert^2 = y^\top y - 2w^\top X^\top y +
    w^\top X^\top X w` and :math:`X^\top R = X^\top y - X^\top X w`.

    Args:
        gram: :math:`X^\top X` (unnormalised), ``(p, p)``.
        xty: :math:`X^\top y` (unnormalised), ``(p,)``.
        yty: :math:`y^\top y`.
        n: number of rows the statistics were accumulated over.
        alpha: the L1 penalty.
        coef_init: warm start (default zeros).
        tol: stop when ``gap <= tol * yty / n`` (scikit-learn's rule).
        max_iter: maximum epochs.
        warn: emit :class:`LassoConvergenceWarning` when not converged (saying why).

    Returns:
        A :class:`LassoResult`.
    """
    requested64 = _requested_float64(gram, xty, yty)
    gram, xty = _check_gram(gram, xty, n, "lasso_gram")
    _check_alpha(alpha, "lasso_gram")
    dt = gram.dtype
    G, q, yy = gram / n, xty / n, jnp.asarray(yty, dt) / n
    w0 = jnp.zeros_like(q) if coef_init is None else jnp.asarray(coef_init, dt)
    alpha = jnp.asarray(alpha, dt)
    tol_abs = tol * yy
    w, it, obj, gap, stalled = _cd_gram(G, q, yy, w0, alpha, tol_abs, max_iter)
    res = LassoResult(w, obj, gap, it, gap <= tol_abs, _status(gap, tol_abs, stalled))
    _maybe_warn(res, tol_abs, "cd-gram", warn, tol=tol, requested64=requested64)
    return res


# ---------------------------------------------------------------------------
# FISTA — jit-able
# ---------------------------------------------------------------------------


def _lipschitz(X: Array, n_iter: int = 50) -> Array:
    """Largest eigenvalue of ``X^T X / n`` by power iteration (with a 2 % safety margin)."""
    n, p = X.shape
    v = jnp.ones((p,), X.dtype) / math.sqrt(p)

    def body(_, v):
        u = X.T @ (X @ v)
        return u / jnp.maximum(jnp.linalg.norm(u), jnp.finfo(X.dtype).tiny)

    v = jax.lax.fori_loop(0, n_iter, body, v)
    lam = jnp.linalg.norm(X @ v) ** 2 / n
    return 1.02 * lam + jnp.finfo(X.dtype).tiny


def _lipschitz_gram(G: Array, n_iter: int = 50) -> Array:
    """Largest eigenvalue of a normalised Gram ``G = X^T X / n`` (2 % safety margin)."""
    p = G.shape[0]
    v = jnp.ones((p,), G.dtype) / math.sqrt(p)

    def body(_, v):
        u = G @ v
        return u / jnp.maximum(jnp.linalg.norm(u), jnp.finfo(G.dtype).tiny)

    v = jax.lax.fori_loop(0, n_iter, body, v)
    return 1.02 * jnp.dot(v, G @ v) + jnp.finfo(G.dtype).tiny


def fista_loop(w0, grad, prox, certificate, step, tol_abs, floor, max_iter: int, check_every: int = 10):
    """Accelerated proximal gradient (Beck & Teboulle 2009) with gradient-based restart.

    The one FISTA of this package: the Lasso (``solver="fista"``) and the group Lasso
    (from the design or from sufficient statistics) differ only in the three functions
    they pass. Call it inside a jitted function; it is a ``lax.while_loop``.

    Args:
        w0: the starting point.
        grad: ``z -> ∇f(z)`` of the smooth part.
        prox: ``v -> prox_{step * penalty}(v)``.
        certificate: ``w -> (primal, gap)``, checked every ``check_every`` iterations;
            the loop stops on the gap it returns, so stopping and reporting agree.
        step: ``1 / L``.
        tol_abs: stop when ``gap <= tol_abs``.
        floor: the dtype's rounding floor of the gap (see the module docstring).
        max_iter: iterations.
        check_every: iterations between certificates.

    Returns:
        ``(w, iterations, primal, gap, stalled)``; ``stalled``: the gap stopped falling
        within ``floor`` before reaching ``tol_abs``.
    """

    def one(state):
        w, z, t = state
        w_new = prox(z - step * grad(z))
        restart = jnp.dot(z - w_new, w_new - w) > 0        # O'Donoghue & Candès (2015)
        t = jnp.where(restart, 1.0, t)
        t_new = 0.5 * (1.0 + jnp.sqrt(1.0 + 4.0 * t * t))
        z_new = jnp.where(restart, w_new, w_new + ((t - 1.0) / t_new) * (w_new - w))
        return w_new, z_new, t_new

    def cond(s):
        *_, it, _, gap, best, since = s
        return (it < max_iter) & (gap > tol_abs) & ~_at_floor(best, since, floor)

    def body(s):
        w, z, t, it, _, _, best, since = s
        w, z, t = jax.lax.fori_loop(0, check_every, lambda _, st: one(st), (w, z, t))
        primal, gap = certificate(w)
        best, since = _track(best, since, gap)
        return w, z, t, it + check_every, primal, gap, best, since

    primal0, gap0 = certificate(w0)
    zero = jnp.zeros((), jnp.int32)
    init = (w0, w0, jnp.ones((), w0.dtype), zero, primal0, gap0, gap0, zero)
    w, _, _, it, primal, gap, best, since = jax.lax.while_loop(cond, body, init)
    return w, it, primal, gap, _at_floor(best, since, floor) & (gap > tol_abs)


@partial(jax.jit, static_argnames=("max_iter", "check_every"))
def _fista(X, y, w0, alpha, tol_abs, max_iter: int, check_every: int = 10):
    n, p = X.shape
    step = 1.0 / _lipschitz(X)

    def certificate(w):
        r = y - X @ w
        return _lasso_gap(jnp.dot(r, r) / n, w, (r @ X) / n, alpha)

    return fista_loop(w0, lambda z: -((y - X @ z) @ X) / n,    # (r @ X, not X.T @ r: no transposed copy on CPU)
                      lambda v: soft_threshold(v, alpha * step), certificate, step, tol_abs,
                      _floor(jnp.dot(y, y) / n, p), max_iter, check_every)


# ---------------------------------------------------------------------------
# Truncated-gradient SGD (Tsuruoka et al. 2009) — jit-able
# ---------------------------------------------------------------------------


@partial(jax.jit, static_argnames=("max_iter", "n_iter_no_change"))
def _sgd_truncated(X, y, w0, alpha, key, eta0, power_t, sgd_tol, max_iter: int, n_iter_no_change: int):
    """scikit-learn's SGDRegressor(penalty='l1', learning_rate='invscaling') algorithm.

    Per sample: ``w += eta_t (y_i - x_i.w) x_i``; then the cumulative penalty
    ``u += eta_t alpha`` is applied with the clipping of Tsuruoka et al. (2009), so that
    a weight never crosses zero because of the penalty and ``q_j`` tracks the penalty
    actually applied to weight ``j``.
    """
    n, p = X.shape
    dt = X.dtype

    def sample(carry, i):
        w, u, q, t, loss = carry
        x = X[i]
        eta = eta0 / jnp.power(t, power_t)
        err = y[i] - jnp.dot(x, w)
        w = w + eta * err * x
        u = u + eta * alpha
        z = w
        w = jnp.where(z > 0, jnp.maximum(0.0, z - (u + q)), jnp.where(z < 0, jnp.minimum(0.0, z + (u - q)), z))
        q = q + (w - z)
        return (w, u, q, t + 1.0, loss + 0.5 * err * err), None

    def cond(s):
        _, _, _, _, ep, _, no_imp, _ = s
        return (ep < max_iter) & (no_imp < n_iter_no_change)

    def body(s):
        w, u, q, t, ep, best, no_imp, key = s
        key, sub = jax.random.split(key)
        order = jax.random.permutation(sub, n)
        (w, u, q, t, loss), _ = jax.lax.scan(sample, (w, u, q, t, jnp.zeros((), dt)), order)
        worse = loss > best - sgd_tol * n
        no_imp = jnp.where(worse, no_imp + 1, 0)
        best = jnp.minimum(best, loss)
        return w, u, q, t, ep + 1, best, no_imp, key

    init = (w0, jnp.zeros((), dt), jnp.zeros_like(w0), jnp.ones((), dt), jnp.zeros((), jnp.int32),
            jnp.asarray(jnp.inf, dt), jnp.zeros((), jnp.int32), key)
    w, *_, ep, _, _, _ = jax.lax.while_loop(cond, body, init)
    return w, ep


# ---------------------------------------------------------------------------
# Working sets + Gap Safe screening (host outer loop, jitted inner CD)
# ---------------------------------------------------------------------------


def _dual_value(rr, yr, corr_inf, alpha):
    """``D(s rho)`` for a residual-like vector ``rho`` rescaled to be dual feasible."""
    s = jnp.where(corr_inf > alpha, alpha / jnp.maximum(corr_inf, jnp.finfo(rr.dtype).tiny), 1.0)
    return s * yr - 0.5 * s * s * rr


def _spd_solve_small(M, b):
    """Solve ``M z = b`` for a tiny SPD ``M`` by conjugate gradients (exact in ``m`` steps).

    (``jnp.linalg.solve`` costs seconds of XLA compile time on CPU; this loop costs little.)
    """
    tiny = jnp.finfo(M.dtype).tiny

    def step(_, st):
        z, r, d, rr = st
        Md = M @ d
        a = rr / jnp.maximum(jnp.dot(d, Md), tiny)
        z, r = z + a * d, r - a * Md
        rr_new = jnp.dot(r, r)
        return z, r, r + (rr_new / jnp.maximum(rr, tiny)) * d, rr_new

    z0 = jnp.zeros_like(b)
    z, *_ = jax.lax.fori_loop(0, 2 * M.shape[0], step, (z0, b, b, jnp.dot(b, b)))
    return z


def _anderson(buf):
    """Anderson extrapolation of the last residuals ``buf`` (``(m, n)``, oldest first).

    Solves ``min ||sum_k c_k (r_{k+1} - r_k)||`` s.t. ``sum c = 1`` and returns
    ``sum_k c_k r_{k+1}`` — the dual extrapolation of Massias et al. (2018). Falls back
    to the newest residual when the small system is singular.
    """
    acc, _ = _anderson_coef(buf)
    return acc


def _anderson_coef(buf):
    """:func:`_anderson` with its weights ``c`` (``(m - 1,)``, summing to 1; the newest
    iterate's one-hot when the extrapolation is not finite)."""
    U = buf[1:] - buf[:-1]
    M = U @ U.T
    M = M + 1e-12 * jnp.trace(M) * jnp.eye(M.shape[0], dtype=M.dtype)
    z = _spd_solve_small(M, jnp.ones((M.shape[0],), M.dtype))
    c = z / jnp.sum(z)
    acc = c @ buf[1:]
    ok = jnp.all(jnp.isfinite(acc)) & jnp.all(jnp.isfinite(c))
    onehot = jnp.zeros_like(c).at[-1].set(1.0)
    return jnp.where(ok, acc, buf[-1]), jnp.where(ok, c, onehot)


_ROW_BLOCK = 128


def _rows_matvec(Xt, v, k_valid):
    """``Xt @ v`` when only the first ``k_valid`` rows of ``Xt`` are nonzero (the rest: 0).

    The product runs over whole blocks of ``_ROW_BLOCK`` rows up to ``k_valid`` (a
    dynamic trip count), so a working set padded to a fixed capacity costs what its
    real size costs, and one program serves every working-set size.
    """
    K = Xt.shape[0]
    if K <= _ROW_BLOCK or K % _ROW_BLOCK:
        return Xt @ v

    def body(b, c):
        blk = jax.lax.dynamic_slice_in_dim(Xt, b * _ROW_BLOCK, _ROW_BLOCK, 0)
        return jax.lax.dynamic_update_slice_in_dim(c, blk @ v, b * _ROW_BLOCK, 0)

    return jax.lax.fori_loop(0, (k_valid + _ROW_BLOCK - 1) // _ROW_BLOCK, body, jnp.zeros((K,), Xt.dtype))


def _rows_rmatvec(w, Xt, k_valid):
    """``w @ Xt`` over the first ``k_valid`` rows (see :func:`_rows_matvec`)."""
    K = Xt.shape[0]
    if K <= _ROW_BLOCK or K % _ROW_BLOCK:
        return w @ Xt

    def body(b, acc):
        blk = jax.lax.dynamic_slice_in_dim(Xt, b * _ROW_BLOCK, _ROW_BLOCK, 0)
        return acc + jax.lax.dynamic_slice_in_dim(w, b * _ROW_BLOCK, _ROW_BLOCK, 0) @ blk

    return jax.lax.fori_loop(0, (k_valid + _ROW_BLOCK - 1) // _ROW_BLOCK, body, jnp.zeros((Xt.shape[1],), Xt.dtype))


@partial(jax.jit, static_argnames=("active_epochs",))
def _cd_residual(Xt, y, w, alpha, tol_abs, max_epochs, k_valid=None, active_epochs: int = 5):
    """CD in residual form on a (padded) working set ``Xt = X_ws^T`` of shape ``(K, n)``.

    Each round is one epoch over the coordinates that can move — the current support
    and the *violators*, the zeros with :math:`|x_j^\top R|/n > \alpha` (a zero
    coordinate whose correlation is inside the threshold stays zero when updated, so
    skipping it changes nothing) — followed by ``active_epochs`` epochs over the
    support alone (the active-set cycling of glmnet). After every round the round's
    ``1 + active_epochs`` iterates are Anderson-extrapolated (Bertrand & Massias 2021):
    the extrapolated coefficients replace the iterate when they lower the objective.
    Then the gap on the working set is checked with the better of two dual points: the
    rescaled residual and, when the extrapolation was not taken, the extrapolated
    residual (the dual extrapolation of Massias et al. 2018). Padded rows of ``Xt``
    are zero; their coefficient stays 0. With ``k_valid`` only the first ``k_valid`` rows
    are real: the products with ``Xt`` stop there (:func:`_rows_matvec`).

    The loop also ends when the working-set gap has stopped falling at the dtype's
    rounding floor (module docstring): the outer loop then decides on the full gap.

    Returns:
        ``(w, r, epochs)``: coefficients, residual ``y - Xt^T w`` and the number of
        coordinate epochs (rounds x (1 + active)).
    """
    K, n = Xt.shape
    kv = jnp.asarray(K if k_valid is None else k_valid, jnp.int32)
    norms = jnp.sum(Xt * Xt, axis=1) / n
    inv = 1.0 / jnp.where(norms > 0, norms, 1.0)
    r0 = y - _rows_rmatvec(w, Xt, kv)

    def update(j, valid, w, r):
        xj = Xt[j]
        old = w[j]
        z = old + jnp.dot(xj, r) * (inv[j] / n)
        new = jnp.where(norms[j] > 0, soft_threshold(z, alpha * inv[j]), 0.0)
        new = jnp.where(valid, new, old)
        # Unconditional update (a lax.cond here costs more than the axpy it saves).
        return w.at[j].set(new), r - xj * (new - old)

    def sweep(act, count, st):
        # The first ``count`` coordinates of ``act``, in order, _UNROLL per loop step
        # (the loop's per-iteration overhead is most of a coordinate's cost on CPU;
        # the steps past ``count`` leave their coordinate as it is).
        def block(b, st):
            for u in range(_UNROLL):
                i = b * _UNROLL + u
                st = update(act[jnp.minimum(i, K - 1)], i < count, *st)
            return st

        return jax.lax.fori_loop(0, (count + _UNROLL - 1) // _UNROLL, block, st)

    def round_(violators, st):
        # Epoch 0 over the support and the violators, then the support alone; one
        # loop body for both (each compiled copy of it costs ~0.5 s of XLA time).
        # The iterate after every epoch is kept for the extrapolation.
        def epoch(e, carry):
            st, wb, rb = carry
            mask = jnp.where(e == 0, violators | (st[0] != 0), st[0] != 0)
            act = jnp.argsort(~mask, stable=True)        # the masked indices first, in order
            st = sweep(act, jnp.sum(mask), st)
            return st, wb.at[e].set(st[0]), rb.at[e].set(st[1])

        wb0 = jnp.zeros((1 + active_epochs, K), Xt.dtype)
        rb0 = jnp.zeros((1 + active_epochs, n), Xt.dtype)
        return jax.lax.fori_loop(0, 1 + active_epochs, epoch, (st, wb0, rb0))

    def primal_of(w, r):
        return 0.5 * jnp.dot(r, r) / n + alpha * jnp.sum(jnp.abs(w))

    def gap_of(w, r, c, r_acc, c_acc):
        primal, gap = _lasso_gap(jnp.dot(r, r) / n, w, c, alpha)
        d2 = _dual_value(jnp.dot(r_acc, r_acc) / n, jnp.dot(y, r_acc) / n, jnp.max(jnp.abs(c_acc)), alpha)
        return jnp.minimum(gap, jnp.maximum(primal - d2, 0.0))

    floor = _floor(jnp.dot(y, y) / n, K)

    def cond(s):
        ep, gap, best, since = s[2], s[3], s[5], s[6]
        return (ep < max_epochs) & (gap > tol_abs) & ~_at_floor(best, since, floor)

    def body(s):
        w, r, ep, _, c, best, since = s
        (w, r), wb, rb = round_(jnp.abs(c) > alpha, (w, r))
        # Anderson acceleration over the round's support epochs (Bertrand & Massias
        # 2021): the weights that extrapolate the residuals extrapolate the
        # coefficients too (R is affine in w, and the weights sum to 1). The
        # extrapolated point is kept when it lowers the objective, with its residual
        # recomputed exactly; otherwise its residual still serves as a second dual
        # point (the dual extrapolation of Massias et al. 2018).
        r_acc, coef = _anderson_coef(rb)
        w_acc = coef @ wb[1:]
        took = primal_of(w_acc, r_acc) < primal_of(w, r)
        w, r = jax.lax.cond(took, lambda: (w_acc, y - _rows_rmatvec(w_acc, Xt, kv)), lambda: (w, r))
        c = _rows_matvec(Xt, r, kv) / n
        _, gap = _lasso_gap(jnp.dot(r, r) / n, w, c, alpha)
        # The extrapolated residual as a second dual point costs a second pass over
        # Xt; it can only end the loop sooner, so it is tried within 100x of the tolerance.
        gap = jax.lax.cond(~took & (gap <= 100.0 * tol_abs),
                           lambda: gap_of(w, r, c, r_acc, _rows_matvec(Xt, r_acc, kv) / n),
                           lambda: gap)
        best, since = _track(best, since, gap)
        return w, r, ep + 1 + active_epochs, gap, c, best, since

    c0 = _rows_matvec(Xt, r0, kv) / n
    gap0 = gap_of(w, r0, c0, r0, c0)
    zero = jnp.zeros((), jnp.int32)
    init = (w, r0, zero, gap0, c0, gap0, zero)
    w, r, ep, *_ = jax.lax.while_loop(cond, body, init)
    return w, r, ep


def _full_gap(X, y, r, w, alpha):
    """Objective, gap and ``X^T R / n`` on the full problem from the residual ``R``.

    One pass over ``X`` (``r @ X``, not ``X.T @ r``: no transposed copy on CPU).
    """
    n = X.shape[0]
    corr = (r @ X) / n
    primal, gap = _lasso_gap(jnp.dot(r, r) / n, w, corr, alpha)
    return primal, gap, corr


@partial(jax.jit, static_argnames=("zero_start",))
def _ws_prepare(X, y, w, alpha, zero_start: bool):
    """The starting residual, objective, gap, correlations and column norms, in one pass.

    The correlations and the squared column norms are accumulated row by row in a
    single sweep over ``X`` (unrolled, so XLA:CPU fuses it into one streaming loop);
    a column reduction ``sum(X * X, axis=0)`` costs 40x more there.
    """
    n, p = X.shape
    r = y if zero_start else y - X @ w

    def row(i, acc):
        x = X[i]
        return acc[0] + r[i] * x, acc[1] + x * x

    zeros = jnp.zeros((p,), X.dtype)
    corr, sq = jax.lax.fori_loop(0, n, row, (zeros, zeros), unroll=16)
    corr = corr / n
    primal, gap = _lasso_gap(jnp.dot(r, r) / n, w, corr, alpha)
    return primal, gap, corr, jnp.sqrt(sq)


@jax.jit
def _ws_solve(X, y, w, idx_pad, k_valid, alpha, inner_tol, max_epochs):
    """Solve the Lasso restricted to ``idx_pad[:k_valid]`` (sorted, padded with the out-of-range index p).

    ``idx_pad`` has the problem's fixed working-set capacity (:func:`_ws_capacity`), so
    one program serves every working-set size of a design shape.

    The caller guarantees that the support of ``w`` lies inside the working set, so
    the rest of ``w`` is zero and ``y`` is the working set's target as it stands.
    Sorted indices make the column gather stream through ``X`` in order (1.7x faster
    than a random order for 1,024 of 20,000 columns).
    """
    Xt = jnp.take(X, idx_pad, axis=1, mode="fill", fill_value=0.0).T
    w_ws = w.at[idx_pad].get(mode="fill", fill_value=0.0)
    w_ws, r, ep = _cd_residual(Xt, y, w_ws, alpha, inner_tol, max_epochs, k_valid)
    w = jnp.zeros_like(w).at[idx_pad].set(w_ws, mode="drop")
    obj, gap, corr = _full_gap(X, y, r, w, alpha)
    return w, ep, obj, gap, corr


def _next_pow2(k: int) -> int:
    return 1 << max(0, int(k - 1).bit_length())


def _ws_capacity(n: int, p: int, ws_start: int) -> int:
    """The fixed working-set capacity of an ``(n, p)`` problem: the whole problem when it is
    small, else room for twice the largest support a Lasso solution has (at most ``n``
    nonzeros, Tibshirani 2013) and at least ``ws_start``, as a power of two."""
    return min(_next_pow2(p), max(_next_pow2(ws_start), _next_pow2(2 * min(n, p))))


class _WSOuter:
    """The host side of one working-set solve: stopping, Gap Safe screening, the next working set.

    Shared by :func:`_lasso_ws` (one problem) and :func:`_lasso_ws_batch` (a batch of
    problems solved by one vmapped inner program, each with its own outer state).
    """

    def __init__(self, n, p, alpha, tol_abs, max_iter, col_norm, floor, *, ws_start, inner_ratio):
        self.n, self.p = n, p
        self.cap = _ws_capacity(n, p, ws_start)
        self.alpha, self.tol, self.max_iter = float(alpha), float(tol_abs), int(max_iter)
        self.col_norm, self.floor = np.asarray(col_norm), float(floor)
        self.ws_start, self.inner_ratio = ws_start, inner_ratio
        self.prev_gap = self.best = math.inf
        self.since = 0                   # outer steps since the lowest full gap
        self.stalled = False
        self.K = 0
        self.epochs = 0
        self.done = False
        self.g = math.inf

    def plan(self, gap, corr, w):
        """The next inner solve ``(idx, w, inner_tol, max_epochs)``, or ``None`` when finished.

        ``w`` is returned with the provably-zero features zeroed (``None``: unchanged).
        """
        g = self.g = float(gap)
        self.since = 0 if g < self.best else self.since + 1
        self.best = min(self.best, g)
        p, alpha_f = self.p, self.alpha
        # The working set is the whole problem, or three steps made no new low, at the floor.
        self.stalled = self.best <= self.floor and (self.since >= 3 or (self.K >= p and self.since >= 1))
        if g <= self.tol or self.epochs >= self.max_iter or self.stalled:
            self.done = True
            return None
        w_np = np.asarray(w)
        new_w = None
        if alpha_f == 0.0:
            idx = np.arange(p)                                      # no screening possible
        else:
            corr_np = np.asarray(corr)
            cinf = float(np.max(np.abs(corr_np)))
            sc = min(1.0, alpha_f / cinf) if cinf > 0 else 1.0
            theta_corr = sc * corr_np / alpha_f                      # x_j^T theta, |.| <= 1
            radius = math.sqrt(2.0 * g / self.n) / alpha_f          # Gap Safe sphere radius
            with np.errstate(divide="ignore", invalid="ignore"):
                dist = np.where(self.col_norm > 0, (1.0 - np.abs(theta_corr)) / self.col_norm, np.inf)
            keep = dist <= radius                                   # not safely screened
            if np.any((w_np != 0) & ~keep):
                # Screened features are provably zero at the optimum: zero them now.
                w_np = new_w = np.where(keep, w_np, 0.0)
            support = w_np != 0
            dist[support] = -np.inf                                 # the support is always in
            nnz = int(support.sum())
            # Working-set size: a power of two >= 2 |support|, never shrinking; doubled
            # when the last outer step did not halve the gap (features are missing).
            grow = 2 * self.K if g > 0.5 * self.prev_gap else self.K
            self.K = min(self.cap, max(_next_pow2(max(self.ws_start, 2 * nnz)), grow))
            k = min(self.K, int(keep.sum()))
            if k >= p:
                idx = np.arange(p)
            elif k == 0:
                idx = np.zeros((0,), np.int64)
            else:
                idx = np.sort(np.argpartition(dist, k - 1)[:k])
        if len(idx) > self.cap:                                     # alpha = 0 on a wide problem
            idx = np.sort(idx[np.argsort(np.where(w_np[idx] != 0, -np.inf, -np.abs(np.asarray(corr)[idx])))[: self.cap]])
        inner_tol = max(self.inner_ratio * g, 0.1 * self.tol)
        self.prev_gap = g
        return idx, new_w, inner_tol, max(1, self.max_iter - self.epochs)

    def padded(self, idx) -> np.ndarray:
        """``idx`` padded to the fixed capacity with the out-of-range index p (gathers fill 0, scatters drop it)."""
        return np.concatenate([idx, np.full(self.cap - len(idx), self.p)]).astype(np.int32)

    def status(self, gap) -> int:
        g = float(gap)
        if g <= self.tol:
            return STATUS_CONVERGED
        at_floor = (self.stalled or min(self.best, g) <= self.floor) and self.epochs < self.max_iter
        return STATUS_PRECISION if at_floor else STATUS_MAX_ITER


def _lasso_ws(X, y, w0, alpha, tol_abs, max_iter, *, ws_start=256, max_outer=50, inner_ratio=0.02):
    n, p = X.shape
    w = jnp.asarray(w0)
    obj, gap, corr, col_norm = _ws_prepare(X, y, w, alpha, zero_start=bool(not np.any(np.asarray(w))))
    outer = _WSOuter(n, p, alpha, tol_abs, max_iter, col_norm, _floor(jnp.dot(y, y) / n, p),
                     ws_start=ws_start, inner_ratio=inner_ratio)
    for _ in range(max_outer):
        step = outer.plan(gap, corr, w)
        if step is None:
            break
        idx, new_w, inner_tol, max_ep = step
        if new_w is not None:
            w = jnp.asarray(new_w, X.dtype)
        w, ep, obj, gap, corr = _ws_solve(X, y, w, jnp.asarray(outer.padded(idx)), jnp.asarray(len(idx), jnp.int32),
                                          alpha, jnp.asarray(inner_tol, X.dtype), jnp.asarray(max_ep, jnp.int32))
        outer.epochs += int(ep)
    return w, obj, gap, outer.epochs, outer.status(gap)


_ws_prepare_batch = jax.jit(jax.vmap(lambda X, y, w, a: _ws_prepare(X, y, w, a, zero_start=True)))
_ws_solve_batch = jax.jit(jax.vmap(_ws_solve))


def _lasso_ws_batch(X, y, alpha, tol_abs, max_iter, *, ws_start=256, max_outer=50, inner_ratio=0.02):
    """:func:`_lasso_ws` for a batch of problems of one shape, from zero, one vmapped inner program.

    Every problem keeps its own outer state (screening, working set, stopping); a
    finished problem's lane runs no epochs and keeps its solution.
    """
    S, n, p = X.shape
    w = jnp.zeros((S, p), X.dtype)
    obj, gap, corr, col_norm = _ws_prepare_batch(X, y, w, alpha)
    floors = np.asarray(jax.vmap(lambda v: _floor(jnp.dot(v, v) / n, p))(y))
    col_norm = np.asarray(col_norm)
    outer = [_WSOuter(n, p, float(alpha[s]), float(tol_abs[s]), max_iter, col_norm[s], floors[s],
                      ws_start=ws_start, inner_ratio=inner_ratio) for s in range(S)]
    cap = outer[0].cap
    for _ in range(max_outer):
        w_np, gap_np, corr_np = np.asarray(w), np.asarray(gap), np.asarray(corr)
        steps = [None if o.done else o.plan(gap_np[s], corr_np[s], w_np[s]) for s, o in enumerate(outer)]
        live = np.array([st is not None for st in steps])
        if not live.any():
            break
        idx_pad = np.full((S, cap), p, np.int32)
        kv, itol, mep = np.zeros(S, np.int32), np.zeros(S), np.zeros(S, np.int32)
        for s, st in enumerate(steps):
            if st is None:
                continue                                # max_epochs 0: the lane's inner loop does not run
            idx, new_w, inner_tol, max_ep = st
            if new_w is not None:
                w_np[s] = new_w
            idx_pad[s], kv[s], itol[s], mep[s] = outer[s].padded(idx), len(idx), inner_tol, max_ep
        w_new, ep, obj_new, gap_new, corr_new = _ws_solve_batch(
            X, y, jnp.asarray(w_np, X.dtype), jnp.asarray(idx_pad), jnp.asarray(kv), alpha,
            jnp.asarray(itol, X.dtype), jnp.asarray(mep))
        keep = jnp.asarray(live)
        w = jnp.where(keep[:, None], w_new, jnp.asarray(w_np, X.dtype))
        obj, gap = jnp.where(keep, obj_new, obj), jnp.where(keep, gap_new, gap)
        corr = jnp.where(keep[:, None], corr_new, corr)
        for s in np.flatnonzero(live):
            outer[s].epochs += int(ep[s])
    gap_np = np.asarray(gap)
    return w, obj, gap, np.array([o.epochs for o in outer]), np.array([o.status(gap_np[s]) for s, o in enumerate(outer)])


# ---------------------------------------------------------------------------
# Public entry points
# ---------------------------------------------------------------------------


def lasso(
    X: Float[ArrayLike, "n p"],
    y: Float[ArrayLike, " n"],
    alpha: ArrayLike,
    *,
    solver: str | WorkingSet | CoordinateDescent | Fista | TruncatedSGD = "auto",
    coef_init: Float[ArrayLike, " p"] | None = None,
    tol: float = 1e-4,
    max_iter: int | None = None,
    key: Array | None = None,
    warn: bool = True,
) -> LassoResult:
    r"""Fit scikit-learn's Lasso objective :math:`\lVert y-Xw\rVert^2/(2n) + \alpha\lVert w\rVert_1` (no intercept).

    Args:
        X: design matrix ``(n, p)``.
        y: targets ``(n,)``.
        alpha: L1 penalty (``>= 0``); scale-dependent — see :func:`alpha_max` and
            :func:`alpha_for_sparsity` for scale-free choices.
        solver: ``"auto"``, ``"ws"``, ``"cd"``, ``"fista"`` or ``"sgd"`` (module
            docstring), or a solver's options value (:class:`WorkingSet`,
            :class:`CoordinateDescent`, :class:`Fista`, :class:`TruncatedSGD`).
        coef_init: warm start, ``(p,)``.
        tol: converged when ``gap <= tol * ||y||^2 / n`` (scikit-learn's rule). For
            ``"sgd"`` the solver's own stopping rule (:class:`TruncatedSGD`) ends it;
            ``tol`` only decides the certificate.
        max_iter: overrides the solver's ``max_iter`` — epochs (cd, ws, sgd) or
            iterations (fista); defaults 1000 (cd, sgd), 10000 (ws), 20000 (fista).
        key: PRNG key for ``"sgd"`` (row shuffling); required there.
        warn: emit :class:`LassoConvergenceWarning` when the certificate is not met, and
            :class:`LassoPrecisionWarning` when the dtype cannot certify ``tol`` (the
            message names the dtype and how to compute in float64).

    Returns:
        A :class:`LassoResult` (coef, objective, duality_gap, n_iter, converged, status).

    Raises:
        ValueError: on shapes, a negative alpha, an unknown solver, or ``solver="ws"``
            under ``jit`` (its outer loop runs on the host).
    """
    requested64 = _requested_float64(X, y)
    X, y = _check_xy(X, y)
    _check_alpha(alpha)
    n, p = X.shape
    dt = X.dtype
    w0 = jnp.zeros((p,), dt) if coef_init is None else jnp.asarray(coef_init, dt)
    if w0.shape != (p,):
        raise ValueError(f"lasso: coef_init must have shape ({p},), got {w0.shape}")
    traced = _is_traced(X, y, alpha, w0)
    solver, opts = _solver_options(solver, max_iter, traced, p)
    if solver == "ws" and traced:
        raise ValueError("lasso: solver='ws' runs its outer loop on the host and cannot be traced; "
                         "use solver='cd' or 'fista' under jit/vmap")
    alpha_a = jnp.asarray(alpha, dt)
    tol_abs = tol * jnp.dot(y, y) / n
    if solver == "cd":
        # The Gram solve stops at half the tolerance, so that the certificate recomputed
        # on (X, y) — which rounds differently from the Gram's — meets the tolerance too.
        G = X.T @ X
        inner = lasso_gram(G, X.T @ y, jnp.dot(y, y), n, alpha_a, coef_init=w0, tol=0.5 * tol,
                           max_iter=opts.max_iter, warn=False)
        obj, gap = lasso_duality_gap(X, y, inner.coef, alpha_a)
        # Reaching the inner tolerance or the floor without meeting the outer one is rounding.
        stalled = inner.status != STATUS_MAX_ITER
        res = LassoResult(inner.coef, obj, gap, inner.n_iter, gap <= tol_abs, _status(gap, tol_abs, stalled))
    elif solver == "fista":
        w, it, obj, gap, stalled = _fista(X, y, w0, alpha_a, tol_abs, opts.max_iter, opts.check_every)
        res = LassoResult(w, obj, gap, it, gap <= tol_abs, _status(gap, tol_abs, stalled))
    elif solver == "sgd":
        if key is None:
            raise ValueError("lasso: solver='sgd' shuffles rows and needs key=jax.random.key(...)")
        w, ep = _sgd_truncated(X, y, w0, alpha_a, key, jnp.asarray(opts.eta0, dt), jnp.asarray(opts.power_t, dt),
                               jnp.asarray(opts.sgd_tol, dt), opts.max_iter, opts.n_iter_no_change)
        obj, gap = lasso_duality_gap(X, y, w, alpha_a)
        res = LassoResult(w, obj, gap, ep, gap <= tol_abs, _status(gap, tol_abs, jnp.asarray(False)))
    else:  # ws
        w, obj, gap, ep, status = _lasso_ws(X, y, w0, alpha_a, tol_abs, opts.max_iter, ws_start=opts.ws_start,
                                            max_outer=opts.max_outer, inner_ratio=opts.inner_ratio)
        res = LassoResult(w, jnp.asarray(obj, dt), jnp.asarray(gap, dt), jnp.asarray(ep, jnp.int32),
                          jnp.asarray(status == STATUS_CONVERGED), jnp.asarray(status, jnp.int32))
    _maybe_warn(res, tol_abs, solver, warn, tol=tol, requested64=requested64)
    return res


def lasso_batch(
    X: Float[ArrayLike, "s n p"],
    y: Float[ArrayLike, "s n"],
    alpha: ArrayLike,
    *,
    tol: float = 1e-4,
    max_iter: int | None = None,
    solver: WorkingSet | None = None,
    warn: bool = True,
) -> LassoResult:
    r"""Solve a batch of Lasso problems of one shape at once, each with its own certificate.

    The working-set solver (``solver="ws"`` of :func:`lasso`) with one outer state per
    problem on the host (screening, working set, stopping) and **one vmapped inner
    program** for the whole batch: on a CPU the coordinate updates of the ``s``
    problems run side by side, so the per-update loop overhead is paid once per batch,
    and on an accelerator the batch fills the device. Use it for the Granger fits of
    every seed (and every layer of equal shape) of a pruning step.

    Args:
        X: ``(s, n, p)`` designs.
        y: ``(s, n)`` targets.
        alpha: the penalty, a scalar or ``(s,)`` (``>= 0``).
        tol: each problem is converged when its ``gap <= tol * ||y_i||^2 / n``.
        max_iter: coordinate epochs per problem (default 10000).
        solver: a :class:`WorkingSet` for its options (``ws_start``, ``max_outer``, …).
        warn: as in :func:`lasso`, once per problem that misses its certificate.

    Returns:
        A :class:`LassoResult` whose every field has a leading axis of length ``s``:
        problem ``i``'s coefficients, objective, duality gap, epochs, converged flag and
        status — what :func:`lasso` with ``solver="ws"`` returns for it, to within the
        tolerance.

    Raises:
        ValueError: on shapes, a negative alpha, or traced inputs (the outer loop runs
            on the host).
    """
    requested64 = _requested_float64(X, y)
    X = jnp.asarray(X)
    y = jnp.asarray(y)
    if X.ndim != 3 or y.ndim != 2 or y.shape != X.shape[:2]:
        raise ValueError(f"lasso_batch: need X (s, n, p) and y (s, n), got {X.shape} and {y.shape}")
    if not jnp.issubdtype(X.dtype, jnp.floating):
        X = X.astype(jnp.float32)
    y = y.astype(X.dtype)
    S, n, p = X.shape
    if _is_traced(X, y, alpha):
        raise ValueError("lasso_batch: the outer loop runs on the host and cannot be traced; "
                         "use jax.vmap over lasso(..., solver='cd' or 'fista') under jit")
    a = np.broadcast_to(np.asarray(alpha, np.float64), (S,))
    if np.any(~np.isfinite(a)) or np.any(a < 0):
        raise ValueError(f"lasso_batch: alpha must be finite and >= 0, got {np.asarray(alpha)!r}")
    opts = solver if solver is not None else WorkingSet()
    if not isinstance(opts, WorkingSet):
        raise ValueError(f"lasso_batch: solver must be a WorkingSet (or None), got {solver!r}")
    if max_iter is not None:
        opts = dataclasses.replace(opts, max_iter=int(max_iter))
    yy = jnp.sum(y * y, axis=1) / n
    w, obj, gap, ep, status = _lasso_ws_batch(X, y, jnp.asarray(a, X.dtype), np.asarray(tol * yy, np.float64),
                                              opts.max_iter, ws_start=opts.ws_start, max_outer=opts.max_outer,
                                              inner_ratio=opts.inner_ratio)
    res = LassoResult(w, jnp.asarray(obj, X.dtype), jnp.asarray(gap, X.dtype), jnp.asarray(ep, jnp.int32),
                      jnp.asarray(status == STATUS_CONVERGED), jnp.asarray(status, jnp.int32))
    if warn:
        for i in range(S):
            one = LassoResult(*(f[i] for f in res))
            _maybe_warn(one, tol * yy[i], "ws", True, tol=tol, requested64=requested64)
    return res


def lasso_path(
    X: Float[ArrayLike, "n p"],
    y: Float[ArrayLike, " n"],
    alphas: Float[ArrayLike, " k"] | None = None,
    *,
    n_alphas: int = 20,
    eps: float = 1e-3,
    solver: str | WorkingSet | CoordinateDescent | Fista | TruncatedSGD = "auto",
    tol: float = 1e-4,
    max_iter: int | None = None,
    warn: bool = True,
) -> LassoPath:
    """A regularisation path with warm starts, from the largest ``alpha`` down.

    Args:
        X, y: the problem.
        alphas: strengths to fit; sorted decreasingly before fitting. Default: ``n_alphas``
            values log-spaced from :func:`alpha_max` down to ``eps * alpha_max``
            (scikit-learn's ``lasso_path`` grid).
        solver, tol, max_iter, warn: as in :func:`lasso`.

    Returns:
        A :class:`LassoPath`.
    """
    X, y = _check_xy(X, y, "lasso_path")
    if alphas is None:
        if n_alphas < 1 or not (0 < eps < 1):
            raise ValueError(f"lasso_path: need n_alphas >= 1 and 0 < eps < 1, got {n_alphas}, {eps}")
        amax = float(alpha_max(X, y))
        alphas = np.geomspace(amax, amax * eps, n_alphas)
    alphas = np.sort(np.asarray(alphas, dtype=np.float64).ravel())[::-1]
    if alphas.size == 0 or np.any(alphas < 0):
        raise ValueError("lasso_path: alphas must be a non-empty list of values >= 0")
    w = None
    out = []
    for a in alphas:
        res = lasso(X, y, float(a), solver=solver, coef_init=w, tol=tol, max_iter=max_iter, warn=warn)
        w = res.coef
        out.append(res)
    return LassoPath(
        alphas=jnp.asarray(alphas, X.dtype),
        coefs=jnp.stack([r.coef for r in out]),
        objectives=jnp.stack([r.objective for r in out]),
        duality_gaps=jnp.stack([r.duality_gap for r in out]),
        n_iters=jnp.stack([jnp.asarray(r.n_iter) for r in out]),
        converged=jnp.stack([jnp.asarray(r.converged) for r in out]),
        statuses=jnp.stack([jnp.asarray(r.status) for r in out]),
    )


def alpha_for_sparsity(
    X: Float[ArrayLike, "n p"],
    y: Float[ArrayLike, " n"],
    nnz: int,
    *,
    solver: str | WorkingSet | CoordinateDescent | Fista | TruncatedSGD = "auto",
    tol: float = 1e-4,
    n_bisect: int = 30,
    warn: bool = False,
) -> tuple[float, LassoResult]:
    """The ``alpha`` whose Lasso solution has (about) ``nnz`` nonzero coefficients.

    The number of nonzeros along the path is not monotone in general, so this bisects
    on ``log(alpha)`` between ``alpha_max`` (0 nonzeros) and a small fraction of it,
    with warm starts, and returns the fit with the largest support ``<= nnz`` found
    (ties: the smaller alpha). A Lasso solution has at most ``min(n, p)`` nonzeros
    (for data in general position), so ``nnz`` is clipped to that.

    Args:
        X, y: the problem.
        nnz: the target number of nonzeros (``>= 0``).
        solver, tol, warn: as in :func:`lasso`.
        n_bisect: bisection steps.

    Returns:
        ``(alpha, result)``.
    """
    X, y = _check_xy(X, y, "alpha_for_sparsity")
    if not isinstance(nnz, (int, np.integer)) or nnz < 0:
        raise ValueError(f"alpha_for_sparsity: nnz must be an int >= 0, got {nnz!r}")
    amax = float(alpha_max(X, y))
    if amax == 0.0:
        return 0.0, lasso(X, y, 0.0, solver=solver, tol=tol, warn=warn)
    target = min(int(nnz), min(X.shape))
    hi, lo = math.log(amax), math.log(amax * 1e-6)
    best_a, best = amax, lasso(X, y, amax, solver=solver, tol=tol, warn=warn)
    w = best.coef
    for _ in range(n_bisect):
        mid = 0.5 * (hi + lo)
        res = lasso(X, y, math.exp(mid), solver=solver, tol=tol, coef_init=w, warn=warn)
        k = int(jnp.sum(res.coef != 0))
        if k <= target:
            if k >= int(jnp.sum(best.coef != 0)):
                best_a, best = math.exp(mid), res
            hi = mid
        else:
            lo = mid
        w = res.coef
        if k == target:
            break
    return best_a, best
