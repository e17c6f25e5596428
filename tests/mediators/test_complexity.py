"""Complexity measures against direct numpy computations."""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hgcnet_jax import curvature as cv
from hgcnet_jax import mediators as md


class _ConvNet(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Conv(5, (3, 3))(x))
        x = x.reshape(x.shape[0], -1)
        return nn.Dense(4)(nn.relu(nn.Dense(7)(x)))


@pytest.fixture(scope="module")
def convnet_params():
    return _ConvNet().init(jax.random.key(0), jnp.ones((1, 5, 5, 2)))["params"]


def test_norms_and_distance(convnet_params):
    p = convnet_params
    flat = np.concatenate([np.ravel(x) for x in jax.tree_util.tree_leaves(p)])
    np.testing.assert_allclose(float(md.l2_norm(p)), np.linalg.norm(flat), rtol=1e-6)
    q = jax.tree_util.tree_map(lambda x: x + 0.5, p)
    np.testing.assert_allclose(float(md.distance_from_init(q, p)), 0.5 * math.sqrt(flat.size), rtol=1e-6)
    np.testing.assert_allclose(float(jax.jit(md.distance_from_init)(p, p)), 0.0)
    with pytest.raises(ValueError, match="structure"):
        md.distance_from_init(p, {"other": jnp.ones(3)})


def test_spectral_norm_product_matches_svd_of_reshaped_kernels(convnet_params):
    p = convnet_params
    mats = md.weight_matrices(p)
    assert sorted(mats) == ["Conv_0/kernel", "Dense_0/kernel", "Dense_1/kernel"]  # biases excluded
    assert mats["Conv_0/kernel"].shape == (3 * 3 * 2, 5)  # (kh·kw·c_in, c_out)
    exact = [np.linalg.norm(np.asarray(w), 2) for w in mats.values()]
    for w, e in zip(mats.values(), exact, strict=True):
        np.testing.assert_allclose(float(md.spectral_norm(w, key=jax.random.key(1), num_iters=200)), e, rtol=1e-4)
    prod = jax.jit(lambda q: md.spectral_norm_product(q, key=jax.random.key(2), num_iters=200))(p)
    np.testing.assert_allclose(float(prod), np.prod(exact), rtol=1e-4)
    logp = md.spectral_norm_product(p, key=jax.random.key(2), num_iters=200, log=True)
    np.testing.assert_allclose(float(logp), np.sum(np.log(exact)), rtol=1e-4)
    with pytest.raises(ValueError, match="no 2-D"):
        md.spectral_norm_product({"b": jnp.ones(3)}, key=jax.random.key(0))


def test_pac_bayes_bound_formula_and_monotonicity():
    m, eps, delta = 1000, 0.1, 0.05
    dist_sq, tr = 4.0, 20.0
    sigma_sq = 2 * eps / tr
    kl = dist_sq / (2 * sigma_sq)
    expected = math.sqrt((kl + math.log(2 * math.sqrt(m) / delta)) / (2 * m))
    np.testing.assert_allclose(float(md.pac_bayes_bound(dist_sq, tr, m, epsilon=eps, delta=delta)), expected, rtol=1e-6)
    b = lambda d, t: float(md.pac_bayes_bound(d, t, m))  # noqa: E731
    assert b(4.0, 40.0) > b(4.0, 20.0) and b(8.0, 20.0) > b(4.0, 20.0)  # sharper / farther = larger
    assert b(4.0, -5.0) == b(0.0, 0.0)  # no positive curvature: only the confidence term
    with pytest.raises(ValueError, match="delta"):
        md.pac_bayes_bound(1.0, 1.0, m, delta=1.5)


def test_effective_parameters_exact_and_from_slq():
    lam = np.array([100.0, 10.0, 1.0, 0.1, 0.0, -0.5])
    np.testing.assert_allclose(
        float(md.effective_parameters(jnp.asarray(lam), 1.0)), sum(max(x, 0) / (max(x, 0) + 1.0) for x in lam)
    )
    # a planted spectrum: 6 large eigenvalues and a bulk near zero in 150 dimensions
    rng = np.random.default_rng(0)
    P = 150
    ev = np.concatenate([np.linspace(50, 5, 6), rng.uniform(0, 0.01, P - 6)])
    Q = np.linalg.qr(rng.normal(size=(P, P)))[0]
    A = jnp.asarray((Q * ev) @ Q.T, jnp.float32)
    loss = lambda p: 0.5 * p["w"] @ (A @ p["w"])  # noqa: E731
    sd = cv.spectral_density(loss, {"w": jnp.zeros(P)}, key=jax.random.key(0), num_probes=64, num_steps=30)
    exact = float(md.effective_parameters(jnp.asarray(ev), 1.0))
    est = float(md.effective_parameters(sd, 1.0, dim=P))
    assert abs(est - exact) < 0.15 * exact, (est, exact)
    with pytest.raises(ValueError, match="dim"):
        md.effective_parameters(sd, 1.0)
