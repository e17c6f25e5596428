"""Lanczos residual bounds of the SLQ nodes: every node lies within its residual of an eigenvalue."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from hgcnet_jax import curvature as cv


def test_slq_residuals_bound_the_distance_to_the_spectrum():
    rng = np.random.default_rng(0)
    P = 60
    M = rng.normal(size=(P, P))
    A = jnp.asarray((M + M.T) / 2, jnp.float32)
    ev = np.linalg.eigvalsh(np.asarray(A, np.float64))
    loss = lambda p: 0.5 * p["x"] @ (A @ p["x"])  # noqa: E731  Hessian = A
    params = {"x": jnp.zeros((P,), jnp.float32)}
    sd = jax.jit(lambda k: cv.spectral_density(loss, params, key=k, num_probes=3, num_steps=12))(jax.random.key(0))
    nodes, res = np.asarray(sd.nodes, np.float64), np.asarray(sd.residuals, np.float64)
    assert res.shape == nodes.shape
    dist = np.min(np.abs(nodes[..., None] - ev), axis=-1)
    slack = 1e-5 * np.max(np.abs(ev))  # float32 rounding
    assert (dist <= res + slack).all()
    # 12 steps of 60: the bounds are informative, not trivially large, and the extremes converge first
    assert np.median(res) < np.max(np.abs(ev))
    i = np.unravel_index(np.argmax(nodes), nodes.shape)
    assert res[i] <= np.median(res)
