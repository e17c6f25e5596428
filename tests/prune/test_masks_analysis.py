"""Masks, masked optimisers, schedules, structured group Lasso and the phase-shift fit."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax import enable_x64

from hgcnet_jax.prune import analysis as A
from hgcnet_jax.prune import masks as M
from hgcnet_jax.prune import structured as St
from hgcnet_jax.prune.solvers import lasso


def _params():
    k = jax.random.split(jax.random.key(0), 3)
    return {"Dense_0": {"kernel": jax.random.normal(k[0], (6, 4)), "bias": jnp.ones(4)},
            "Conv_0": {"kernel": jax.random.normal(k[1], (3, 3, 2, 5)), "bias": jnp.ones(5)}}


def test_prunable_selects_kernels_only():
    which = M.prunable(_params())
    assert which["Dense_0"]["kernel"] and which["Conv_0"]["kernel"]
    assert not which["Dense_0"]["bias"] and not which["Conv_0"]["bias"]
    assert M.layer_names(_params()) == ["Conv_0/kernel", "Dense_0/kernel"]


@pytest.mark.parametrize("inner", ["sgd", "momentum", "adamw"])
def test_masked_updates_keep_pruned_weights_exactly_zero(inner):
    params = _params()
    which = M.prunable(params)
    rng = np.random.default_rng(0)
    mask = jax.tree.map(lambda p, f: jnp.asarray(rng.random(p.shape) > 0.5, jnp.float32) if f else jnp.ones_like(p),
                        params, which)
    base = {"sgd": optax.sgd(0.1), "momentum": optax.sgd(0.1, momentum=0.9), "adamw": optax.adamw(0.1, weight_decay=0.1)}[inner]
    opt = M.masked(base, mask)
    p = M.apply_mask(params, mask)
    state = opt.init(p)

    @jax.jit
    def step(p, state):
        g = jax.grad(lambda q: sum(jnp.sum(jnp.sin(x) ** 2 + x) for x in jax.tree.leaves(q)))(p)
        u, state = opt.update(g, state, p)
        return optax.apply_updates(p, u), state

    for _ in range(5):
        p, state = step(p, state)
    for leaf, m, p0 in zip(jax.tree.leaves(p), jax.tree.leaves(mask), jax.tree.leaves(params)):
        assert np.all(np.asarray(leaf)[np.asarray(m) == 0] == 0.0)
        assert np.any(np.asarray(leaf)[np.asarray(m) == 1] != np.asarray(p0)[np.asarray(m) == 1])
    assert float(M.sparsity(mask, which)) == pytest.approx(
        sum(float(jnp.sum(m == 0)) for m, f in zip(jax.tree.leaves(mask), jax.tree.leaves(which)) if f) / (24 + 90))


def test_keep_top_and_schedules():
    scores = np.array([5.0, 1.0, 3.0, 4.0, 2.0])
    alive = np.array([True, True, True, False, True])
    np.testing.assert_array_equal(M.keep_top(scores, alive, 2), [True, False, True, False, False])
    assert M.keep_top(scores, alive, 10).sum() == 4          # never revives the dead one
    cub = M.cubic_schedule(0.9, 4)
    assert cub[-1] == pytest.approx(0.9) and all(b > a for a, b in zip(cub, cub[1:]))
    np.testing.assert_allclose(M.geometric_schedule(0.2, 3), [0.2, 0.36, 0.488])
    with pytest.raises(ValueError, match="final_sparsity"):
        M.cubic_schedule(1.0, 3)


def test_group_lasso_singletons_equal_lasso_and_groups_zero_together():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 12))
    y = X[:, :3] @ np.array([1.0, -2.0, 0.5]) + 0.1 * rng.standard_normal(40)
    with enable_x64():
        a = 0.1 * float(jnp.max(jnp.abs(X.T @ y)) / 40)
        g1 = St.group_lasso(X, y, a, np.arange(12), tol=1e-12, max_iter=200_000)
        l1 = lasso(X, y, a, solver="cd", tol=1e-12)
        np.testing.assert_allclose(np.asarray(g1.coef), np.asarray(l1.coef), atol=1e-6)
        groups = np.repeat(np.arange(4), 3)                  # group 0 holds the 3 relevant columns
        amax = float(St.group_alpha_max(X, y, groups, 4))
        assert np.all(np.asarray(St.group_lasso(X, y, 1.0001 * amax, groups).coef) == 0)
        res = St.group_lasso(X, y, 0.2 * amax, groups, tol=1e-10, max_iter=200_000)
        assert bool(res.converged)
        w = np.asarray(res.coef).reshape(4, 3)
        assert np.all(w[0] != 0) and np.all(w[1:] == 0)


def test_output_groups_follow_last_axis():
    g = St.output_groups((2, 3))
    np.testing.assert_array_equal(g, [0, 1, 2, 0, 1, 2])
    k = np.arange(6).reshape(2, 3)
    assert np.all(k.ravel()[g == 1] == k[:, 1])


def test_hinge_fit_recovers_planted_break():
    s = np.repeat([0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99], 3)
    u = A.to_u(s)
    tau = A.to_u(0.9)
    rng = np.random.default_rng(1)
    acc = 0.9 - 0.005 * u - 0.3 * np.maximum(0, u - tau) + 0.002 * rng.standard_normal(u.size)
    ps = A.phase_shift(s, acc, n_boot=100)
    assert abs(ps.sparsity - 0.9) < 0.02
    assert ps.lo <= 0.9 <= ps.hi
    assert ps.slope_after < ps.slope_before - 0.2
    with pytest.raises(ValueError, match="at least 4"):
        A.hinge_fit(np.array([0.1, 0.2]), np.array([1.0, 2.0]))


def test_structured_granger_keeps_the_relevant_unit():
    """A (4 inputs × 3 units) kernel: only unit 1's squared updates predict the loss change."""
    rng = np.random.default_rng(2)
    T, shape = 200, (4, 3)
    X = rng.random((T, 12)).astype(np.float32) * 5.0            # noisy, larger columns
    g = St.output_groups(shape)
    rel = np.flatnonzero(g == 1)
    X[:, rel] = rng.random((T, rel.size)).astype(np.float32)    # smaller, but predictive
    y = (-X[:, rel].sum(axis=1) + 0.05 * rng.standard_normal(T)).astype(np.float32)
    keep, fits = St.structured_granger_keep(X, y, np.ones(12, bool), {"k": slice(0, 12)}, {"k": shape},
                                            target_sparsity=2 / 3, alpha=0.1, tol=1e-6)
    np.testing.assert_array_equal(keep, g == 1)
    assert bool(fits[0].converged)
