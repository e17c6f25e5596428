"""Task: pure, jit-able functions binding a model to a dataset."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hgcnet_jax.train import make_task


@pytest.fixture(scope="module")
def task(tiny_graph):
    return make_task(tiny_graph, "gcn")


def test_node_task_functions_agree_and_jit(task):
    params = task.init(jax.random.key(0))
    idx = task.splits["train"][:10]
    full = jax.jit(lambda p: task.logits(p, jnp.arange(task.dataset.x.shape[0])))(params)
    np.testing.assert_allclose(jax.jit(task.logits)(params, idx), full[idx], rtol=1e-6)
    pel = jax.jit(task.per_example_loss)(params, idx)
    chex.assert_shape(pel, (10,))
    np.testing.assert_allclose(jax.jit(task.loss)(params, idx), pel.mean(), rtol=1e-6)
    acc = jax.jit(task.accuracy)(params, idx)
    y = np.asarray(task.dataset.y)[np.asarray(idx)]
    assert float(acc) == pytest.approx(np.mean(np.argmax(full[idx], -1) == y))
    # dropout only with train=True and a key; deterministic otherwise
    train_loss = jax.jit(lambda p, k: task.loss(p, idx, key=k, train=True))
    assert float(train_loss(params, jax.random.key(1))) != float(train_loss(params, jax.random.key(2)))
    no_key = jax.jit(lambda p: task.loss(p, idx, train=True))
    assert float(no_key(params)) == float(jax.jit(task.loss)(params, idx))
    # vmappable over a replica axis of params
    ps = jax.jit(jax.vmap(task.init))(jax.random.split(jax.random.key(0), 3))
    chex.assert_shape(jax.jit(jax.vmap(task.loss, in_axes=(0, None)))(ps, idx), (3,))
    assert task.num_params(params) == 16 * 16 + 16 + 16 * 3 + 3
    m = jax.jit(task.split_metrics)(params)
    assert set(m) == {f"{s}_{k}" for s in ("train", "val", "test") for k in ("loss", "acc")}


def test_make_task_errors(tiny_graph):
    with pytest.raises(ValueError, match="kind"):
        make_task(tiny_graph, "lenet5")
    with pytest.raises(KeyError, match="available"):
        make_task(tiny_graph, "nope")


def test_chunked_evaluation_equals_one_pass(digits):
    big = make_task(digits, "mlp", hidden=(8,), eval_batch_size=10_000)
    small = make_task(digits, "mlp", hidden=(8,), eval_batch_size=37)
    params = big.init(jax.random.key(0))
    idx = big.splits["test"]
    l1, a1 = jax.jit(lambda p: big.evaluate(p, big.data, idx))(params)
    l2, a2 = jax.jit(lambda p: small.evaluate(p, small.data, idx))(params)
    np.testing.assert_allclose(l1, l2, rtol=1e-5)
    np.testing.assert_allclose(a1, a2, rtol=1e-6)
