"""The Lasso's certificate in finite precision (issue: a fit that converged on one CPU and
not on another).

Every assertion here holds under any IEEE rounding: the certificate bounds the
sub-optimality measured in float64, the cancellation-free gap is the textbook gap, every
fit ends converged or at its dtype's floor (never out of iterations), and a tolerance
below the dtype's resolution warns with the dtype named — whatever the last bit does.
"""

import warnings

import jax.numpy as jnp
import numpy as np
import pytest
from jax import enable_x64

from hgcnet_jax.prune import solvers as L
from hgcnet_jax.prune.structured import group_lasso, group_lasso_gram


def _problem(n, p, k, seed, noise=0.05):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    w = np.zeros(p)
    w[rng.choice(p, k, replace=False)] = rng.standard_normal(k)
    return X, X @ w + noise * rng.standard_normal(n)


def _optimum(X, y, a):
    """P(w*) in float64, to a gap of 1e-15 relative."""
    with enable_x64():
        r = L.lasso(X, y, a, solver="ws", tol=1e-15)
        assert bool(r.converged)
        return float(r.objective)


def _objective64(X, y, w, a):
    w = np.asarray(w, np.float64)
    r = y - X @ w
    return 0.5 * r @ r / X.shape[0] + a * np.abs(w).sum()


def _fit32(X, y, a, solver, tol):
    X32, y32 = X.astype(np.float32), y.astype(np.float32)
    if solver == "gram":
        return L.lasso_gram(X32.T @ X32, X32.T @ y32, float(y32 @ y32), X.shape[0], a, tol=tol, max_iter=5000,
                            warn=False)
    return L.lasso(X32, y32, a, solver=solver, tol=tol, warn=False, max_iter=200_000 if solver == "fista" else None)


@pytest.mark.parametrize("solver", ["ws", "cd", "fista", "gram"])
@pytest.mark.parametrize("seed", [0, 1])
def test_float32_certificate_bounds_the_float64_suboptimality(solver, seed):
    """P(w) - P(w*) <= gap, with both objectives in float64 and the gap the float32 solver
    reported, up to the float32 rounding of the reported gap itself."""
    X, y = _problem(80, 300, 8, seed)
    a = 0.05 * float(np.max(np.abs(X.T @ y)) / X.shape[0])
    p_star = _optimum(X, y, a)
    yy = float(y @ y) / X.shape[0]
    for tol in (1e-3, 1e-5):
        res = _fit32(X, y, a, solver, tol)
        sub = _objective64(X, y, res.coef, a) - p_star
        slack = 64 * np.finfo(np.float32).eps * yy       # the floor that _floor grants float32
        assert sub <= float(res.duality_gap) + slack, (solver, tol, sub, float(res.duality_gap))
        # Never out of iterations: converged, or stopped at the dtype's floor.
        assert int(res.status) in (L.STATUS_CONVERGED, L.STATUS_PRECISION)
        if int(res.status) == L.STATUS_PRECISION:
            assert float(res.duality_gap) <= slack * max(1.0, np.sqrt(X.shape[1]) / 64)
        assert bool(res.converged) == (int(res.status) == L.STATUS_CONVERGED)


def test_cancellation_free_gap_is_the_textbook_gap():
    """In float64 the two-term gap equals P(w) - D(s R) computed the textbook way."""
    X, y = _problem(50, 40, 5, seed=3)
    rng = np.random.default_rng(0)
    with enable_x64():
        for scale in (0.0, 0.01, 1.0):
            w = scale * rng.standard_normal(40) * (rng.random(40) < 0.3)
            for a in (0.01, 0.2):
                obj, gap = L.lasso_duality_gap(X, y, w, a)
                r = y - X @ w
                c = X.T @ r / 50
                s = min(1.0, a / np.max(np.abs(c)))
                dual = s * (y @ r) / 50 - 0.5 * s * s * (r @ r) / 50
                textbook = 0.5 * (r @ r) / 50 + a * np.abs(w).sum() - dual
                assert float(gap) >= 0.0
                np.testing.assert_allclose(float(gap), textbook, rtol=1e-9, atol=1e-13)
                np.testing.assert_allclose(float(obj), 0.5 * (r @ r) / 50 + a * np.abs(w).sum(), rtol=1e-12)


@pytest.mark.parametrize("solver", ["ws", "cd", "fista"])
def test_tolerance_below_float32_resolution_names_the_dtype(solver):
    """float32 arrays with tol=1e-10 (< eps32): a precision warning naming float32 and
    jax_enable_x64; a solver that stalls at the floor stops early instead of burning its budget."""
    X, y = (a.astype(np.float32) for a in _problem(60, 200, 6, seed=5))
    a = 0.05 * float(L.alpha_max(X, y))
    with pytest.warns(L.LassoPrecisionWarning) as rec:
        res = L.lasso(X, y, a, solver=solver, tol=1e-10, max_iter=200_000 if solver == "fista" else None)
    msg = " ".join(str(w.message) for w in rec)
    assert "float32" in msg and "jax_enable_x64" in msg
    assert int(res.status) in (L.STATUS_CONVERGED, L.STATUS_PRECISION)
    if int(res.status) == L.STATUS_PRECISION:
        budget = 200_000 if solver == "fista" else (1000 if solver == "cd" else 10_000)
        assert int(res.n_iter) < budget


def test_float64_inputs_without_x64_say_so_and_with_x64_converge():
    """The issue's case: a float64 problem, tol=1e-10, x64 off -> the message says JAX
    computed in float32; with x64 on, the same call converges to the asked tolerance."""
    X, y = _problem(100, 400, 8, seed=6)
    a = 0.05 * float(np.max(np.abs(X.T @ y)) / X.shape[0])
    with pytest.warns(L.LassoPrecisionWarning, match="inputs were float64, but jax_enable_x64 is off"):
        res = L.lasso(X, y, a, tol=1e-10)
    assert res.coef.dtype == jnp.float32
    with enable_x64():
        with warnings.catch_warnings():
            warnings.simplefilter("error", L.LassoConvergenceWarning)
            for solver in ("ws", "cd", "fista"):
                res = L.lasso(X, y, a, solver=solver, tol=1e-10, max_iter=200_000 if solver == "fista" else None)
                assert res.coef.dtype == jnp.float64
                assert bool(res.converged) and int(res.status) == L.STATUS_CONVERGED
                assert float(res.duality_gap) <= 1e-10 * float(y @ y) / X.shape[0]


@pytest.mark.parametrize("form", ["design", "gram"])
def test_group_lasso_certificate_in_float32(form):
    X, y = _problem(80, 60, 6, seed=7)
    groups = np.repeat(np.arange(12), 5).astype(np.int32)
    X32, y32 = X.astype(np.float32), y.astype(np.float32)
    with enable_x64():
        ref = group_lasso(X, y, 0.05, groups, tol=1e-14, max_iter=500_000)
        assert bool(ref.converged)
        p_star = float(ref.objective)
    if form == "design":
        res = group_lasso(X32, y32, 0.05, groups, tol=1e-6, warn=False)
    else:
        res = group_lasso_gram(X32.T @ X32, X32.T @ y32, float(y32 @ y32), 80, 0.05, groups, tol=1e-6, warn=False)
    w = np.asarray(res.coef, np.float64)
    r = y - X @ w
    norms = np.sqrt(np.bincount(groups, w * w))
    sub = 0.5 * r @ r / 80 + 0.05 * np.sum(np.sqrt(5.0) * norms) - p_star
    assert sub <= float(res.duality_gap) + 64 * np.finfo(np.float32).eps * float(y @ y) / 80
    assert int(res.status) in (L.STATUS_CONVERGED, L.STATUS_PRECISION)
