"""The working-set inner solver: Anderson-accelerated CD keeps its residual exact."""

import jax.numpy as jnp
import numpy as np
import pytest
from jax import enable_x64
from sklearn.linear_model import Lasso

from hgcnet_jax.prune import solvers as L


def test_anderson_coef_weights_sum_to_one_and_fall_back():
    with enable_x64():
        rng = np.random.default_rng(0)
        buf = jnp.asarray(np.cumsum(rng.standard_normal((6, 30)), axis=0))
        acc, c = L._anderson_coef(buf)
        assert c.shape == (5,)
        np.testing.assert_allclose(float(jnp.sum(c)), 1.0, rtol=1e-12)
        np.testing.assert_allclose(np.asarray(acc), np.asarray(c @ buf[1:]), rtol=1e-12, atol=1e-12)
        bad = buf.at[2, 0].set(jnp.nan)
        acc, c = L._anderson_coef(bad)
        np.testing.assert_array_equal(np.asarray(c), [0, 0, 0, 0, 1])
        np.testing.assert_array_equal(np.asarray(acc), np.asarray(bad[-1]))


@pytest.mark.parametrize("k_real", [61, 64])           # a count of coordinates that is / is not a multiple of the unroll
def test_cd_residual_ill_conditioned_residual_exact_and_certified(k_real):
    """Nearly as many features as rows (ill-conditioned), small alpha: the extrapolation
    is exercised, the returned residual is ``y - Xt^T w``, padded rows stay 0 and the
    objective is within the tolerance of the optimum."""
    with enable_x64():
        rng = np.random.default_rng(1)
        n, K = 70, 64
        X = rng.standard_normal((n, k_real))
        y = X @ rng.standard_normal(k_real) + 0.1 * rng.standard_normal(n)
        Xt = np.zeros((K, n))
        Xt[:k_real] = X.T
        a = 0.01 * float(np.max(np.abs(X.T @ y)) / n)
        tol_abs = 1e-10 * float(y @ y) / n
        w, r, ep = L._cd_residual(jnp.asarray(Xt), jnp.asarray(y), jnp.zeros(K), jnp.asarray(a),
                                  jnp.asarray(tol_abs), jnp.asarray(100_000, jnp.int32))
        w, r = np.asarray(w), np.asarray(r)
        assert int(ep) < 100_000
        np.testing.assert_allclose(r, y - Xt.T @ w, rtol=0, atol=1e-10 * np.linalg.norm(y))
        assert np.all(w[k_real:] == 0)
        # The loop stops on the better of two dual points, so check sub-optimality
        # against scikit-learn's tightly converged objective rather than one gap.
        obj = float(L.lasso_objective(X, y, w[:k_real], a))
        m = Lasso(alpha=a, fit_intercept=False, tol=1e-14, max_iter=1_000_000).fit(X, y)
        obj_sk = float(L.lasso_objective(X, y, m.coef_, a))
        assert obj - obj_sk <= tol_abs + 1e-14 * abs(obj_sk)
