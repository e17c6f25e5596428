"""Noise along a trajectory on linear regression, against the closed-form population Σ.

For squared loss ℓ(w) = ½ (xᵀw − y)² with x ~ N(0, I_p) and y = xᵀw* + ε, ε ~ N(0, s²), the
per-example gradient is g = x (xᵀd − ε) with d = w − w*, and Isserlis' theorem gives the
population covariance in closed form:

    E[g gᵀ] = |d|² I + 2 d dᵀ + s² I,   G = E[g] = d,   tr Σ(w) = p (|d|² + s²) + |d|².

So along checkpoints w_1 … w_K, the noise a run of batch size B experienced is
(1/K) Σ_k tr Σ(w_k) / B. ``trajectory_noise`` estimates it from a finite sample; with n = 20 000
examples its estimate must lie within four of its own standard errors of the closed form,
every checkpoint too, and its standard error must be of the size the sampling implies.
"""

import jax
import jax.numpy as jnp
import numpy as np

from hgcnet_jax.mediators import trajectory_noise

P, S, N, BATCH = 6, 0.5, 20_000, 32


def _loss(w, batch):
    x, y = batch
    return 0.5 * jnp.square(x @ w - y)


def test_trajectory_noise_matches_the_closed_form_average():
    rng = np.random.default_rng(0)
    w_star = rng.standard_normal(P)
    x = rng.standard_normal((N, P))
    y = x @ w_star + S * rng.standard_normal(N)
    # four checkpoints approaching w* (as a run's parameters would)
    checkpoints = np.stack([w_star + 2.0 ** (-k) * rng.standard_normal(P) for k in range(4)])
    d2 = np.sum((checkpoints - w_star) ** 2, axis=1)
    exact = (P * (d2 + S**2) + d2) / BATCH  # tr Σ(w_k) / B

    got = trajectory_noise(_loss, jnp.asarray(checkpoints, jnp.float32),
                           (jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)), BATCH,
                           key=jax.random.key(1), num_bootstrap=64)
    per, per_se = np.asarray(got.per_checkpoint), np.asarray(got.per_checkpoint_se)
    assert np.all(np.abs(per - exact) < 4 * per_se), (per, exact, per_se)
    assert abs(float(got.mean) - exact.mean()) < 4 * float(got.mean_se)
    assert float(got.final) == per[-1] and float(got.final_se) == per_se[-1]
    # the error bar is the sampling error of an average of n terms, not zero and not huge
    rel = per_se / per
    assert np.all((rel > 0.2 / np.sqrt(N)) & (rel < 20 / np.sqrt(N))), rel
