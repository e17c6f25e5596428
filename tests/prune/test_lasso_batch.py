"""lasso_batch: a batch of problems in one vmapped inner program, each as lasso(solver='ws') solves it alone."""

import jax.numpy as jnp
import numpy as np
import pytest
from jax import enable_x64

from hgcnet_jax.prune import lasso, lasso_batch, lasso_duality_gap
from hgcnet_jax.prune.solvers import _ws_solve_batch


def _problems(S=4, n=60, p=700, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((S, n, p))
    X[1] *= 3.0                                          # problems of different scales
    if S > 2:
        X[2, :, 5:] = 0.0                                # a problem with only 5 nonzero columns
    w_true = np.zeros((S, p))
    w_true[:, :5] = rng.standard_normal((S, 5)) * 3
    y = np.einsum("snp,sp->sn", X, w_true) + 0.1 * rng.standard_normal((S, n))
    return X, y


@pytest.mark.parametrize("frac", [0.3, 0.02])
def test_each_problem_is_certified_and_matches_its_single_solve(frac):
    with enable_x64():
        X, y = _problems()
        n = X.shape[1]
        amax = np.max(np.abs(np.einsum("snp,sn->sp", X, y)), axis=1) / n
        alpha = frac * amax                               # one penalty per problem
        tol = 1e-8
        res = lasso_batch(X, y, alpha, tol=tol, warn=False)
        assert res.coef.shape == X.shape[::2] and res.duality_gap.shape == (4,)
        for i in range(4):
            tol_abs = tol * float(y[i] @ y[i]) / n
            # the reported certificate is the one recomputed from the returned coefficients
            obj, gap = lasso_duality_gap(X[i], y[i], res.coef[i], alpha[i])
            np.testing.assert_allclose(float(res.duality_gap[i]), float(gap), rtol=1e-6, atol=1e-12)
            assert bool(res.converged[i]) and float(gap) <= tol_abs
            one = lasso(X[i], y[i], alpha[i], solver="ws", tol=tol, warn=False)
            # both are within the tolerance of the optimum, so their objectives agree to it
            assert abs(float(obj) - float(one.objective)) <= 2 * tol_abs
        assert np.all(np.asarray(res.coef[2])[5:] == 0)  # zero columns never enter


def test_a_finished_lane_keeps_its_solution_while_others_run():
    """Problem 0 is converged at once (alpha >= alpha_max: w = 0); the others need many outer steps."""
    with enable_x64():
        X, y = _problems(S=3)
        n = X.shape[1]
        amax = np.max(np.abs(np.einsum("snp,sn->sp", X, y)), axis=1) / n
        alpha = np.array([1.01 * amax[0], 0.02 * amax[1], 0.05 * amax[2]])
        res = lasso_batch(X, y, alpha, tol=1e-8, warn=False)
        assert np.all(np.asarray(res.coef[0]) == 0) and int(res.n_iter[0]) == 0
        assert int(res.n_iter[1]) > 0 and bool(res.converged.all())


def test_one_inner_program_for_the_batch_and_clear_errors():
    X, y = _problems(S=2, n=30, p=300, seed=3)
    X, y = X.astype(np.float32), y.astype(np.float32)
    before = _ws_solve_batch._cache_size()
    lasso_batch(X, y, 0.1, warn=False)
    lasso_batch(X, y, 0.05, warn=False)
    assert _ws_solve_batch._cache_size() - before <= 1          # one program for this shape, any alpha
    with pytest.raises(ValueError, match=r"need X \(s, n, p\) and y \(s, n\)"):
        lasso_batch(X[0], y[0], 0.1)
    with pytest.raises(ValueError, match="alpha must be finite and >= 0"):
        lasso_batch(X, y, -1.0)
    with pytest.raises(ValueError, match="solver must be a WorkingSet"):
        lasso_batch(X, y, 0.1, solver="cd")
    assert jnp.asarray(lasso_batch(X, y, 0.1, warn=False).coef).dtype == jnp.float32
