"""The sweep: buckets, divergence, determinism, sharding, optimiser correctness, results API."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
import pytest

from hgcnet_jax.train import METRICS, Budget, Intervention, grid, make_mesh, make_task, run_key, sweep

BUDGET = Budget(epochs=4)  # B=24: 12 steps, enough for lr = 1e3 to overflow
KEY = jax.random.key(0)


def _runs():
    # Two buckets (B=8: 9 steps/epoch, B=24: 3 steps/epoch on 72 training nodes) and one
    # replica at lr = 1e3 that must diverge without disturbing its bucket.
    return grid(batch_size=[8, 24], seed=[0, 1], optimizer=["sgd", "adam"], lr=0.05) + [
        Intervention(batch_size=24, lr=1e3, seed=0)
    ]


@pytest.fixture(scope="module")
def task(tiny_graph):
    return make_task(tiny_graph, "gcn")


@pytest.fixture(scope="module")
def base(task):
    return sweep(task, _runs(), BUDGET, key=KEY, progress=False)


def _numeric(df):
    return df.drop(columns=["wall_time_s", "bucket_wall_time_s", "bucket_compile_time_s"])


def test_runs_table_and_trajectories(base, task):
    runs = base.runs
    assert list(runs.run_id) == list(range(9))
    for col in ("run_id bucket batch_size lr seed optimizer momentum weight_decay l1 lr_scaling steps epochs "
                "train_loss train_acc val_acc test_acc diverged diverged_step wall_time_s").split():
        assert col in runs.columns, col
    assert set(runs.bucket) == {0, 1}
    n_train = int(task.splits["train"].shape[0])
    for b in (8, 24):
        sel = runs[runs.batch_size == b]
        assert (sel.steps == 4 * (n_train // b)).all() and (sel.epochs == 4.0).all()
    traj = base.trajectories
    assert set(traj.metric) == set(METRICS)
    # one row per run x epoch (cadence = one epoch) x metric
    assert len(traj) == 9 * 4 * len(METRICS)
    last = traj[(traj.metric == "test_acc") & (traj.epoch == 4.0)].set_index("run_id").value
    np.testing.assert_allclose(last.sort_index().to_numpy(), runs.test_acc.to_numpy())
    adam = runs[runs.optimizer == "adam"]
    assert (adam.train_acc > 0.8).all(), "Adam runs must learn the planted classes in four epochs"


def test_divergent_replica_is_frozen_and_flagged_and_leaves_its_bucket_alone(base, task):
    runs = base.runs
    assert runs.diverged.tolist() == [False] * 8 + [True]
    assert 0 <= runs.diverged_step[8] < runs.steps[8]
    assert (runs.diverged_step[:8] == -1).all()
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(base.params(8)))
    # The same healthy run trained alone (a bucket of one) equals the run inside the bucket.
    alone = sweep(task, [_runs()[5]], BUDGET, key=KEY, progress=False)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), alone.params(0), base.params(5))
    np.testing.assert_allclose(alone.runs.train_loss[0], runs.train_loss[5], rtol=1e-5)


def test_same_key_is_bit_identical_and_progress_bar_reports_buckets(base, task, capsys):
    again = sweep(task, _runs(), BUDGET, key=KEY, progress=True)
    pd.testing.assert_frame_equal(_numeric(again.runs), _numeric(base.runs))
    pd.testing.assert_frame_equal(again.trajectories, base.trajectories)
    for r in range(9):
        jax.tree.map(np.testing.assert_array_equal, again.params(r), base.params(r))
    err = capsys.readouterr().err
    assert "bucket 2/2" in err and "B=24" in err
    other = sweep(task, _runs()[:1], BUDGET, key=jax.random.key(1), progress=False)
    assert not np.allclose(other.params(0)["conv0"]["kernel"], base.params(0)["conv0"]["kernel"])


def test_result_accessors(base, task):
    p0 = base.params(0)
    assert jax.tree.structure(p0) == jax.tree.structure(task.init(KEY))
    init = base.init_params(3)
    expect = task.init(jax.random.fold_in(run_key(KEY, base.interventions[3].seed), 0))
    jax.tree.map(np.testing.assert_array_equal, init, expect)
    # runs with the same seed share their initial parameters (common random numbers)
    jax.tree.map(np.testing.assert_array_equal, base.init_params(0), base.init_params(1))
    stacked = base.stacked_params([4, 0, 8])
    assert stacked["conv0"]["kernel"].shape[0] == 3
    np.testing.assert_array_equal(stacked["conv0"]["kernel"][1], p0["conv0"]["kernel"])
    assert base.model_state(0) == {}
    with pytest.raises(KeyError, match="not in this sweep"):
        base.params(99)


def test_bad_arguments_raise_at_the_boundary(task):
    with pytest.raises(ValueError, match="larger than the training set"):
        sweep(task, [Intervention(batch_size=10_000)], BUDGET, key=KEY)
    with pytest.raises(TypeError, match="Intervention"):
        sweep(task, [{"batch_size": 8}], BUDGET, key=KEY)
    with pytest.raises(ValueError, match="empty"):
        sweep(task, [], BUDGET, key=KEY)
    with pytest.raises(TypeError, match="PRNG key"):
        sweep(task, _runs(), BUDGET, key=0)
    with pytest.raises(TypeError, match="Budget"):
        sweep(task, _runs(), 10, key=KEY)


@pytest.mark.parametrize("width", [2, 64])
def test_vmap_width_changes_only_the_schedule(base, task, width):
    """Groups of 2 replicas per vmap, or the whole bucket in one vmap, train the same runs
    as the CPU default (one replica at a time), divergence included."""
    other = sweep(task, _runs(), BUDGET, key=KEY, progress=False, vmap_width=width)
    assert other.runs.diverged.tolist() == base.runs.diverged.tolist()
    pd.testing.assert_frame_equal(_numeric(other.runs).iloc[:8], _numeric(base.runs).iloc[:8], rtol=1e-5, atol=1e-6)
    for r in range(8):
        jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6), other.params(r), base.params(r))
    with pytest.raises(ValueError, match="vmap_width"):
        sweep(task, _runs(), BUDGET, key=KEY, vmap_width=0)


@pytest.mark.slow
def test_sharded_over_8_devices_equals_unsharded(base, task):
    assert jax.device_count() == 8
    mesh = make_mesh()
    sharded = sweep(task, _runs(), BUDGET, key=KEY, mesh=mesh, progress=False)
    a, b = _numeric(sharded.runs), _numeric(base.runs)
    pd.testing.assert_frame_equal(a, b, rtol=1e-5, atol=1e-6)
    # Healthy runs agree to rounding; the diverged run's frozen parameters (~1e18, the step
    # before overflow) amplify rounding differences, so only its flag and step are compared.
    for r in range(8):
        jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6), sharded.params(r), base.params(r))


@pytest.mark.slow
def test_a_data_axis_trains_the_same_runs(base, task):
    """A (2 runs x 4 data) mesh on 8 devices: each run's minibatch split over 4 devices, gradients
    averaged, the replicas split over the other axis; the runs of the unsharded sweep to float rounding,
    the diverging run flagged at the same step."""
    mesh = make_mesh(jax.devices(), data=4)
    assert dict(mesh.shape) == {"runs": 2, "data": 4}
    split = sweep(task, _runs(), BUDGET, key=KEY, mesh=mesh, progress=False)
    pd.testing.assert_frame_equal(_numeric(split.runs), _numeric(base.runs), rtol=1e-5, atol=1e-6)
    for r in range(8):
        jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-5), split.params(r), base.params(r))


def test_a_data_axis_with_sam_and_gradient_noise(task):
    """SAM's ascent uses the averaged gradient and the added noise is drawn once per run: a run split
    over 2 data devices equals the unsharded run (dropout on the whole graph: the same mask on both)."""
    runs = [Intervention(8, lr=0.05, seed=0, sam_rho=0.05), Intervention(8, lr=0.05, seed=1, noise_std=0.05)]
    one = sweep(task, runs, Budget(epochs=2), key=KEY, progress=False)
    two = sweep(task, runs, Budget(epochs=2), key=KEY, progress=False, mesh=make_mesh(jax.devices()[:2], data=2))
    pd.testing.assert_frame_equal(_numeric(two.runs), _numeric(one.runs), rtol=1e-5, atol=1e-6)
    for r in range(2):
        jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-5), two.params(r), one.params(r))


def test_a_data_axis_refuses_what_it_cannot_split(task, digits):
    with pytest.raises(ValueError, match=r"batch sizes \[12\].*multiples of 8"):
        sweep(task, [Intervention(12, seed=0)], BUDGET, key=KEY, mesh=make_mesh(jax.devices(), data=8))
    bn = make_task(digits, "resnet18", widths=(4, 4, 4, 4))
    with pytest.raises(ValueError, match="batch-norm"):
        sweep(bn, [Intervention(16, seed=0)], BUDGET, key=KEY, mesh=make_mesh(jax.devices()[:2], data=2))
    with pytest.raises(ValueError, match="data=3 must be a positive int dividing the 8 devices"):
        make_mesh(jax.devices(), data=3)


class _Stop(Exception):
    pass


@pytest.mark.slow
def test_a_checkpoint_resumes_on_another_device_count(base, task, tmp_path, monkeypatch):
    """Saved on 3 devices (the bucket of 4 runs padded to 6 replicas), stopped mid-bucket, finished
    on a (2 runs x 2 data) mesh (re-padded to 4 replicas, each trained by two devices; the second
    bucket runs there too): the runs of an uninterrupted unsharded sweep, to float rounding (neither the device count nor a node
    task's data split is in the fingerprint; older folders that recorded a count still resume)."""
    from hgcnet_jax.train import checkpoint

    real, saves = checkpoint.BucketCheckpointer.save, []

    def save_then_stop(self, chunks_done, tree):
        real(self, chunks_done, tree)
        saves.append((self.directory.name, chunks_done, tree["history"].shape[1]))
        if len(saves) == 2:
            raise _Stop

    monkeypatch.setattr(checkpoint.BucketCheckpointer, "save", save_then_stop)
    kw = dict(key=KEY, checkpoint_dir=tmp_path, chunk_steps=9, progress=False)
    with pytest.raises(_Stop):
        sweep(task, _runs(), BUDGET, mesh=make_mesh(jax.devices()[:3]), **kw)
    monkeypatch.undo()
    assert saves == [("bucket_000", 1, 6), ("bucket_000", 2, 6)]  # B=8: 2 of its 4 chunks, 4 runs + 2 padding
    fp = tmp_path / checkpoint.FINGERPRINT
    fp.write_text(json.dumps({**json.loads(fp.read_text()), "devices": 8}))  # as written by an older version
    resumed = sweep(task, _runs(), BUDGET, mesh=make_mesh(jax.devices()[:4], data=2), **kw)
    pd.testing.assert_frame_equal(_numeric(resumed.runs), _numeric(base.runs), rtol=1e-5, atol=1e-6)
    for r in range(8):
        jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6), resumed.params(r),
                     base.params(r))


def test_optimisers_match_optax_step_by_step(tiny_graph):
    """SGD + L1, heavy-ball momentum + decoupled weight decay, Adam + coupled L2 against optax."""
    task = make_task(tiny_graph, "gcn", dropout=0.0)
    B, T, lr = 24, 5, 0.05
    runs = [
        Intervention(B, lr=lr, seed=3, optimizer="sgd", l1=1e-2),
        Intervention(B, lr=lr, seed=3, optimizer="momentum", weight_decay=0.1),
        Intervention(B, lr=lr, seed=3, optimizer="adam", l2=1e-2, reg_scope="first_layer"),
    ]
    res = sweep(task, runs, Budget(steps=T), key=KEY, progress=False)
    rk = run_key(KEY, 3)
    train = task.splits["train"]
    spe = int(train.shape[0]) // B

    def batches():
        for t in range(T):
            perm = jax.random.permutation(jax.random.fold_in(jax.random.fold_in(rk, 1), t // spe), train)
            yield perm[(t % spe) * B : (t % spe + 1) * B]

    grad = jax.jit(jax.grad(task.loss))
    p0 = task.init(jax.random.fold_in(rk, 0))
    opts = [optax.sgd(lr), optax.sgd(lr, momentum=0.9), optax.adam(lr)]
    for i, opt in enumerate(opts):
        p, s = p0, opt.init(p0)
        for idx in batches():
            g = grad(p, idx)
            if i == 0:
                g = jax.tree.map(lambda gi, pi: gi + 1e-2 * jnp.sign(pi), g, p)
            if i == 2:  # L2 on the first layer's weights only
                g = {**g, "conv0": {**g["conv0"], "kernel": g["conv0"]["kernel"] + 1e-2 * p["conv0"]["kernel"]}}
            u, s = opt.update(g, s, p)
            new = optax.apply_updates(p, u)
            if i == 1:
                new = jax.tree.map(lambda n, q: n - lr * 0.1 * q, new, p)
            p = new
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6), res.params(i), p)


def test_mediator_interventions_noise_and_sam(tiny_graph):
    task = make_task(tiny_graph, "gcn", dropout=0.0)
    runs = [
        Intervention(24, lr=0.05, seed=0),
        Intervention(24, lr=0.05, seed=0, noise_std=0.5),
        Intervention(24, lr=0.05, seed=0, sam_rho=0.05),
    ]
    res = sweep(task, runs, Budget(steps=4), key=KEY, progress=False)
    plain = sweep(task, runs[:1], Budget(steps=4), key=KEY, progress=False)
    # noise and SAM put their runs in buckets of their own and change the trajectory
    assert res.runs.bucket.nunique() == 3
    k = lambda r, i: np.asarray(r.params(i)["conv1"]["kernel"])  # noqa: E731
    np.testing.assert_allclose(k(res, 0), k(plain, 0), rtol=1e-6)
    assert not np.allclose(k(res, 1), k(plain, 0), atol=1e-3)
    assert not np.allclose(k(res, 2), k(plain, 0), atol=1e-6)
