"""A planted model: only known weights affect the loss, the others are larger and noisy.

Loss on a minibatch B: ``½ mean_i (x_iᵀθ_R − y_i)²  +  (ε_B·θ_I − stop_gradient(ε_B·θ_I))``.
The second term is exactly 0 in value but has gradient ε_B ~ N(0, σ²): the irrelevant
weights θ_I move under SGD like the relevant ones, without ever changing the loss. By
construction |θ_I| ≥ 2 > |θ_R| at initialisation, so magnitude pruning keeps exactly
the wrong weights, while the Granger regression of loss changes on squared updates
finds the relevant ones.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hgcnet_jax.prune import granger as G
from hgcnet_jax.prune.masks import ones_mask, prunable
from hgcnet_jax.prune.record import Trainer

P, R = 40, 8


class PlantedTask:
    def __init__(self, n=2000, seed=0, noise_scale=1.0):
        rng = np.random.default_rng(seed)
        self.x = jnp.asarray(rng.standard_normal((n, R)), jnp.float32)
        self.theta_star = jnp.asarray(rng.standard_normal(R), jnp.float32)
        self.y = self.x @ self.theta_star
        self.noise_scale = noise_scale
        self.splits = {"train": jnp.arange(n), "test": jnp.arange(n)}

    def init(self, key):
        k1, k2 = jax.random.split(key)
        rel = 0.1 * jax.random.normal(k1, (R,))
        irr = 2.0 + jnp.abs(jax.random.normal(k2, (P - R,)))
        return {"lin": {"kernel": jnp.concatenate([rel, irr])[:, None], "bias": jnp.zeros((1,))}}

    def loss(self, params, idx, *, key=None, train=False):
        k = params["lin"]["kernel"][:, 0]
        r = jnp.take(self.x, idx, axis=0) @ k[:R] - jnp.take(self.y, idx) + params["lin"]["bias"][0]
        base = 0.5 * jnp.mean(r * r)
        if key is None:
            return base
        eps = self.noise_scale * jax.random.normal(key, (P - R,))
        ghost = jnp.dot(eps, k[R:])
        return base + (ghost - jax.lax.stop_gradient(ghost))

    def accuracy(self, params, idx):
        return jnp.exp(-self.loss(params, idx))


def _precision_recall(keep):
    kept = set(np.flatnonzero(keep))
    rel = set(range(R))
    tp = len(kept & rel)
    return (tp / max(len(kept), 1)), tp / R


@pytest.fixture(scope="module")
def recording():
    task = PlantedTask()
    keys = jnp.stack([jax.random.key(0), jax.random.key(1)])
    params = jax.vmap(task.init)(keys)
    which = prunable(jax.tree.map(lambda x: x[0], params))
    trainer = Trainer(task, which, batch_size=16)
    mask = jax.vmap(ones_mask)(params)
    _, rec = trainer.record(params, mask, key=jax.random.key(3), steps=400, lr=0.01, chunk_steps=50,
                            same_batch=True)
    return task, params, rec


def test_recording_shapes_and_mask_never_revives(recording):
    task, params, rec = recording
    assert rec.deltas.shape == (2, 450, P)
    assert list(rec.layer_slices) == ["lin/kernel"]
    # the loss only depends on the relevant weights: the ghost term is exactly zero
    p0 = jax.tree.map(lambda x: x[0], params)
    assert float(task.loss(p0, jnp.arange(16), key=jax.random.key(0))) == pytest.approx(
        float(task.loss(p0, jnp.arange(16))), abs=1e-6)
    # and the irrelevant weights did move (noisy updates)
    assert np.all(np.abs(rec.deltas[:, :, R:]).mean(axis=1) > 0.1)


@pytest.mark.parametrize("replica", [0, 1])
def test_granger_recovers_planted_and_magnitude_fails(recording, replica):
    _, params, rec = recording
    X, y = rec.design(replica, target="same_batch")
    alive = np.ones(P, bool)
    keep, fits = G.granger_keep(X, y, alive, rec.layer_slices, mode="exact", alpha=0.05, solver="ws", tol=1e-5)
    assert bool(fits[0].result.converged)
    prec, rec_ = _precision_recall(keep)
    assert prec >= 0.9 and rec_ >= 0.9, (prec, rec_, np.flatnonzero(keep))
    # the same budget by magnitude keeps the wrong weights
    w = np.asarray(params["lin"]["kernel"][replica, :, 0])
    mkeep = G.magnitude_keep(w, alive, rec.layer_slices, target_sparsity=1 - R / P)
    mprec, mrec = _precision_recall(mkeep)
    assert mrec < 0.5 and mprec < 0.5
    # rank mode with the right budget agrees with exact mode's support
    rkeep, _ = G.granger_keep(X, y, alive, rec.layer_slices, mode="rank", target_sparsity=1 - R / P,
                              alpha=0.05, solver="ws", tol=1e-5)
    rprec, rrec = _precision_recall(rkeep)
    assert rprec >= 0.9 and rrec >= 0.9
