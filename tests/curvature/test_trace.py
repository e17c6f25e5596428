"""Hutchinson and Hutch++: unbiased, and Hutch++ wins on low-rank-dominated Hessians."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hgcnet_jax import curvature as cv


def _planted_quadratic(P=120, rank=4):
    """loss(θ) = ½ θᵀAθ with A = a few large eigenvalues + a small indefinite bulk."""
    rng = np.random.default_rng(0)
    U = np.linalg.qr(rng.normal(size=(P, rank)))[0]
    B = rng.normal(size=(P, P)) * 0.02
    A = U @ np.diag(np.linspace(40.0, 10.0, rank)) @ U.T + 0.5 * (B + B.T)
    Aj = jnp.asarray(A)
    return (lambda p: 0.5 * p["w"] @ (Aj @ p["w"])), {"w": jnp.zeros(P)}, A


@pytest.mark.parametrize("method", ["hutchinson", "hutch++"])
def test_trace_estimators_unbiased(problems, x64, method):
    pb = problems["mlp"]
    exact = float(np.trace(pb.hessian))
    keys = jax.random.split(jax.random.key(0), 300)
    est = jax.jit(jax.vmap(lambda k: cv.hessian_trace(pb.loss, pb.params, key=k, num_probes=9, method=method)))(keys)
    t = np.asarray(est.trace)
    se = t.std(ddof=1) / np.sqrt(len(t))
    assert abs(t.mean() - exact) <= 3 * se, (t.mean(), exact, se)
    # the reported per-call error bar is a fair estimate of the spread between calls
    assert 0.5 < np.nanmean(np.asarray(est.stderr)) / t.std(ddof=1) < 2.0


def test_hutchpp_has_smaller_variance_on_low_rank_dominated_hessian(x64):
    loss, params, A = _planted_quadratic()
    exact = float(np.trace(A))
    keys = jax.random.split(jax.random.key(1), 200)
    run = lambda m: jax.jit(jax.vmap(lambda k: cv.hessian_trace(loss, params, key=k, num_probes=30, method=m)))(keys)  # noqa: E731
    h, hpp = np.asarray(run("hutchinson").trace), np.asarray(run("hutch++").trace)
    for t in (h, hpp):
        assert abs(t.mean() - exact) <= 3 * t.std(ddof=1) / np.sqrt(len(t))
    assert hpp.var() < 0.1 * h.var(), (hpp.var(), h.var())


def test_trace_of_empirical_fisher_and_ggn_operators(problems, x64):
    pb = problems["mlp"]
    fisher = cv.EmpiricalFisher(pb.per_example, pb.data, chunk_size=40)
    keys = jax.random.split(jax.random.key(2), 100)
    est = jax.jit(jax.vmap(lambda k: cv.hessian_trace(fisher, pb.params, key=k, num_probes=6)))(keys)
    G = jax.jacrev(lambda p: pb.per_example(p, pb.data))(pb.params)
    exact = float(sum(jnp.sum(g**2) for g in jax.tree_util.tree_leaves(G))) / pb.data[0].shape[0]
    t = np.asarray(est.trace)
    assert abs(t.mean() - exact) <= 3 * t.std(ddof=1) / np.sqrt(len(t))


def test_trace_rejects_bad_arguments(problems, x64):
    pb = problems["mlp"]
    with pytest.raises(ValueError, match="method"):
        cv.hessian_trace(pb.loss, pb.params, key=jax.random.key(0), method="exact")
    with pytest.raises(ValueError, match="num_probes"):
        cv.hessian_trace(pb.loss, pb.params, key=jax.random.key(0), num_probes=2, method="hutch++")
