"""Lanczos and the extreme eigenvalues against dense float64 Hessians."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from hgcnet_jax import curvature as cv

MODELS = ["mlp", "gcn", "cnn"]


@pytest.mark.parametrize("name", MODELS)
def test_top5_and_bottom3_match_dense_eigvalsh(problems, x64, name):
    pb = problems[name]
    assert 80 <= pb.dim <= 3000
    m = min(pb.dim, 200)

    @jax.jit
    def both(p, k):
        top = cv.top_eigenvalues(pb.loss, p, 5, key=k, num_steps=m, tol=1e-10, check_every=4)
        bottom = cv.top_eigenvalues(pb.loss, p, 3, key=k, num_steps=m, tol=1e-10, check_every=4, which="smallest")
        return top, bottom

    top, bottom = both(pb.params, jax.random.key(0))
    exact = pb.eigenvalues[::-1][:5]
    assert top.eigenvalues.dtype == jnp.float64
    rel = np.abs(np.asarray(top.eigenvalues) - exact) / np.abs(exact)
    assert rel.max() <= 1e-6, (name, rel, int(top.num_steps))
    assert int(top.num_steps) < m  # stopped early on the residual test
    assert np.all(np.asarray(top.residuals) <= 1e-10 * np.abs(exact) * 1.01)
    # the smallest (most negative: these Hessians are indefinite) in ascending order
    assert pb.eigenvalues[0] < 0 and np.all(np.diff(np.asarray(bottom.eigenvalues)) >= 0)
    scale = np.abs(pb.eigenvalues).max()
    np.testing.assert_allclose(np.asarray(bottom.eigenvalues), pb.eigenvalues[:3], rtol=0, atol=1e-7 * scale)


def test_eigenvectors_are_eigenvectors(problems, x64):
    pb = problems["mlp"]
    res = cv.top_eigenvalues(pb.loss, pb.params, 3, key=jax.random.key(2), tol=1e-10, return_eigenvectors=True)
    V = jax.vmap(lambda t: ravel_pytree(t)[0])(res.eigenvectors)
    np.testing.assert_allclose(np.linalg.norm(V, axis=1), 1.0, atol=1e-10)
    R = pb.hessian @ np.asarray(V).T - np.asarray(V).T * np.asarray(res.eigenvalues)
    assert np.linalg.norm(R, axis=0).max() <= 1e-7 * np.abs(pb.eigenvalues).max()


def test_lanczos_basis_orthonormal_and_tridiagonal_exact(problems, x64):
    pb = problems["gcn"]
    P = pb.dim
    mv = lambda v: cv.hvp(pb.loss, pb.params, v)  # noqa: E731
    res = jax.jit(lambda p: cv.lanczos(mv, p, P, return_basis=True, key=jax.random.key(0)))(pb.params)
    Q = np.asarray(jax.vmap(lambda t: ravel_pytree(t)[0])(res.basis))
    assert Q.shape == (P, P)
    np.testing.assert_allclose(Q @ Q.T, np.eye(P), atol=1e-10)
    T = np.asarray(cv.tridiagonal(res.alphas, res.betas))
    np.testing.assert_allclose(Q @ pb.hessian @ Q.T, T, atol=1e-10 * np.abs(pb.eigenvalues).max())
    # a full Krylov space reproduces every eigenvalue
    np.testing.assert_allclose(np.linalg.eigvalsh(T), pb.eigenvalues, atol=1e-10 * np.abs(pb.eigenvalues).max())
    assert float(res.residual_norm) <= 1e-8 * np.abs(pb.eigenvalues).max()


@pytest.mark.parametrize("reorthogonalize", [True, False])
def test_breakdown_on_low_rank_operator_restarts_without_nan(x64, reorthogonalize):
    # rank-3 operator in 12 dimensions: the Krylov space is invariant after 3 steps
    rng = np.random.default_rng(0)
    U = np.linalg.qr(rng.normal(size=(12, 3)))[0]
    A = U @ np.diag([5.0, 2.0, -1.0]) @ U.T
    A = jnp.asarray(A)
    res = cv.lanczos(lambda v: {"w": A @ v["w"]}, {"w": jnp.ones(12)}, 8, reorthogonalize=reorthogonalize,
                     key=jax.random.key(0))
    assert np.all(np.isfinite(np.asarray(res.alphas))) and np.all(np.isfinite(np.asarray(res.betas)))
    # v0 has a null-space component: K(A, v0) has dimension 4, so the 4th step breaks down
    assert float(res.betas[3]) == 0.0  # the recorded restart
    theta = np.sort(np.linalg.eigvalsh(np.asarray(cv.tridiagonal(res.alphas, res.betas))))
    if reorthogonalize:
        # the restarted block lives in the null space: the eigenvalues of T are those of A
        np.testing.assert_allclose(theta, np.sort(np.concatenate([[5.0, 2.0, -1.0], np.zeros(5)])), atol=1e-10)
    top = cv.top_eigenvalues(lambda p: 0.5 * p["w"] @ (A @ p["w"]), {"w": jnp.ones(12)}, 2, key=jax.random.key(0),
                             num_steps=12, tol=0.0)
    np.testing.assert_allclose(np.asarray(top.eigenvalues), [5.0, 2.0], atol=1e-10)


def test_vmap_over_replicas_equals_separate_calls(problems, x64):
    pb = problems["cnn"]
    stacked = jax.tree_util.tree_map(lambda x: jnp.stack([x, 0.8 * x]), pb.params)
    keys = jax.random.split(jax.random.key(3), 2)
    f = lambda p, k: cv.top_eigenvalues(pb.loss, p, 2, key=k, num_steps=40, tol=1e-9, check_every=4)  # noqa: E731
    batched = jax.jit(jax.vmap(f))(stacked, keys)
    for r in range(2):
        single = f(jax.tree_util.tree_map(lambda x: x[r], stacked), keys[r])
        np.testing.assert_allclose(np.asarray(batched.eigenvalues[r]), np.asarray(single.eigenvalues), rtol=1e-9)
    # the replicas differ, so this is not a trivially broadcast answer
    assert abs(float(batched.eigenvalues[0, 0] - batched.eigenvalues[1, 0])) > 1e-3


def test_float32_by_default(problems):
    pb = problems["mlp"]
    p32 = jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float32), pb.params)

    def loss32(p):
        (X, y) = pb.data
        X = jnp.asarray(X, jnp.float32)
        h = jnp.tanh(X @ p["dense1"]["kernel"] + p["dense1"]["bias"])
        lo = h @ p["dense2"]["kernel"] + p["dense2"]["bias"]
        return jnp.mean(-jnp.take_along_axis(jax.nn.log_softmax(lo), jnp.asarray(y)[:, None], 1))

    res = cv.top_eigenvalues(loss32, p32, 2, key=jax.random.key(0))
    assert res.eigenvalues.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(res.eigenvalues), pb.eigenvalues[::-1][:2], rtol=1e-3)


def test_bad_arguments_raise_clear_errors(problems, x64):
    pb = problems["mlp"]
    with pytest.raises(ValueError, match="num_steps"):
        cv.top_eigenvalues(pb.loss, pb.params, 1, key=jax.random.key(0), num_steps=pb.dim + 1)
    with pytest.raises(ValueError, match="which"):
        cv.top_eigenvalues(pb.loss, pb.params, 1, key=jax.random.key(0), which="middle")
    with pytest.raises(ValueError, match="k"):
        cv.top_eigenvalues(pb.loss, pb.params, 0, key=jax.random.key(0))
    with pytest.raises(TypeError, match="operator"):
        cv.top_eigenvalues(3.0, pb.params, 1, key=jax.random.key(0))
    with pytest.raises(ValueError, match="num_steps"):
        cv.lanczos(lambda v: v, {"w": jnp.ones(3)}, 0, key=jax.random.key(0))
    with pytest.raises(TypeError, match="key"):  # no silent default key
        cv.lanczos(lambda v: v, {"w": jnp.ones(3)}, 2)
    with pytest.raises(TypeError, match="lanczos: key must be a JAX PRNG key"):
        cv.lanczos(lambda v: v, {"w": jnp.ones(3)}, 2, key=0)
