"""Gradient-noise estimators on linear regression, where every quantity has a closed form.

Model: x ~ N(0, C), y = xᵀw* + ε, ε ~ N(0, σ²), ℓ = ½(xᵀw − y)², δ = w − w*.
Per-example gradient g = x(xᵀδ − ε). By Isserlis' theorem

    G = Cδ,   Σ = Cδδᵀ C + (δᵀCδ + σ²) C,   H = C,
    tr Σ = |Cδ|² + (δᵀCδ + σ²) tr C,
    tr(HΣ) = δᵀC³δ + (δᵀCδ + σ²) tr C²,   GᵀHG = δᵀC³δ.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hgcnet_jax import mediators as md

D = 5
C_DIAG = np.array([2.0, 1.0, 0.5, 0.25, 0.1])
DELTA = np.array([0.6, -0.4, 0.8, 0.3, -0.5])
SIGMA = 0.7
W_STAR = np.array([1.0, -2.0, 0.5, 0.0, 1.5])


def _truth():
    C = np.diag(C_DIAG)
    q = DELTA @ C @ DELTA
    return {
        "grad_norm_sq": float(np.sum((C @ DELTA) ** 2)),
        "trace_cov": float(np.sum((C @ DELTA) ** 2) + (q + SIGMA**2) * np.trace(C)),
        "trace_hess_cov": float(DELTA @ C @ C @ C @ DELTA + (q + SIGMA**2) * np.trace(C @ C)),
        "grad_hess_grad": float(DELTA @ C @ C @ C @ DELTA),
    }


def _sample(key, n):
    kx, ke = jax.random.split(key)
    X = jax.random.normal(kx, (n, D)) * jnp.sqrt(jnp.asarray(C_DIAG))
    y = X @ jnp.asarray(W_STAR) + SIGMA * jax.random.normal(ke, (n,))
    return X, y


def per_example(params, batch):
    X, y = batch
    return 0.5 * (X @ params["w"] + params["b"] - y) ** 2


PARAMS = {"w": jnp.asarray(W_STAR + DELTA, jnp.float32), "b": jnp.zeros((), jnp.float32)}


def _truth_with_bias():
    t = _truth()
    q = DELTA @ np.diag(C_DIAG) @ DELTA
    # The bias b (at its optimum 0) adds a coordinate with gradient r = xᵀδ − ε: mean 0, variance
    # q + σ², and Cov(x r, r) = E[x r²] = 0 (odd Gaussian moments), so Σ and H = [[C, 0], [0, 1]]
    # are block diagonal: tr Σ and tr(HΣ) gain Var r, |G|² and GᵀHG are unchanged.
    t["trace_cov"] += q + SIGMA**2
    t["trace_hess_cov"] += q + SIGMA**2
    return t


def _check_unbiased(samples, truth, name):
    s = np.asarray(samples, np.float64)
    se = s.std(ddof=1) / np.sqrt(len(s))
    assert abs(s.mean() - truth) <= 3 * se, f"{name}: mean {s.mean():.5g} vs truth {truth:.5g}, se {se:.3g}"
    return se


def test_trace_cov_and_grad_norm_are_unbiased_on_small_samples():
    truth = _truth_with_bias()
    n, R = 16, 3000
    f = jax.jit(jax.vmap(lambda k: md.gradient_noise(per_example, PARAMS, _sample(k, n), chunk_size=5)))
    est = f(jax.random.split(jax.random.key(0), R))
    _check_unbiased(est.trace_cov, truth["trace_cov"], "trace_cov")
    se = _check_unbiased(est.grad_norm_sq, truth["grad_norm_sq"], "grad_norm_sq")
    # the naive plug-in |ḡ|² is off by tr Σ / n, many standard errors: the correction matters
    naive = np.asarray(est.grad_norm_sq) + np.asarray(est.trace_cov) / n
    assert abs(naive.mean() - truth["grad_norm_sq"]) > 6 * se
    # B_simple is formed from the two estimates whose sign is guaranteed: tr Σ̂ / |ḡ|²
    np.testing.assert_allclose(np.asarray(est.b_simple), np.asarray(est.trace_cov) / naive, rtol=1e-5)


def test_hessian_noise_scale_estimators():
    truth = _truth_with_bias()
    n, R = 2048, 120

    def one(k):
        kd, kp = jax.random.split(k)
        return md.gradient_noise(per_example, PARAMS, _sample(kd, n), chunk_size=512, hessian=True, num_probes=8, key=kp)

    est = jax.jit(jax.vmap(one))(jax.random.split(jax.random.key(1), R))
    _check_unbiased(est.trace_hess_cov, truth["trace_hess_cov"], "trace_hess_cov")
    _check_unbiased(est.grad_hess_grad, truth["grad_hess_grad"], "grad_hess_grad")
    b_noise = truth["trace_hess_cov"] / truth["grad_hess_grad"]
    b = np.asarray(est.b_noise)
    # the median's standard error is ≈ 1.25 σ / √R (σ ≈ 38 % of B_noise with 8 probes)
    assert abs(np.median(b) - b_noise) < 4 * 1.25 * b.std(ddof=1) / np.sqrt(R)
    # the delta-method error bar is of the size of the spread over data sets and probes
    assert 0.5 < np.median(np.asarray(est.b_noise_se)) / b.std(ddof=1) < 2.0
    assert 0.5 < np.median(np.asarray(est.trace_hess_cov_se)) / np.asarray(est.trace_hess_cov).std(ddof=1) < 2.0


def test_two_batch_estimators_unbiased_for_the_dataset():
    X, y = _sample(jax.random.key(2), 4096)
    g = jax.vmap(lambda x, t: jax.grad(lambda p: per_example(p, (x[None], t[None]))[0])(PARAMS))(X, y)
    G = np.concatenate([np.asarray(g["w"]), np.asarray(g["b"])[:, None]], axis=1).astype(np.float64)
    exact_g2 = float(np.sum(G.mean(0) ** 2))
    exact_tr = float(np.sum(G.var(0)))  # population = the data set, 1/n normalisation
    f = jax.jit(jax.vmap(lambda k: md.two_batch_noise(per_example, PARAMS, (X, y), b_small=8, b_big=64, key=k)))
    g2, tr = f(jax.random.split(jax.random.key(3), 3000))
    _check_unbiased(tr, exact_tr, "two-batch trace_cov")
    _check_unbiased(g2, exact_g2, "two-batch grad_norm_sq")


def test_two_batch_formula_inverts_the_expected_norms():
    g2, tr = 3.0, 40.0
    small, big = g2 + tr / 8, g2 + tr / 128
    est = md.two_batch_estimates(jnp.asarray(small), jnp.asarray(big), 8, 128)
    np.testing.assert_allclose(np.asarray(est), [g2, tr], rtol=1e-6)
    with pytest.raises(ValueError, match="b_small < b_big"):
        md.two_batch_estimates(small, big, 128, 8)


def test_per_example_gradients_separable_and_jacobian_paths_agree():
    X, y = _sample(jax.random.key(4), 12)
    a = md.per_example_gradients(per_example, PARAMS, (X, y), separable=True)
    b = md.per_example_gradients(per_example, PARAMS, (X, y), separable=False)
    chex.assert_tree_shape_prefix(a, (12,))
    chex.assert_trees_all_close(a, b, rtol=1e-5, atol=1e-6)
    r = np.asarray(X @ PARAMS["w"] - y)
    np.testing.assert_allclose(np.asarray(a["w"]), np.asarray(X) * r[:, None], rtol=1e-5, atol=1e-5)


def test_chunking_does_not_change_the_statistics():
    data = _sample(jax.random.key(5), 37)
    ref = md.gradient_noise(per_example, PARAMS, data)
    for cs in (1, 8, 37, 100):
        out = md.gradient_noise(per_example, PARAMS, data, chunk_size=cs)
        np.testing.assert_allclose(float(out.trace_cov), float(ref.trace_cov), rtol=1e-5)
        np.testing.assert_allclose(float(out.grad_norm_sq), float(ref.grad_norm_sq), rtol=1e-4, atol=1e-6)


def test_sgd_temperature_and_errors():
    np.testing.assert_allclose(md.sgd_temperature(0.1, 32), 0.1 / 32)
    np.testing.assert_allclose(md.sgd_temperature(np.array([0.1, 0.2]), np.array([16, 64]), 1000), [6.25, 3.125])
    data = _sample(jax.random.key(6), 8)
    with pytest.raises(ValueError, match="key"):
        md.gradient_noise(per_example, PARAMS, data, hessian=True)
    with pytest.raises(ValueError, match="at least 2"):
        md.gradient_noise(per_example, PARAMS, _sample(jax.random.key(6), 1))
