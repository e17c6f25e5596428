"""The package's one optimiser against optax's own SGD, momentum and Adam (AdamW for decay)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from hgcnet_jax.train.optim import replica_optimizer


def _run(opt, steps=25):
    params = {"w": jnp.linspace(-1.0, 1.0, 7), "b": jnp.asarray([0.3])}
    state = opt.init(params)

    def loss(p):
        return jnp.sum((p["w"] - 0.2) ** 4) + jnp.sum(jnp.sin(p["b"]) ** 2)

    for _ in range(steps):
        g = jax.grad(loss)(params)
        u, state = opt.update(g, state, params)
        params = optax.apply_updates(params, u)
    return params


@pytest.mark.parametrize(
    "ours, theirs",
    [
        (dict(lr=0.05), optax.sgd(0.05)),
        (dict(lr=0.05, momentum=0.9), optax.sgd(0.05, momentum=0.9)),
        (dict(lr=0.01, is_adam=True), optax.adam(0.01)),
        (dict(lr=0.01, is_adam=True, weight_decay=0.1), optax.adamw(0.01, weight_decay=0.1)),
    ],
)
def test_matches_optax(ours, theirs):
    a, b = _run(replica_optimizer(**ours)), _run(theirs)
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-7), a, b)


def test_kind_is_a_traced_value_of_the_replica_axis():
    """One vmapped program runs SGD and Adam replicas side by side, each as it would run alone."""
    lrs, kinds = jnp.asarray([0.05, 0.01]), jnp.asarray([0.0, 1.0])

    def one(lr, kind):
        return _run(replica_optimizer(lr, is_adam=kind), steps=5)

    both = jax.jit(jax.vmap(one))(lrs, kinds)
    sgd, adam = _run(optax.sgd(0.05), 5), _run(optax.adam(0.01), 5)
    for i, ref in enumerate((sgd, adam)):
        jax.tree.map(lambda x, y: np.testing.assert_allclose(x[i], y, rtol=1e-5, atol=1e-7), both, ref)
