"""Tiny float64 models with dense Hessians, the references of the curvature tests.

Three models of a few hundred parameters: an MLP, a two-layer GCN on a small
hand-built CSBM graph, and a CNN (flax.linen.Conv). Each fixture returns a
``Problem`` with the loss (data closed over), a per-example loss, the parameters,
and the dense Hessian and its eigenvalues computed by ``jax.hessian`` on the
flattened parameters, all in float64.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree


@dataclasses.dataclass
class Problem:
    name: str
    loss: Callable  # params -> scalar (mean over data)
    per_example: Callable  # (params, batch) -> (b,)
    predict: Callable  # (params, batch) -> logits
    data: Any  # batch pytree with leading example axis (or node indices)
    params: Any
    hessian: np.ndarray
    eigenvalues: np.ndarray  # ascending
    labels: Callable = None  # batch -> integer labels of its examples

    @property
    def dim(self) -> int:
        return self.hessian.shape[0]


def _xent(logits, y):
    return -jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=1)[:, 0]


def _finish(name, per_example, predict, data, params, labels=lambda b: b[1]) -> Problem:
    loss = lambda p: jnp.mean(per_example(p, data))  # noqa: E731
    flat, unravel = ravel_pytree(params)
    H = np.asarray(jax.jit(jax.hessian(lambda f: loss(unravel(f))))(flat))
    H = 0.5 * (H + H.T)
    return Problem(name, loss, per_example, predict, data, params, H, np.linalg.eigvalsh(H), labels)


def make_mlp() -> Problem:
    k = jax.random.split(jax.random.key(0), 4)
    X = jax.random.normal(k[0], (96, 10), jnp.float64)
    y = jax.random.randint(k[1], (96,), 0, 4)
    params = {
        "dense1": {"kernel": jax.random.normal(k[2], (10, 20), jnp.float64) * 0.6, "bias": jnp.full((20,), 0.1)},
        "dense2": {"kernel": jax.random.normal(k[3], (20, 4), jnp.float64) * 0.6, "bias": jnp.zeros((4,))},
    }

    def predict(p, batch):
        x, _ = batch
        h = jnp.tanh(x @ p["dense1"]["kernel"] + p["dense1"]["bias"])
        return h @ p["dense2"]["kernel"] + p["dense2"]["bias"]

    per_example = lambda p, b: _xent(predict(p, b), b[1])  # noqa: E731
    return _finish("mlp", per_example, predict, (X, y), params)


def make_gcn() -> Problem:
    """Two-layer GCN (Kipf & Welling 2017) on a 40-node, 3-class CSBM graph."""
    rng = np.random.default_rng(0)
    n, c, d = 40, 3, 6
    labels = rng.integers(0, c, n)
    p_in, p_out = 0.3, 0.04
    probs = np.where(labels[:, None] == labels[None, :], p_in, p_out)
    A = np.triu(rng.random((n, n)) < probs, 1)
    A = (A | A.T).astype(np.float64)
    means = rng.normal(size=(c, d))
    X = means[labels] + rng.normal(size=(n, d))
    A_hat = A + np.eye(n)
    dinv = 1.0 / np.sqrt(A_hat.sum(1))
    A_norm = jnp.asarray(dinv[:, None] * A_hat * dinv[None, :])
    X, Y = jnp.asarray(X), jnp.asarray(labels)
    k = jax.random.split(jax.random.key(1), 2)
    params = {
        "gcn1": {"kernel": jax.random.normal(k[0], (d, 16), jnp.float64) * 0.5, "bias": jnp.full((16,), 0.05)},
        "gcn2": {"kernel": jax.random.normal(k[1], (16, c), jnp.float64) * 0.5, "bias": jnp.zeros((c,))},
    }

    def predict(p, idx):
        h = jnp.tanh(A_norm @ (X @ p["gcn1"]["kernel"]) + p["gcn1"]["bias"])
        out = A_norm @ (h @ p["gcn2"]["kernel"]) + p["gcn2"]["bias"]
        return jnp.take(out, idx, axis=0)

    per_example = lambda p, idx: _xent(predict(p, idx), jnp.take(Y, idx))  # noqa: E731
    train = jnp.arange(0, n, 2)  # the labelled nodes
    return _finish("gcn", per_example, predict, train, params, labels=lambda idx: jnp.take(Y, idx))


class _CNN(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.tanh(nn.Conv(4, (3, 3), padding="SAME", param_dtype=jnp.float64)(x))
        x = x.reshape(x.shape[0], -1)
        return nn.Dense(3, param_dtype=jnp.float64)(x)


def make_cnn() -> Problem:
    k = jax.random.split(jax.random.key(2), 3)
    X = jax.random.uniform(k[0], (48, 6, 6, 1), jnp.float64)
    y = jax.random.randint(k[1], (48,), 0, 3)
    model = _CNN()
    params = model.init(k[2], X[:1])["params"]
    predict = lambda p, b: model.apply({"params": p}, b[0])  # noqa: E731
    per_example = lambda p, b: _xent(predict(p, b), b[1])  # noqa: E731
    return _finish("cnn", per_example, predict, (X, y), params)


MAKERS = {"mlp": make_mlp, "gcn": make_gcn, "cnn": make_cnn}


@pytest.fixture(scope="session")
def problems():
    """All three float64 problems, built once (inside enable_x64)."""
    with jax.enable_x64(True):
        return {name: make() for name, make in MAKERS.items()}


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def trained(pb: Problem, steps: int = 300, lr: float = 0.5) -> Problem:
    """The same model after ``steps`` of full-batch gradient descent (a realistic, near-minimum Hessian)."""
    step = jax.jit(lambda p: jax.tree_util.tree_map(lambda a, g: a - lr * g, p, jax.grad(pb.loss)(p)))
    p = pb.params
    for _ in range(steps):
        p = step(p)
    return _finish(pb.name + "-trained", pb.per_example, pb.predict, pb.data, p, pb.labels)


@pytest.fixture(scope="session")
def trained_mlp():
    with jax.enable_x64(True):
        return trained(make_mlp())
