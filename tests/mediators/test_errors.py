"""Error bars of the gradient-noise mediators: bootstrap standard errors and the sign-guaranteed B_simple.

(λ's precision target and the memory budget are tested on a sweep in test_measure.py.)
Linear regression, where Σ and G have closed forms (see test_noise.py).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hgcnet_jax import mediators as md

D = 5
C_DIAG = np.array([2.0, 1.0, 0.5, 0.25, 0.1])
SIGMA = 0.7
W_STAR = np.array([1.0, -2.0, 0.5, 0.0, 1.5])


def _sample(key, n):
    kx, ke = jax.random.split(key)
    X = jax.random.normal(kx, (n, D)) * jnp.sqrt(jnp.asarray(C_DIAG))
    y = X @ jnp.asarray(W_STAR) + SIGMA * jax.random.normal(ke, (n,))
    return X, y


def per_example(params, batch):
    X, y = batch
    return 0.5 * (X @ params["w"] - y) ** 2


def _params(delta):
    return {"w": jnp.asarray(W_STAR + delta, jnp.float32)}


def test_bootstrap_standard_errors_match_the_spread_over_data_sets():
    params = _params(np.array([0.6, -0.4, 0.8, 0.3, -0.5]))
    n, R = 64, 80
    f = jax.jit(jax.vmap(lambda k: md.gradient_noise(
        per_example, params, _sample(k, n), chunk_size=16, num_bootstrap=48, key=jax.random.fold_in(k, 1))))
    est = f(jax.random.split(jax.random.key(0), R))
    for name in ("trace_cov", "grad_norm_sq", "b_simple"):
        spread = float(np.std(np.asarray(getattr(est, name)), ddof=1))
        # the bootstrap estimates the variance: compare its root-mean-square with the spread
        se = float(np.sqrt(np.mean(np.square(np.asarray(getattr(est, f"{name}_se"))))))
        assert 0.7 < se / spread < 1.4, f"{name}: bootstrap se {se:.4g} vs spread over data sets {spread:.4g}"


def test_b_simple_is_never_negative_and_estimates_b_over_one_plus_b_over_n():
    # at the optimum G = 0: the unbiased |G|² is negative in about half the samples
    params = _params(np.zeros(D))
    n, R = 32, 100
    est = jax.jit(jax.vmap(lambda k: md.gradient_noise(per_example, params, _sample(k, n))))(
        jax.random.split(jax.random.key(1), R))
    assert (np.asarray(est.grad_norm_sq) <= 0).mean() > 0.2  # the old ratio would be negative here
    assert (np.asarray(est.b_simple) >= 0).all() and np.isfinite(np.asarray(est.b_simple)).all()
    # away from the optimum, on many examples: 1/B̂ → 1/B + 1/n
    delta = np.array([0.6, -0.4, 0.8, 0.3, -0.5])
    C = np.diag(C_DIAG)
    g2 = float(np.sum((C @ delta) ** 2))
    tr = g2 + (delta @ C @ delta + SIGMA**2) * np.trace(C)
    n = 8192
    big = md.gradient_noise(per_example, _params(delta), _sample(jax.random.key(2), n))
    np.testing.assert_allclose(1.0 / float(big.b_simple), g2 / tr + 1.0 / n, rtol=0.05)


def test_the_causal_layer_refuses_a_missing_mediator_naming_the_runs():
    import pandas as pd

    from hgcnet_jax import causal

    rng = np.random.default_rng(0)
    n = 40
    table = pd.DataFrame({"run_id": np.arange(100, 100 + n), "B": np.repeat([16.0, 64.0], n // 2)})
    for c in "NSCG":
        table[c] = rng.normal(size=n)
    table.loc[[3, 17], "N"] = np.nan  # e.g. a B_noise whose denominator estimate was <= 0
    with pytest.raises(causal.DataError, match=r"'N'.*2 non-finite.*run_id 103, 117"):
        causal.prepare(causal.Hypergraph.paper(), table)


def test_trajectory_noise_is_the_average_of_tr_sigma_over_b_along_the_checkpoints():
    deltas = np.array([[1.0, -0.8, 0.6, 0.5, -0.4], [0.6, -0.4, 0.8, 0.3, -0.5], [0.1, 0.05, -0.1, 0.0, 0.1]])
    C = np.diag(C_DIAG)
    B = 16
    # hand-computed: tr Σ(δ) = |Cδ|² + (δᵀCδ + σ²) tr C at each checkpoint, divided by B, averaged
    per = [(np.sum((C @ d) ** 2) + (d @ C @ d + SIGMA**2) * np.trace(C)) / B for d in deltas]
    truth_mean, truth_final = float(np.mean(per)), float(per[-1])
    ckpts = {"w": jnp.asarray(W_STAR + deltas, jnp.float32)}
    n, R = 256, 60
    f = jax.jit(jax.vmap(lambda k: md.trajectory_noise(
        per_example, ckpts, _sample(k, n), B, key=jax.random.fold_in(k, 1), num_bootstrap=32)))
    est = f(jax.random.split(jax.random.key(4), R))
    m, fin = np.asarray(est.mean, np.float64), np.asarray(est.final, np.float64)
    assert abs(m.mean() - truth_mean) <= 3 * m.std(ddof=1) / np.sqrt(R)
    assert abs(fin.mean() - truth_final) <= 3 * fin.std(ddof=1) / np.sqrt(R)
    np.testing.assert_allclose(np.asarray(est.final), np.asarray(est.per_checkpoint)[:, -1])
    assert 0.7 < np.sqrt(np.mean(np.square(np.asarray(est.mean_se)))) / m.std(ddof=1) < 1.4
