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


def test_granger_keep_stats_batch_equals_the_per_replica_fits():
    """Streamed statistics of 3 replicas, one Gram group and one column group: the batched
    fits have the same penalties, are all certified, and keep (nearly) the same weights."""
    from hgcnet_jax.prune.granger import granger_keep_stats, granger_keep_stats_batch
    from hgcnet_jax.prune.record import GrangerStats, Recording

    rng = np.random.default_rng(4)
    S, T, P1, P2 = 3, 90, 40, 1200
    P = P1 + P2
    deltas = rng.standard_normal((S, T, P)).astype(np.float32) * rng.uniform(0.2, 2.0, P).astype(np.float32)
    sq = deltas.astype(np.float64) ** 2
    losses = np.cumsum(-(sq[:, :, :5].sum(-1) + sq[:, :, P1:P1 + 5].sum(-1)) * 0.01
                       + 0.05 * rng.standard_normal((S, T)), axis=1).astype(np.float32)
    rec = Recording(losses, np.full((S, T), np.nan, np.float32), deltas, {"a": slice(0, P1), "b": slice(P1, P)}, 1.0)
    stats = GrangerStats.from_recording(rec, rec.layer_slices, target="consecutive", gram_max_features=1024)
    assert set(stats.gram) == {"a"} and set(stats.deltas) == {"b"}
    alive = np.ones((S, P), bool)
    alive[1, P1:P1 + 300] = False                         # a replica with dead weights
    for mode, target in (("rank", 0.8), ("exact", None)):
        kb, fb = granger_keep_stats_batch(stats, alive, mode=mode, target_sparsity=target, alpha=0.05,
                                          standardize=True, tol=1e-5, warn=False)
        for s in range(S):
            kl, fl = granger_keep_stats(stats, s, alive[s], mode=mode, target_sparsity=target, alpha=0.05,
                                        standardize=True, tol=1e-5, warn=False)
            assert len(fb[s]) == len(fl) == 2
            for a, b in zip(fb[s], fl):
                assert a.alpha == pytest.approx(b.alpha, rel=1e-6)
                assert bool(a.result.converged) and bool(b.result.converged)
            assert not np.any(kb[s] & ~alive[s])          # never revives a dead weight
            assert np.mean(kb[s] == kl) >= 0.99
        if mode == "rank":
            np.testing.assert_allclose(1 - kb.mean(axis=1), 0.8, atol=1.0 / P)
