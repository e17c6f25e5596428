"""The JAX Lasso against scikit-learn's ``Lasso`` (same objective, same support)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import enable_x64
from sklearn.linear_model import Lasso

from hgcnet_jax.prune import solvers as L


def _problem(n, p, k, seed=0, noise=0.1):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    w = np.zeros(p)
    w[rng.choice(p, k, replace=False)] = rng.standard_normal(k)
    y = X @ w + noise * rng.standard_normal(n)
    return X, y


def _sk(X, y, alpha, tol=1e-12):
    m = Lasso(alpha=alpha, fit_intercept=False, tol=tol, max_iter=200_000).fit(X, y)
    obj = 0.5 * np.sum((y - X @ m.coef_) ** 2) / X.shape[0] + alpha * np.abs(m.coef_).sum()
    return m.coef_, obj


@pytest.mark.slow
@pytest.mark.parametrize("ratio", [0.5, 0.1, 0.02])
def test_parity_with_sklearn_n200_p5000(ratio):
    """The issue's acceptance test: objective within 1e-6 relative, identical support."""
    X, y = _problem(200, 5000, 20)
    with enable_x64():
        a = ratio * float(L.alpha_max(X, y))
        coef_sk, obj_sk = _sk(X, y, a)
        res = L.lasso(jnp.asarray(X), jnp.asarray(y), a, solver="ws", tol=1e-12)
        assert bool(res.converged)
        assert abs(float(res.objective) - obj_sk) <= 1e-6 * obj_sk
        np.testing.assert_array_equal(np.asarray(res.coef) != 0, coef_sk != 0)


@pytest.mark.parametrize("solver", ["ws", "cd", "fista"])
@pytest.mark.parametrize("ratio", [0.3, 0.05])
def test_parity_small(solver, ratio):
    X, y = _problem(40, 120, 6, seed=1)
    with enable_x64():
        a = ratio * float(L.alpha_max(X, y))
        coef_sk, obj_sk = _sk(X, y, a)
        res = L.lasso(X, y, a, solver=solver, tol=1e-12, max_iter=200_000)
        assert bool(res.converged)
        assert abs(float(res.objective) - obj_sk) <= 1e-6 * obj_sk
        np.testing.assert_array_equal(np.asarray(res.coef) != 0, coef_sk != 0)
        np.testing.assert_allclose(np.asarray(res.coef), coef_sk, atol=1e-5)


def test_duality_gap_matches_sklearn_definition():
    """Our gap is scikit-learn's ``dual_gap_`` (already divided by n) for the same coefficients."""
    X, y = _problem(30, 50, 5, seed=2)
    a = 0.1 * np.abs(X.T @ y).max() / 30
    # A loose tolerance: scikit-learn stops early, at a gap it has just computed.
    m = Lasso(alpha=a, fit_intercept=False, tol=0.05).fit(X, y)
    with enable_x64():
        obj, gap = L.lasso_duality_gap(X, y, m.coef_, a)
    np.testing.assert_allclose(float(gap), m.dual_gap_, rtol=1e-8)
    assert float(gap) > 0


def test_gap_bounds_suboptimality():
    X, y = _problem(30, 60, 5, seed=3)
    with enable_x64():
        a = 0.05 * float(L.alpha_max(X, y))
        opt = L.lasso(X, y, a, solver="cd", tol=1e-14, max_iter=100_000)
        w = np.asarray(opt.coef) + 0.01 * np.random.default_rng(0).standard_normal(60)
        obj, gap = L.lasso_duality_gap(X, y, w, a)
        assert float(obj) - float(opt.objective) <= float(gap) + 1e-12
        assert float(gap) > 0


def test_not_converged_warns_and_reports():
    """A budget too small for a tolerance float32 can certify: the warning says the
    budget ran out and suggests another solver, never the one in use."""
    X, y = (a.astype(np.float32) for a in _problem(30, 60, 5, seed=4))
    a = 0.01 * float(L.alpha_max(X, y))
    with pytest.warns(L.LassoConvergenceWarning, match="iteration budget ran out") as rec:
        res = L.lasso(X, y, a, solver="fista", tol=1e-6, max_iter=10)
    msg = str(rec[0].message)
    assert "solver='ws'" in msg and "solver='fista'" not in msg.split("To fix:")[1]
    assert not bool(res.converged) and int(res.status) == L.STATUS_MAX_ITER
    assert float(res.duality_gap) > 1e-6 * float(jnp.dot(y, y)) / 30


def test_alpha_max_gives_zero_and_below_does_not():
    X, y = _problem(30, 40, 4, seed=5)
    amax = float(L.alpha_max(X, y))
    assert np.all(np.asarray(L.lasso(X, y, amax * 1.0001, solver="cd").coef) == 0)
    assert np.any(np.asarray(L.lasso(X, y, amax * 0.9, solver="cd").coef) != 0)


@pytest.mark.parametrize("solver", ["cd", "fista"])
def test_jit_and_vmap(solver):
    X, y = _problem(25, 30, 3, seed=6)
    X32, y32 = jnp.asarray(X, jnp.float32), jnp.asarray(y, jnp.float32)
    a = 0.1 * float(L.alpha_max(X32, y32))
    f = jax.jit(lambda X, y, a: L.lasso(X, y, a, solver=solver, tol=1e-6, warn=False))
    ref = L.lasso(X32, y32, a, solver=solver, tol=1e-6, warn=False)
    out = f(X32, y32, a)
    np.testing.assert_allclose(np.asarray(out.coef), np.asarray(ref.coef), atol=1e-5)
    alphas = jnp.asarray([a, 2 * a, 4 * a], jnp.float32)
    batched = jax.vmap(f, in_axes=(None, None, 0))(X32, y32, alphas)
    assert batched.coef.shape == (3, 30)
    nnz = np.asarray(jnp.sum(batched.coef != 0, axis=1))
    assert nnz[0] >= nnz[1] >= nnz[2]
    np.testing.assert_allclose(np.asarray(batched.coef[0]), np.asarray(ref.coef), atol=1e-5)


def test_auto_under_jit_falls_back_and_ws_refuses_tracing():
    X, y = _problem(20, 15, 3, seed=7)
    X32, y32 = jnp.asarray(X, jnp.float32), jnp.asarray(y, jnp.float32)
    out = jax.jit(lambda X, y: L.lasso(X, y, 0.05, warn=False).coef)(X32, y32)
    assert out.shape == (15,)
    with pytest.raises(ValueError, match="solver='ws'"):
        jax.jit(lambda X, y: L.lasso(X, y, 0.05, solver="ws").coef)(X32, y32)


def test_lasso_gram_equals_lasso_on_rows():
    X, y = _problem(50, 20, 4, seed=8)
    with enable_x64():
        a = 0.05 * float(L.alpha_max(X, y))
        r1 = L.lasso(X, y, a, solver="fista", tol=1e-12, max_iter=100_000)
        r2 = L.lasso_gram(X.T @ X, X.T @ y, y @ y, 50, a, tol=1e-12)
        np.testing.assert_allclose(np.asarray(r2.coef), np.asarray(r1.coef), atol=1e-8)
        np.testing.assert_allclose(float(r2.duality_gap), float(L.lasso_duality_gap(X, y, r2.coef, a)[1]), atol=1e-10)


def test_sgd_truncated_gradient_runs_and_certifies():
    """The authors' solver: jit-able, reproducible for a key, certified (usually not converged)."""
    X, y = _problem(60, 30, 3, seed=9, noise=0.01)
    X32, y32 = jnp.asarray(X, jnp.float32), jnp.asarray(y, jnp.float32)
    a = 0.05 * float(L.alpha_max(X32, y32))
    k = jax.random.key(0)
    r1 = L.lasso(X32, y32, a, solver="sgd", key=k, max_iter=200, warn=False)
    r2 = L.lasso(X32, y32, a, solver="sgd", key=k, max_iter=200, warn=False)
    np.testing.assert_array_equal(np.asarray(r1.coef), np.asarray(r2.coef))
    exact = L.lasso(X32, y32, a, solver="cd", tol=1e-8, warn=False)
    # A stochastic solver gets close in objective but its certificate is honest.
    assert float(r1.objective) >= float(exact.objective) - 1e-5
    assert float(r1.objective) <= 1.5 * float(exact.objective)
    np.testing.assert_allclose(float(r1.duality_gap), float(L.lasso_duality_gap(X32, y32, r1.coef, a)[1]), rtol=1e-5)
    with pytest.raises(ValueError, match="key"):
        L.lasso(X32, y32, a, solver="sgd")


def test_path_warm_starts_and_alpha_for_sparsity():
    X, y = _problem(40, 80, 8, seed=10)
    with enable_x64():
        path = L.lasso_path(X, y, n_alphas=8, eps=1e-2, solver="cd", tol=1e-10)
        assert np.all(np.diff(np.asarray(path.alphas)) < 0)
        assert bool(jnp.all(path.converged))
        for a, c in zip(np.asarray(path.alphas), np.asarray(path.coefs)):
            coef_sk, _ = _sk(X, y, a, tol=1e-10)
            np.testing.assert_allclose(c, coef_sk, atol=1e-5)
        a, res = L.alpha_for_sparsity(X, y, 10, solver="cd", tol=1e-10)
        assert int(jnp.sum(res.coef != 0)) == 10


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(X=np.zeros((3,)), y=np.zeros(3), alpha=0.1), "2-D"),
        (dict(X=np.zeros((3, 2)), y=np.zeros(4), alpha=0.1), "y must be 1-D"),
        (dict(X=np.zeros((3, 2)), y=np.zeros(3), alpha=-1.0), "alpha"),
        (dict(X=np.zeros((3, 2)), y=np.zeros(3), alpha=0.1, solver="newton"), "solver"),
        (dict(X=np.zeros((3, 2)), y=np.zeros(3), alpha=0.1, coef_init=np.zeros(3)), "coef_init"),
    ],
)
def test_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        L.lasso(**kwargs)


def test_solver_options_travel_with_the_solver():
    """An options value is the named solver with those options; a bad option names its field."""
    X, y = (a.astype(np.float32) for a in _problem(40, 80, 4, seed=8))
    a = 0.1 * float(L.alpha_max(X, y))
    by_name = L.lasso(X, y, a, solver="fista", tol=1e-5, warn=False)
    by_value = L.lasso(X, y, a, solver=L.Fista(), tol=1e-5, warn=False)
    np.testing.assert_array_equal(np.asarray(by_name.coef), np.asarray(by_value.coef))
    short = L.lasso(X, y, a, solver=L.Fista(max_iter=20, check_every=5), tol=1e-12, warn=False)
    assert int(short.n_iter) == 20
    sgd = L.lasso(X, y, a, solver=L.TruncatedSGD(eta0=5e-3, max_iter=3), key=jax.random.key(0), warn=False)
    assert int(sgd.n_iter) <= 3
    with pytest.raises(ValueError, match=r"WorkingSet\.inner_ratio"):
        L.WorkingSet(inner_ratio=2.0)
    with pytest.raises(ValueError, match=r"TruncatedSGD\.eta0"):
        L.TruncatedSGD(eta0=float("nan"))
    with pytest.raises(ValueError, match="options value"):
        L.lasso(X, y, a, solver=object())
