"""Early stopping (Budget(patience=P)): each replica stops on its own validation trajectory, frozen."""

import flax.linen as nn
import jax
import numpy as np
import pandas as pd
import pytest

import hgcnet_jax as hg
from hgcnet_jax import models
from hgcnet_jax.train import Budget, grid, sweep


class Linear(nn.Module):
    num_classes: int

    @nn.compact
    def __call__(self, x, *, train: bool = False):
        return nn.Dense(self.num_classes)(x.reshape(x.shape[0], -1))


if "linear_es_test" not in models.available():
    models.register("linear_es_test", kinds=("tabular",))(Linear)

KEY = jax.random.key(5)
EPOCHS, PATIENCE = 10, 2


def _data(n=100):
    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(3), 34)[:n]
    x = rng.standard_normal((n, 5)) + 1.0 * np.eye(3, 5)[y]
    return x.astype(np.float32), y


@pytest.fixture(scope="module")
def task():
    return hg.make_task(hg.Dataset.from_arrays(*_data()), "linear_es_test")


def _runs():
    # one bucket (B=7: 10 steps per epoch on 70 training examples), six replicas
    return grid(batch_size=7, seed=[0, 1, 2], lr=[0.02, 0.5])


@pytest.fixture(scope="module")
def full(task):
    return sweep(task, _runs(), Budget(epochs=EPOCHS), key=KEY, progress=False)


@pytest.fixture(scope="module")
def stopped(task):
    return sweep(task, _runs(), Budget(epochs=EPOCHS, patience=PATIENCE), key=KEY, progress=False)


def _replay(val_acc: np.ndarray, steps: np.ndarray, patience: int):
    """The stop step and best value of a val-acc trajectory, by hand."""
    best, since = -np.inf, 0
    for v, s in zip(val_acc, steps):
        if v > best:
            best, since = v, 0
        else:
            since += 1
        if since >= patience:
            return int(s), best
    return int(steps[-1]), best


def _val(result, rid):
    t = result.trajectories
    t = t[(t.run_id == rid) & (t.metric == "val_acc")].sort_values("step")
    return t.value.to_numpy(), t.step.to_numpy()


def test_runs_stop_where_a_hand_replay_of_their_val_acc_says(full, stopped):
    T = EPOCHS * 10
    seen = set()
    for rid in range(len(_runs())):
        v, s = _val(full, rid)
        stop, best = _replay(v, s, PATIENCE)
        row = stopped.runs.loc[rid]
        assert row.steps == stop and row.epochs == stop / 10
        assert bool(row.stopped_early) == (stop < T)
        assert row.best_val_acc == pytest.approx(best)
        # the same trajectory up to the stop, frozen after it
        v2, s2 = _val(stopped, rid)
        np.testing.assert_array_equal(s2, s)
        upto = s <= stop
        np.testing.assert_array_equal(v2[upto], v[upto])
        assert np.all(v2[~upto] == v2[upto][-1])
        seen.add(stop)
    # the test is only meaningful if the replicas of the bucket stop at different steps
    assert len(seen) > 1 and min(seen) < T


def test_a_stopped_run_is_frozen_at_its_stop_step(task, stopped):
    for rid in range(len(_runs())):
        if stopped.runs.loc[rid, "stopped_early"]:
            n = int(stopped.runs.loc[rid, "steps"])
            fixed = sweep(task, [_runs()[rid]], Budget(steps=n), key=KEY, progress=False)
            jax.tree.map(np.testing.assert_array_equal, stopped.params(rid), fixed.params(0))
            break
    else:
        pytest.fail("no run stopped early")


def test_replicas_stop_independently_of_their_bucket(task, stopped):
    steps = stopped.runs.steps.to_numpy()
    a, b = int(np.argmin(steps)), int(np.argmax(steps))
    for rid in (a, b):
        alone = sweep(task, [_runs()[rid]], Budget(epochs=EPOCHS, patience=PATIENCE), key=KEY, progress=False)
        assert alone.runs.loc[0, "steps"] == stopped.runs.loc[rid, "steps"]
        jax.tree.map(np.testing.assert_array_equal, alone.params(0), stopped.params(rid))


def test_without_patience_the_results_are_the_fixed_budget_ones(task, full):
    assert "stopped_early" not in full.runs and "best_val_acc" not in full.runs
    assert (full.runs.steps == EPOCHS * 10).all()
    # a patience that never triggers: masking the steps changes no number
    never = sweep(task, _runs(), Budget(epochs=EPOCHS, patience=EPOCHS + 1), key=KEY, progress=False)
    assert not never.runs.stopped_early.any()
    cols = [c for c in full.runs.columns if "time" not in c]
    pd.testing.assert_frame_equal(never.runs[cols], full.runs[cols])
    for rid in range(len(_runs())):
        jax.tree.map(np.testing.assert_array_equal, never.params(rid), full.params(rid))


def test_val_loss_monitor_stops_on_the_loss(task, full):
    res = sweep(task, _runs()[:2], Budget(epochs=EPOCHS, patience=PATIENCE, monitor="val_loss"), key=KEY,
                progress=False)
    t = full.trajectories
    for rid in range(2):
        v = t[(t.run_id == rid) & (t.metric == "val_loss")].sort_values("step")
        stop, best = _replay(-v.value.to_numpy(), v.step.to_numpy(), PATIENCE)
        assert res.runs.loc[rid, "steps"] == stop
        assert res.runs.loc[rid, "best_val_loss"] == pytest.approx(-best)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_patience_must_be_a_positive_int(bad):
    with pytest.raises(ValueError, match="Budget.patience"):
        Budget(epochs=2, patience=bad)


def test_monitor_is_checked():
    with pytest.raises(ValueError, match="Budget.monitor"):
        Budget(epochs=2, patience=1, monitor="train_acc")
    with pytest.raises(ValueError, match="Budget.monitor"):
        Budget(epochs=2, monitor="val_loss")


def test_early_stopping_needs_a_validation_split():
    x, y = _data()
    ds = hg.Dataset.from_arrays(x, y, splits={"train": np.arange(80), "test": np.arange(80, 100)})
    task = hg.make_task(ds, "linear_es_test")
    with pytest.raises(ValueError, match="Budget.patience.*validation"):
        sweep(task, _runs()[:1], Budget(epochs=2, patience=1), key=KEY, progress=False)
