"""Trajectory noise: the sweep saves K checkpoints along training, measure averages tr Σ(θ_k)/B over them.

The model is multinomial logistic regression (one Dense layer, no bias) trained with the
sweep's cross-entropy, so every per-example gradient has a closed form,
g_i = x_i (softmax(Wᵀx_i) − e_{y_i})ᵀ, and tr Σ̂(θ) = (Σ_i |g_i|² − n |ḡ|²) / (n − 1) is
computed by hand from it.
"""

import importlib

import flax.linen as nn
import jax
import numpy as np
import pandas as pd
import pytest

import hgcnet_jax as hg
from hgcnet_jax import mediators as md
from hgcnet_jax import models
from hgcnet_jax.train import Budget, grid, make_mesh, sweep


class Linear(nn.Module):
    num_classes: int

    @nn.compact
    def __call__(self, x, *, train: bool = False):
        return nn.Dense(self.num_classes, use_bias=False)(x.reshape(x.shape[0], -1))


if "linear_traj_test" not in models.available():
    models.register("linear_traj_test", kinds=("tabular",))(Linear)

# the module (hgcnet_jax.train.sweep is also the name of the function)
sweep_module = importlib.import_module("hgcnet_jax.train.sweep")
KEY = jax.random.key(3)
# 70 training examples: B=7 takes 10 steps per epoch, B=10 takes 7; eval_every=4 and
# chunk_steps=8 put checkpoints inside periods, several in one chunk, and in several chunks.
BUDGET = Budget(epochs=3, eval_every=4)
K = 4


@pytest.fixture(scope="module")
def task():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 34)[:100]
    x = rng.standard_normal((100, 5)) + 1.5 * np.eye(3, 5)[y]
    return hg.make_task(hg.Dataset.from_arrays(x.astype(np.float32), y), "linear_traj_test")


def _runs():
    return grid(batch_size=[7, 10], seed=[0, 1], lr=0.2)


@pytest.fixture(scope="module")
def traj(task):
    return sweep(task, _runs(), BUDGET, key=KEY, progress=False, chunk_steps=8, trajectory=K)


def _numeric(df):
    return df.drop(columns=["wall_time_s", "bucket_wall_time_s", "bucket_compile_time_s"])


def test_trajectory_changes_no_result_and_ends_at_the_final_params(task, traj):
    plain = sweep(task, _runs(), BUDGET, key=KEY, progress=False, chunk_steps=8)
    pd.testing.assert_frame_equal(_numeric(plain.runs), _numeric(traj.runs))
    assert not plain.has_trajectory and traj.trajectory_length == K
    for r in range(len(_runs())):
        jax.tree.map(np.testing.assert_array_equal, plain.params(r), traj.params(r))
        t = traj.trajectory(r)
        T = int(traj.runs.loc[r, "steps"])
        np.testing.assert_array_equal(t.steps, hg.train.trajectory_steps(T, K))
        assert t.steps[-1] == T and np.all(np.diff(t.steps) > 0)
        jax.tree.map(lambda a, b: np.testing.assert_array_equal(a[-1], b), t.params, traj.params(r))
    with pytest.raises(ValueError, match="trajectory"):
        plain.trajectory(0)


def test_checkpoints_are_the_params_after_that_many_steps(task, traj):
    run = _runs()[1]  # B=7, seed 1
    t = traj.trajectory(1)
    for k in range(K - 1):
        short = sweep(task, [run], Budget(steps=int(t.steps[k])), key=KEY, progress=False)
        jax.tree.map(lambda a, b, k=k: np.testing.assert_array_equal(a[k], b), t.params, short.params(0))


def test_trajectory_must_fit_in_every_run(task):
    with pytest.raises(ValueError, match="trajectory"):
        sweep(task, _runs(), Budget(steps=3), key=KEY, progress=False, trajectory=4)
    with pytest.raises(ValueError, match="trajectory"):
        sweep(task, _runs(), Budget(steps=3), key=KEY, progress=False, trajectory=0)


def test_resumed_sweep_gives_the_same_checkpoints(task, traj, tmp_path, monkeypatch):
    class Crash(RuntimeError):
        pass

    class CrashAfterOneSave(sweep_module.BucketCheckpointer):
        def save(self, chunks_done, tree):
            super().save(chunks_done, tree)
            if chunks_done == 1:
                raise Crash

    with monkeypatch.context() as m:
        m.setattr(sweep_module, "BucketCheckpointer", CrashAfterOneSave)
        with pytest.raises(Crash):
            sweep(task, _runs(), BUDGET, key=KEY, progress=False, chunk_steps=8, trajectory=K, checkpoint_dir=tmp_path)
    resumed = sweep(task, _runs(), BUDGET, key=KEY, progress=False, chunk_steps=8, trajectory=K,
                    checkpoint_dir=tmp_path)
    for r in range(len(_runs())):
        a, b = traj.trajectory(r), resumed.trajectory(r)
        np.testing.assert_array_equal(a.steps, b.steps)
        jax.tree.map(np.testing.assert_array_equal, a.params, b.params)
    # K is part of the fingerprint: a resume with another K is refused, naming it
    with pytest.raises(ValueError, match="trajectory"):
        sweep(task, _runs(), BUDGET, key=KEY, progress=False, chunk_steps=8, trajectory=2, checkpoint_dir=tmp_path)


def test_sharded_trajectory_equals_unsharded(task, traj):
    sharded = sweep(task, _runs(), BUDGET, key=KEY, progress=False, chunk_steps=8, trajectory=K, mesh=make_mesh())
    for r in range(len(_runs())):
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
                     sharded.trajectory(r).params, traj.trajectory(r).params)


def _trace_cov_by_hand(W, x, y):
    logits = x @ W
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    g = (x[:, :, None] * (p - np.eye(W.shape[1])[y])[:, None, :]).reshape(len(x), -1)
    n = len(x)
    return (np.sum(g**2) - n * np.sum(g.mean(axis=0) ** 2)) / (n - 1)


def test_trajectory_noise_is_the_hand_computed_average_over_the_checkpoints(task, traj):
    table = md.measure(task, traj, key=jax.random.key(1), mediators=("noise",), noise_bootstrap=4)
    cols = md.MeasureConfig(mediators=("noise",), trajectory=True).columns
    for c in ("noise_traj_mean", "noise_traj_final"):
        assert c in cols and md.error_column(c) in cols and c in table and md.error_column(c) in table
        # listed only when required: the default settings list the columns every table has
        assert c not in md.MeasureConfig(mediators=("noise",)).columns
    assert list(table.columns[-4:]) == list(md.COLUMNS["noise_traj"])
    idx = np.asarray(task.splits["train"])
    x = np.asarray(task.data["inputs"], np.float64)[idx]
    y = np.asarray(task.data["y"])[idx]
    for row in table.itertuples():
        t = traj.trajectory(row.run_id)
        kernels = np.asarray(t.params["Dense_0"]["kernel"], np.float64)
        per = np.array([_trace_cov_by_hand(W, x, y) for W in kernels]) / row.batch_size
        np.testing.assert_allclose(row.noise_traj_mean, per.mean(), rtol=1e-4)
        np.testing.assert_allclose(row.noise_traj_final, per[-1], rtol=1e-4)
        # the final checkpoint is the final params: the same tr Σ as the end-point column
        np.testing.assert_allclose(row.noise_traj_final, row.noise_trace_cov / row.batch_size, rtol=1e-4)
        assert row.noise_traj_mean_se > 0 and row.noise_traj_final_se > 0


def test_trajectory_setting_of_measure(task, traj):
    plain = sweep(task, _runs()[:1], Budget(steps=4), key=KEY, progress=False)
    no_traj = md.measure(task, plain, key=KEY, mediators=("noise",), noise_bootstrap=2)
    assert not any(c.startswith("noise_traj") for c in no_traj)
    with pytest.raises(ValueError, match="trajectory=True"):
        md.measure(task, plain, key=KEY, mediators=("noise",), trajectory=True)
    off = md.measure(task, traj, key=KEY, mediators=("noise",), noise_bootstrap=2, run_ids=[0], trajectory=False)
    assert not any(c.startswith("noise_traj") for c in off)
    assert not any(c.startswith("noise_traj") for c in md.MeasureConfig(mediators=("noise",), trajectory=False).columns)
    with pytest.raises(ValueError, match="MeasureConfig.trajectory"):
        md.MeasureConfig(trajectory="yes")
