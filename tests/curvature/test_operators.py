"""HVP, chunked data losses, and the Gauss-Newton / empirical-Fisher operators against dense matrices."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from hgcnet_jax import curvature as cv


def _dense(op, params):
    flat, unravel = ravel_pytree(params)
    cols = jax.jit(jax.vmap(lambda e: ravel_pytree(op.matvec(params, unravel(e)))[0]))(jnp.eye(flat.size, dtype=flat.dtype))
    return np.asarray(cols).T


@pytest.mark.parametrize("name", ["mlp", "gcn", "cnn"])
def test_hvp_and_chunked_data_loss_equal_dense_hessian(problems, x64, name):
    pb = problems[name]
    flat, unravel = ravel_pytree(pb.params)
    v = jnp.sin(jnp.arange(flat.size, dtype=flat.dtype))
    hv = ravel_pytree(jax.jit(cv.hvp, static_argnums=0)(pb.loss, pb.params, unravel(v)))[0]
    scale = np.abs(pb.hessian).max()
    np.testing.assert_allclose(np.asarray(hv), pb.hessian @ np.asarray(v), atol=1e-12 * scale * flat.size)
    # the same loss as a DataLoss in uneven chunks (7 does not divide the example count)
    dl = cv.DataLoss(pb.per_example, pb.data, chunk_size=7)
    np.testing.assert_allclose(float(dl(pb.params)), float(pb.loss(pb.params)), rtol=1e-12)
    hv2 = ravel_pytree(cv.hvp(dl, pb.params, unravel(v)))[0]
    np.testing.assert_allclose(np.asarray(hv2), np.asarray(hv), rtol=1e-10, atol=1e-12 * scale)
    val, g = cv.value_and_grad(dl, pb.params)
    g_ref = jax.grad(pb.loss)(pb.params)
    np.testing.assert_allclose(np.asarray(ravel_pytree(g)[0]), np.asarray(ravel_pytree(g_ref)[0]), rtol=1e-10, atol=1e-14)


def test_weighted_data_loss(problems, x64):
    pb = problems["mlp"]
    n = pb.data[0].shape[0]
    w = jnp.where(jnp.arange(n) < 10, 3.0, 1.0)
    dl = cv.DataLoss(pb.per_example, pb.data, chunk_size=16, weights=w)
    ref = jnp.sum(w * pb.per_example(pb.params, pb.data)) / jnp.sum(w)
    np.testing.assert_allclose(float(dl(pb.params)), float(ref), rtol=1e-12)


def test_gauss_newton_equals_dense_jt_h_j(problems, x64):
    pb = problems["gcn"]  # node task: every logit depends on the whole graph
    xent = lambda logits, batch: -jnp.take_along_axis(  # noqa: E731
        jax.nn.log_softmax(logits), pb.labels(batch)[:, None], axis=1)[:, 0]
    ggn = cv.GaussNewton(pb.predict, xent, pb.data, chunk_size=9)
    np.testing.assert_allclose(float(ggn.loss(pb.params)), float(pb.loss(pb.params)), rtol=1e-12)
    G = _dense(ggn, pb.params)
    # reference: Σ_i (1/n) J_iᵀ (diag(p_i) − p_i p_iᵀ) J_i
    flat, unravel = ravel_pytree(pb.params)
    J = np.asarray(jax.jacfwd(lambda f: pb.predict(unravel(f), pb.data))(flat))  # (n, c, P)
    probs = np.asarray(jax.nn.softmax(pb.predict(pb.params, pb.data)))
    Hout = np.einsum("nc,cd->ncd", probs, np.eye(probs.shape[1])) - np.einsum("nc,nd->ncd", probs, probs)
    ref = np.einsum("ncp,ncd,ndq->pq", J, Hout, J) / J.shape[0]
    np.testing.assert_allclose(G, ref, atol=1e-12 * np.abs(ref).max() * 10)
    ev = np.linalg.eigvalsh(ref)
    assert ev.min() > -1e-10 * ev.max()  # positive semi-definite
    top = cv.top_eigenvalues(ggn, pb.params, 3, key=jax.random.key(0), tol=1e-10, num_steps=min(pb.dim, 120))
    np.testing.assert_allclose(np.asarray(top.eigenvalues), ev[::-1][:3], rtol=1e-6)


def test_empirical_fisher_equals_dense_sum_of_outer_products(problems, x64):
    pb = problems["cnn"]
    fisher = cv.EmpiricalFisher(pb.per_example, pb.data, chunk_size=20)
    F = _dense(fisher, pb.params)
    flat, unravel = ravel_pytree(pb.params)
    J = np.asarray(jax.jacrev(lambda f: pb.per_example(unravel(f), pb.data))(flat))  # (n, P)
    ref = J.T @ J / J.shape[0]
    np.testing.assert_allclose(F, ref, atol=1e-12 * np.abs(ref).max() * 10)


def test_operator_constructors_validate(problems, x64):
    pb = problems["mlp"]
    with pytest.raises(ValueError, match="chunk_size"):
        cv.DataLoss(pb.per_example, pb.data, chunk_size=0)
    with pytest.raises(ValueError, match="weights"):
        cv.DataLoss(pb.per_example, pb.data, weights=jnp.ones(3))
    with pytest.raises(ValueError, match="leading"):
        cv.DataLoss(pb.per_example, (jnp.ones((4, 2)), jnp.ones(5)))
    with pytest.raises(TypeError, match="per_example_loss"):
        cv.EmpiricalFisher(None, pb.data)
    with pytest.raises(TypeError, match="predict_fn"):
        cv.GaussNewton(None, lambda o, b: o, pb.data)
