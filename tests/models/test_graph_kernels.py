"""The hand-written gather/scatter kernels behind the GCN and GAT layers.

Forward values and gradients (in the weights, the COO values and the edge
weights) must equal a dense reference, alone and under ``vmap`` over a replica
axis, on both batching strategies (the CPU one loops over replicas with
``lax.map``; GPU/TPU use ``vmap``).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

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
    # only the weights perturbed (a training step): the data cotangents are skipped, not wrong
    only_w = jax.grad(_loss_sparse)(*args, xs, s, r)
    np.testing.assert_allclose(only_w, want[0], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("sequential", [True, False])
def test_batching_rules_equal_a_loop_over_replicas(sequential, monkeypatch):
    """Both branches of the batching rule (forced on CPU) equal per-replica results, gradients included."""
    if not sequential:
        # run the accelerator branch on CPU: platform_dependent picks ``default``
        real = jax.lax.platform_dependent
        monkeypatch.setattr(jax.lax, "platform_dependent", lambda *a, cpu, default: real(*a, default=default))
        _graph._kernel.cache_clear()
        _graph._gather_scatter.cache_clear()
    xs, x, (s, r, ew), _, rng = _problem(1)
    R = 4
    W = jnp.asarray(rng.normal(size=(R, x.shape[1], 5)), jnp.float32)
    V = xs.vals * jnp.asarray(rng.random((R, xs.vals.shape[0])) < 0.5, jnp.float32)
    grad = jax.grad(_loss_sparse, argnums=(0, 1, 2))
    batched = jax.jit(jax.vmap(lambda w, v: grad(w, v, ew, xs, s, r)))(W, V)
    for i in range(R):
        single = grad(W[i], V[i], ew, xs, s, r)
        for b, g in zip(batched, single):
            np.testing.assert_allclose(b[i], g, rtol=1e-5, atol=1e-5)
    # nested vmap (e.g. replicas × Lanczos probes) and an unbatched weight
    nested = jax.vmap(jax.vmap(lambda v: sparse_matmul(xs, W[0], v)))(V.reshape(2, 2, -1))
    np.testing.assert_allclose(nested.reshape(R, *nested.shape[2:]), jax.vmap(lambda v: sparse_matmul(xs, W[0], v))(V), rtol=1e-6)
    _graph._kernel.cache_clear()
    _graph._gather_scatter.cache_clear()
