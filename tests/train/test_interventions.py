"""Interventions, grids and budgets: validation and arithmetic."""

import math

import pytest

from hgcnet_jax.train import Budget, Intervention, grid


def test_grid_is_the_cartesian_product_in_order():
    runs = grid(batch_size=[16, 64], seed=range(3), lr=0.1, optimizer="adam")
    assert len(runs) == 6
    assert [(r.batch_size, r.seed) for r in runs] == [(16, 0), (16, 1), (16, 2), (64, 0), (64, 1), (64, 2)]
    assert all(r.optimizer == "adam" and r.lr == 0.1 for r in runs)
    with pytest.raises(TypeError, match="unknown intervention field"):
        grid(batchsize=[1])
    with pytest.raises(ValueError, match="empty"):
        grid(batch_size=[])


@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 8, "lr": -1.0}, "lr"),
        ({"batch_size": 8, "lr": float("nan")}, "lr"),
        ({"batch_size": 8, "optimizer": "rmsprop"}, "optimizer"),
        ({"batch_size": 8, "optimizer": "momentum", "momentum": 1.0}, "momentum"),
        ({"batch_size": 8, "momentum": 0.5}, "momentum"),
        ({"batch_size": 8, "weight_decay": -1e-4}, "weight_decay"),
        ({"batch_size": 8, "lr_scaling": "cubic"}, "lr_scaling"),
        ({"batch_size": 8, "reg_scope": "some"}, "reg_scope"),
        ({"batch_size": 8, "seed": -1}, "seed"),
        ({"batch_size": 8, "noise_std": -0.1}, "noise_std"),
    ],
)
def test_invalid_interventions_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=f"Intervention.{field}"):
        Intervention(**kwargs)


def test_momentum_defaults_and_lr_scaling_rules():
    assert Intervention(8, optimizer="momentum").momentum == 0.9
    assert Intervention(8).momentum == 0.0
    assert Intervention(64, lr=0.1, lr_scaling="linear", base_batch_size=16).effective_lr == pytest.approx(0.4)
    assert Intervention(64, lr=0.1, lr_scaling="sqrt", base_batch_size=16).effective_lr == pytest.approx(0.2)
    assert Intervention(64, lr=0.1, lr_scaling="fixed", base_batch_size=16).effective_lr == pytest.approx(0.1)
    assert Intervention(64, lr=0.1, lr_scaling="linear").effective_lr == pytest.approx(0.1)  # base = B


def test_budget_steps_drop_the_last_partial_batch():
    assert Budget(epochs=3).steps_per_epoch(32, 140) == 4
    assert Budget(epochs=3).total_steps(32, 140) == 12
    assert Budget(steps=50).total_steps(32, 140) == 50
    assert Budget(examples=1000).total_steps(32, 140) == math.floor(1000 / 32)
    assert Budget(epochs=2).cadence(32, 140) == 4
    assert Budget(epochs=2, eval_every=3).cadence(32, 140) == 3
    with pytest.raises(ValueError, match="larger than the training set"):
        Budget(epochs=1).steps_per_epoch(200, 140)
    with pytest.raises(ValueError, match="exactly one"):
        Budget(epochs=1, steps=3)
    with pytest.raises(ValueError, match="exactly one"):
        Budget()
    with pytest.raises(ValueError, match="Budget.eval_every"):
        Budget(epochs=1, eval_every=0)
    with pytest.raises(ValueError, match="less than one batch"):
        Budget(examples=10).total_steps(32, 140)
