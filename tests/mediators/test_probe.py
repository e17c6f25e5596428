"""hgcnet_jax.mediators.probe: a user's own optax loop with the probe gives measure's columns."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import hgcnet_jax as hg
from hgcnet_jax import mediators


class UserMLP(nn.Module):
    @nn.compact
    def __call__(self, x, *, train: bool = False):
        return nn.Dense(3)(nn.tanh(nn.Dense(8)(x)))


def _blobs(n=90, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(3), n // 3)
    x = (rng.standard_normal((n, 4)) + 2.0 * np.eye(3, 4)[y]).astype(np.float32)
    return x, y


SETTINGS = dict(lanczos_steps=12, slq_probes=2, trace_probes=6, noise_probes=2, noise_bootstrap=8)


def _user_loop(x, y, batch_size, num_steps, every, key):
    """A plain optax loop as a user writes it, the probe called inside the jitted step."""
    model = UserMLP()

    def per_example_loss(params, batch):
        xb, yb = batch
        return optax.softmax_cross_entropy_with_integer_labels(model.apply({"params": params}, xb), yb)

    x, y = jnp.asarray(x), jnp.asarray(y)
    params = model.init(jax.random.key(1), x[:2])["params"]
    opt = optax.sgd(0.1)
    opt_state = opt.init(params)
    probe = mediators.probe(per_example_loss, (x, y), batch_size=batch_size, every=every, num_steps=num_steps,
                            key=key, lr=0.1, **SETTINGS)
    pstate = probe.init(params)

    @jax.jit
    def step(params, opt_state, pstate, t):
        idx = jax.random.choice(jax.random.fold_in(jax.random.key(2), t), x.shape[0], (batch_size,), replace=False)
        grads = jax.grad(lambda p: per_example_loss(p, (x[idx], y[idx])).mean())(params)
        updates, opt_state = opt.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        return params, opt_state, probe.update(pstate, params, t)

    checkpoints = []
    for t in range(num_steps):
        params, opt_state, pstate = step(params, opt_state, pstate, t)
        if t % every == 0:
            checkpoints.append(params)
    return probe, pstate, params, checkpoints, per_example_loss


def test_probe_equals_measure_on_the_same_parameters():
    x, y = _blobs()
    probe, pstate, params, checkpoints, loss = _user_loop(x[:80], y[:80], 16, 25, 5, jax.random.key(3))
    row = probe.finish(pstate, params, seed=0, test_acc=0.5)
    # measure_params on a Task of the same model and examples, same key: measure's own computation
    ds = hg.Dataset.from_arrays(x, y, splits={"train": np.arange(80), "val": np.arange(80, 85), "test": np.arange(85, 90)})
    task = hg.make_task(ds, UserMLP())
    cfg = mediators.MeasureConfig(trajectory=True, **SETTINGS)
    init = pstate.init_params
    ref = jax.jit(lambda p, p0: mediators.measure_params(
        task, p, p0, jnp.arange(80, dtype=jnp.int32), key=probe.keys[2], config=cfg,
        num_train=80))(params, init)
    assert set(cfg.columns) <= set(row)
    for c, v in ref.items():
        np.testing.assert_allclose(row[c], float(v), rtol=2e-4, atol=1e-6, err_msg=c)
    assert all(mediators.ERRORS[c] in row for c in cfg.columns if c in mediators.ERRORS)
    assert row["noise_temperature"] == pytest.approx(0.1 / 16)
    assert row["sharp_lambda_max"] > 0 and row["sharp_lambda_max_err"] >= 0
    # the trajectory: tr Σ / B at the probed steps, as trajectory_noise computes from saved checkpoints
    stacked = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *checkpoints)
    tn = mediators.trajectory_noise(loss, stacked, (x[:80], y[:80]), 16, key=jax.random.key(9), num_bootstrap=8)
    assert row["probe_steps"] == len(checkpoints) == 5
    np.testing.assert_allclose(np.asarray(pstate.steps), [0, 5, 10, 15, 20])
    np.testing.assert_allclose(row["noise_traj_mean"], float(tn.mean), rtol=1e-4)
    np.testing.assert_allclose(row["noise_traj_final"], float(tn.final), rtol=1e-4)
    assert 0 < row["noise_traj_mean_se"] < row["noise_traj_mean"]


def test_probe_table_is_a_runs_table():
    x, y = _blobs()
    rows = []
    for b in (8, 32):
        probe, pstate, params, _, _ = _user_loop(x, y, b, 6, 3, jax.random.key(b))
        rows.append(probe.finish(pstate, params, seed=0, test_acc=0.4 + b / 100))
    table = mediators.probe_table(rows)
    assert list(table["run_id"]) == [0, 1] and list(table["batch_size"]) == [8, 32]
    assert list(table.columns[:3]) == ["run_id", "seed", "test_acc"]
    with pytest.raises(ValueError, match="other columns"):
        mediators.probe_table([rows[0], {**rows[1], "extra": 1}])


def test_probe_refuses_what_it_cannot_do():
    x, y = _blobs()
    loss = lambda p, b: jnp.zeros(b[0].shape[0])  # noqa: E731
    with pytest.raises(ValueError, match="every"):
        mediators.probe(loss, (x, y), batch_size=8, every=0, num_steps=10, key=jax.random.key(0))
    with pytest.raises(TypeError, match="unknown setting"):
        mediators.probe(loss, (x, y), batch_size=8, every=1, num_steps=10, key=jax.random.key(0), lanczos=3)
    probe, pstate, params, _, _ = _user_loop(x, y, 8, 6, 3, jax.random.key(0))
    too_small = mediators.probe(probe.per_example_loss, (x, y), batch_size=8, every=3, num_steps=3,
                                key=jax.random.key(0), **SETTINGS)
    s = too_small.init(params)
    for t in (0, 3):
        s = too_small.update(s, params, t)
    with pytest.raises(ValueError, match="num_steps"):
        too_small.finish(s, params)
    with pytest.raises(ValueError, match="no probe recorded"):
        too_small.finish(too_small.init(params), params)


def test_a_probe_is_a_pytree_one_compiled_step_serves_every_seed_and_vmaps():
    """Passed as a jit argument, the probe's key is traced: two seeds, one compile, and the
    state the closure version records; stacked probes vmap (the seeds of one batch size at once)."""
    x, y = _blobs(60)
    x, y = jnp.asarray(x), jnp.asarray(y)
    model = UserMLP()

    def per_example_loss(params, batch):
        return optax.softmax_cross_entropy_with_integer_labels(model.apply({"params": params}, batch[0]), batch[1])

    params = model.init(jax.random.key(1), x[:2])["params"]
    probes = [mediators.probe(per_example_loss, (x, y), batch_size=8, every=2, num_steps=4, key=jax.random.key(s),
                              num_examples=40, **SETTINGS) for s in (5, 6)]
    leaves, treedef = jax.tree_util.tree_flatten(probes[0])
    assert len(leaves) == 4            # x, y, the key, the example indices; the settings are static
    again = jax.tree_util.tree_unflatten(treedef, leaves)
    assert (again.batch_size, again.every, again.num_steps, again.config) == (8, 2, 4, probes[0].config)

    @jax.jit
    def record(probe, pstate, params, t):
        return probe.update(pstate, params, t)

    by_argument = [record(p, p.init(params), params, 0) for p in probes]
    assert record._cache_size() == 1                       # the second seed reused the program
    for p, got in zip(probes, by_argument):
        closed = jax.jit(lambda s, q, t, p=p: p.update(s, q, t))(p.init(params), params, 0)
        np.testing.assert_allclose(np.asarray(got.values), np.asarray(closed.values), rtol=1e-5)
        assert int(got.count) == 1 and np.isfinite(float(got.values[0])) and float(got.ses[0]) > 0
    assert float(by_argument[0].values[0]) != float(by_argument[1].values[0])   # the seeds' keys differ

    stacked = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *probes)
    states = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *[p.init(params) for p in probes])
    batched = jax.vmap(lambda p, s: p.update(s, params, 0))(stacked, states)
    np.testing.assert_allclose(np.asarray(batched.values[:, 0]), [float(s.values[0]) for s in by_argument], rtol=1e-5)
