"""The gather/scatter kernels behind the GCN and GAT layers.

Forward values, gradients (in the weights, the COO values and the edge weights)
and Hessian-vector products must equal a dense reference, alone and under
``vmap`` over a replica axis.
"""

import jax
import jax.numpy as jnp
import numpy as np

from hgcnet_jax.models import _graph
from hgcnet_jax.models._graph import propagate, sparse_matmul, to_sparse


def _problem(seed=0, n=23, d=17, h=5):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) * (rng.random((n, d)) < 0.2)
    x[3] = 0.0  # an empty row
    xs = to_sparse(x)
    senders = rng.integers(0, n, 60)
    receivers = rng.integers(0, n, 60)
    s, r = _graph.add_self_loops(senders, receivers, n)
    ew = rng.random(len(s)).astype(np.float32)
    a = np.zeros((n, n), np.float32)
    np.add.at(a, (r, s), ew)  # out[i] = sum_{j->i} w_ji h_j
    return xs, jnp.asarray(x, jnp.float32), (jnp.asarray(s), jnp.asarray(r), jnp.asarray(ew)), jnp.asarray(a), rng


class _G:
    def __init__(self, s, r, ew):
        self.senders, self.receivers, self.edges = s, r, ew


def _loss_sparse(w, vals, ew, xs, s, r):
    h = jnp.tanh(sparse_matmul(xs, w, vals))
    return jnp.sum(propagate(h, _G(s, r, ew)) ** 2)


def _loss_dense(w, vals, ew, xs, s, r, n):
    x = jnp.zeros(xs.shape).at[xs.rows, xs.cols].add(vals)
    a = jnp.zeros((n, n)).at[r, s].add(ew)
    return jnp.sum((a @ jnp.tanh(x @ w)) ** 2)


def test_forward_and_gradients_match_dense_reference():
    xs, x, (s, r, ew), a, rng = _problem()
    w = jnp.asarray(rng.normal(size=(x.shape[1], 5)), jnp.float32)
    np.testing.assert_allclose(sparse_matmul(xs, w), x @ w, rtol=1e-5, atol=1e-5)
    h = jnp.asarray(rng.normal(size=(x.shape[0], 3)), jnp.float32)
    np.testing.assert_allclose(propagate(h, _G(s, r, ew)), a @ h, rtol=1e-5, atol=1e-5)
    args = (w, xs.vals, ew)
    got = jax.grad(_loss_sparse, argnums=(0, 1, 2))(*args, xs, s, r)
    want = jax.grad(_loss_dense, argnums=(0, 1, 2))(*args, xs, s, r, x.shape[0])
    for g, ref in zip(got, want):
        np.testing.assert_allclose(g, ref, rtol=1e-4, atol=1e-4)


def test_vmap_over_replicas_equals_a_loop_and_hvp_works():
    """Batched over a replica axis and differentiated twice (the curvature module's HVPs)."""
    xs, x, (s, r, ew), _, rng = _problem(1)
    R = 4
    W = jnp.asarray(rng.normal(size=(R, x.shape[1], 5)), jnp.float32)
    V = xs.vals * jnp.asarray(rng.random((R, xs.vals.shape[0])) < 0.5, jnp.float32)
    grad = jax.grad(_loss_sparse)
    batched = jax.jit(jax.vmap(lambda w, v: grad(w, v, ew, xs, s, r)))(W, V)
    for i in range(R):
        np.testing.assert_allclose(batched[i], grad(W[i], V[i], ew, xs, s, r), rtol=1e-5, atol=1e-5)
    hvp = jax.jvp(lambda w: grad(w, xs.vals, ew, xs, s, r), (W[0],), (W[1],))[1]
    dense = jax.jvp(lambda w: jax.grad(_loss_dense)(w, xs.vals, ew, xs, s, r, x.shape[0]), (W[0],), (W[1],))[1]
    np.testing.assert_allclose(hvp, dense, rtol=1e-4, atol=1e-4)
