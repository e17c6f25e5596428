"""measure() on a real (tiny) sweep: columns, agreement with direct calls, vmapped == separate."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hgcnet_jax import curvature as cv
from hgcnet_jax import mediators as md
from hgcnet_jax.train import Budget, grid, make_task, sweep

SETTINGS = dict(lanczos_steps=16, slq_probes=2, trace_probes=6, noise_probes=2)


@pytest.fixture(scope="module")
def node_sweep(tiny_graph):
    task = make_task(tiny_graph, "gcn", hidden=8)
    runs = grid(batch_size=[8, 36], seed=[0, 1], lr=0.1)
    return task, sweep(task, runs, Budget(epochs=3), key=jax.random.key(0), progress=False)


@pytest.fixture(scope="module")
def measured(node_sweep):
    task, result = node_sweep
    return md.measure(task, result, key=jax.random.key(1), **SETTINGS)


def test_columns_and_values(node_sweep, measured):
    task, result = node_sweep
    table = measured
    assert list(table.run_id) == list(result.runs.run_id)
    assert list(table.columns[: len(result.runs.columns)]) == list(result.runs.columns)
    expected = md.MeasureConfig().columns
    assert set(expected) <= set(table.columns)
    assert all(c.startswith(("noise_", "sharp_", "complexity_")) for c in expected)
    # every value column is followed by its error column
    assert all(md.error_column(v) in table for v in expected if v in md.ERRORS)
    # B_noise is the one ratio without a guaranteed sign: NaN exactly where it is undefined
    undefined = (table.noise_trace_hess_cov <= 0) | (table.noise_grad_hess_grad <= 0)
    assert (table.noise_b_noise.isna() == undefined).all() and (table.noise_b_noise_se.isna() == undefined).all()
    rest = [c for c in expected if c not in ("noise_b_noise", "noise_b_noise_se")]
    assert np.isfinite(table[rest].to_numpy()).all()
    errs = [c for c in rest if c.endswith(("_se", "_err"))]
    assert (table[errs].to_numpy() >= 0).all()
    assert (table.noise_b_simple >= 0).all()
    np.testing.assert_allclose(
        table.noise_b_simple, table.noise_trace_cov / (table.noise_grad_norm_sq + table.noise_trace_cov / 72), rtol=1e-4
    )
    assert (table.sharp_lambda_max >= table.sharp_lambda_min).all()
    assert (table.noise_trace_cov > 0).all() and (table.complexity_dist_init > 0).all()
    lr = table["lr_effective"] if "lr_effective" in table else table["lr"]
    np.testing.assert_allclose(table.noise_temperature, lr / table.batch_size)
    n_train = int(task.splits["train"].shape[0])
    np.testing.assert_allclose(table.noise_temperature_scaled, lr * n_train / table.batch_size)


def test_values_agree_with_direct_computation(node_sweep, measured):
    task, result = node_sweep
    idx = task.splits["train"]
    r = 1
    params, init = result.params(r), result.init_params(r)
    row = measured.set_index("run_id").loc[r]
    np.testing.assert_allclose(row.complexity_l2, float(md.l2_norm(params)), rtol=1e-5)
    np.testing.assert_allclose(row.complexity_dist_init, float(md.distance_from_init(params, init)), rtol=1e-5)
    gn = md.gradient_noise(task.per_example_loss, params, idx, separable=False)
    np.testing.assert_allclose(row.noise_trace_cov, float(gn.trace_cov), rtol=1e-4)
    np.testing.assert_allclose(row.noise_grad_norm_sq, float(gn.grad_norm_sq), rtol=1e-3, atol=1e-7)
    # λ_max from the SLQ Ritz values agrees with a converged top eigenvalue of the same loss
    top = cv.top_eigenvalues(lambda p: task.loss(p, idx), params, 1, key=jax.random.key(0), tol=1e-5)
    np.testing.assert_allclose(row.sharp_lambda_max, float(top.eigenvalues[0]), rtol=2e-3)
    # Hutch++ trace within its own error bar (5 standard errors) of a many-probe Hutchinson
    ref = cv.hessian_trace(lambda p: task.loss(p, idx), params, key=jax.random.key(3), num_probes=200)
    assert abs(row.sharp_trace - float(ref.trace)) <= 5 * np.hypot(row.sharp_trace_se, float(ref.stderr))


def test_vmapped_measurement_equals_separate_calls(node_sweep, measured):
    task, result = node_sweep
    one_by_one = md.measure(task, result, key=jax.random.key(1), runs_per_call=1, **SETTINGS)
    cols = list(md.MeasureConfig().columns)
    np.testing.assert_allclose(one_by_one[cols].to_numpy(), measured[cols].to_numpy(), rtol=2e-4, atol=1e-6)
    # and a call for a single run reproduces its row (per-run keys do not depend on the group)
    single = md.measure(task, result, key=jax.random.key(1), run_ids=[2], mediators=("complexity",), **SETTINGS)
    ccols = list(md.MeasureConfig(mediators=("complexity",)).columns)
    np.testing.assert_allclose(
        single[ccols].to_numpy()[0], measured.set_index("run_id").loc[2, ccols].to_numpy(np.float64), rtol=2e-4
    )


def test_measure_on_image_like_task_uses_per_example_vmap(digits):
    task = make_task(digits, "mlp", hidden=(16,))
    result = sweep(task, grid(batch_size=[32], seed=[0, 1], lr=0.1), Budget(steps=5), key=jax.random.key(0),
                   progress=False)
    table = md.measure(task, result, key=jax.random.key(1), mediators=("noise",), num_examples=64, chunk_size=16)
    assert np.isfinite(table[["noise_trace_cov", "noise_grad_norm_sq", "noise_b_simple"]].to_numpy()).all()
    # the same subset and statistics computed directly
    k_sub = jax.random.split(jax.random.key(1))[0]
    train = np.asarray(task.splits["train"])
    idx = np.sort(train[np.asarray(jax.random.choice(k_sub, train.shape[0], (64,), replace=False))])
    gn = md.gradient_noise(task.per_example_loss, result.params(0), jnp.asarray(idx), chunk_size=16)
    np.testing.assert_allclose(table.noise_trace_cov.iloc[0], float(gn.trace_cov), rtol=1e-4)


def test_measure_rejects_bad_settings(node_sweep):
    task, result = node_sweep
    with pytest.raises(ValueError, match="mediators"):
        md.measure(task, result, key=jax.random.key(0), mediators=("vibes",))
    with pytest.raises(ValueError, match="lanczos_steps"):
        md.measure(task, result, key=jax.random.key(0), lanczos_steps=0)
    with pytest.raises(TypeError, match="unknown setting"):
        md.measure(task, result, key=jax.random.key(0), lanczos_stepz=4)
    with pytest.raises(ValueError, match="not in the sweep"):
        md.measure(task, result, key=jax.random.key(0), run_ids=[99])


def test_default_chunk_size_bounds_per_example_gradient_memory():
    from hgcnet_jax.mediators.measure import default_chunk_size

    assert default_chunk_size(False, 5000, 1000) == 256  # small model: capped at 256
    assert default_chunk_size(False, 5000, 101_770) == 2**24 // 101_770  # 164 examples × P ≤ 2**24
    assert default_chunk_size(False, 5000, 11_000_000) == 1  # ResNet-18 scale: one at a time
    assert default_chunk_size(True, 140, 23_000) is None  # Cora GCN: all train nodes in one pass
    assert default_chunk_size(True, 100_000, 23_000) == 2**24 // 23_000


def test_progress_bar_advances_per_group_of_runs_and_is_silent_when_off(node_sweep, capsys):
    task, result = node_sweep
    kw = dict(key=jax.random.key(1), mediators=("noise",), runs_per_call=2, **SETTINGS)
    capsys.readouterr()
    quiet = md.measure(task, result, progress=False, **kw)
    assert capsys.readouterr().err == ""
    md.measure(task, result, progress=True, **kw)
    err = capsys.readouterr().err
    assert "mediators (noise)" in err and "2/4 [" in err   # 4 runs, 2 per group (the first includes compiling)
    groups: list[int] = []
    again = md.measure(task, result, progress=groups.append, **kw)
    assert groups == [2, 2] and capsys.readouterr().err == ""
    np.testing.assert_array_equal(again.noise_b_simple.to_numpy(), quiet.noise_b_simple.to_numpy())


def test_lambda_max_meets_the_precision_target_on_default_settings(node_sweep):
    """The documented target: with the default settings (4 SLQ probes x 32 Lanczos steps) λ_max is within
    1e-3 relative of a dense eigvalsh on a small model, and both extreme Ritz values lie within their
    residual bound of an eigenvalue (λ_min also above the true minimum: Ritz values are interior)."""
    from jax.flatten_util import ravel_pytree

    task, result = node_sweep
    table = md.measure(task, result, key=jax.random.key(3), mediators=("sharpness",), run_ids=[3])
    idx = task.splits["train"]
    for r in (3,):
        flat, unravel = ravel_pytree(result.params(r))
        dense = jax.hessian(lambda v: task.loss(unravel(v), idx))(flat)
        ev = np.linalg.eigvalsh(np.asarray(dense, np.float64))
        row = table.set_index("run_id").loc[r]
        assert abs(row.sharp_lambda_max - ev[-1]) <= 1e-3 * abs(ev[-1])
        slack = 1e-5 * abs(ev[-1])  # float32 rounding of the HVPs and of the dense reference
        for col in ("sharp_lambda_max", "sharp_lambda_min"):
            nearest = np.min(np.abs(ev - row[col]))
            assert nearest <= row[f"{col}_err"] + slack, (col, nearest, row[f"{col}_err"])
        assert row.sharp_lambda_min >= ev[0] - slack and row.sharp_lambda_max <= ev[-1] + slack


def test_memory_budget_bounds_the_compiled_peak(node_sweep):
    task, result = node_sweep
    # the vmap layout (the accelerators' default): 4 runs vmapped in one call when the budget allows
    kw = dict(mediators=("noise",), noise_bootstrap=8, vmap_width=4)
    free = md.plan_groups(task, result, key=jax.random.key(1), **kw)
    assert free["runs_per_call"] == 4 and free["peak_bytes"] <= free["memory_budget"]
    budget = free["peak_bytes"] - 1
    b = md.measure(task, result, key=jax.random.key(1), memory_budget=budget, **kw)
    plan = b.attrs["measure_plan"]
    # XLA's memory analysis of the program that ran is within the budget, with fewer runs per call
    assert plan["peak_bytes"] <= budget and plan["runs_per_call"] < 4
    a = md.measure(task, result, key=jax.random.key(1), runs_per_call=4, **kw)
    cols = list(md.MeasureConfig(mediators=("noise",)).columns)
    np.testing.assert_allclose(a[cols].to_numpy(), b[cols].to_numpy(), rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="memory_budget"):
        md.plan_groups(task, result, memory_budget=1000, runs_per_call=2, chunk_size=8, **kw)


def test_sharded_measurement_equals_one_device(node_sweep, measured):
    """The 4 runs split over the devices of a 2-D mesh (3 runs x 2 data: all 6 devices measure, one call
    padded with two copies) and of a mesh of 3 (one run per device and call, the CPU default: two calls,
    the second padded): the values of one device."""
    from hgcnet_jax.train import make_mesh

    task, result = node_sweep
    cols = [c for c in measured.columns if c.startswith(("noise_", "sharp_", "complexity_"))]
    for mesh in (make_mesh(jax.devices()[:6], data=2), make_mesh(jax.devices()[:3])):
        table = md.measure(task, result, key=jax.random.key(1), mesh=mesh, **SETTINGS)
        plan = table.attrs["measure_plan"]
        assert plan["runs_per_call"] == plan["devices"] == mesh.devices.size
        np.testing.assert_allclose(table[cols].to_numpy(), measured[cols].to_numpy(), rtol=1e-5, atol=1e-7)
