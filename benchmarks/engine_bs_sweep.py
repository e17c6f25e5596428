"""(c) The batch-size sweep B ∈ {16 … 512} × 10 seeds × 200 epochs, mini-batch GCN on Cora's full split.

Ours is run for real: the whole sweep (6 buckets of 10 replicas, metrics every
epoch, sharded over one host device per core), compilation included. The same
sweep in PyG takes over an hour on this machine, so PyG's side is
**extrapolated** from measured per-step times: ``pyg_steps`` steps of one run per
batch size (a PyG user runs the sweep one run after another, so its total is
steps × per-step time × runs; PyG's per-step time does not depend on B because
every step propagates the full graph). The number of steps is exact:
200 · floor(n_train / B) per run.
"""

from __future__ import annotations

from benchmarks._engine_common import host_mesh, jax_cora, pyg_cora, pyg_train, timed  # before JAX starts

BATCH_SIZES = (16, 32, 64, 128, 256, 512)


def run(*, quick: bool = False) -> dict:
    import jax

    from hgcnet_jax.train import Budget, grid, make_task, sweep

    seeds, epochs = (2, 2) if quick else (10, 200)
    pyg_steps = 20 if quick else 200
    ds = jax_cora("full")
    n_train = len(ds.train_idx)
    task = make_task(ds, "gcn")
    data = pyg_cora("full")
    figures = {"n_train": n_train, "host_devices": jax.device_count()}
    total_pyg = 0.0
    for B in BATCH_SIZES:
        wall, steps, _ = pyg_train(data, seed=0, epochs=10**6, batch_size=B, max_steps=pyg_steps)
        steps_run = epochs * (n_train // B)
        figures[f"B{B}_steps_per_run"] = steps_run
        figures[f"B{B}_pyg_ms_per_step"] = 1e3 * wall / steps
        total_pyg += wall / steps * steps_run * seeds
    runs = grid(batch_size=list(BATCH_SIZES), lr=0.01, optimizer="adam", l2=5e-4, reg_scope="first_layer",
                seed=range(seeds))
    t_ours, res = timed(lambda: sweep(task, runs, Budget(epochs=epochs), key=jax.random.key(0), progress=False,
                                      mesh=host_mesh()))
    by_b = res.runs.groupby("batch_size").test_acc.agg(["mean", "std"])
    for B in BATCH_SIZES:
        figures[f"B{B}_ours_test_acc_mean"] = float(by_b.loc[B, "mean"])
        figures[f"B{B}_ours_bucket_wall_s"] = float(res.runs[res.runs.batch_size == B].bucket_wall_time_s.iloc[0]
                                                    + res.runs[res.runs.batch_size == B].bucket_compile_time_s.iloc[0])
    figures["pyg_total_extrapolated_s"] = total_pyg
    figures["ours_total_measured_s"] = t_ours
    figures["ratio"] = total_pyg / t_ours
    return {
        "title": "(c) batch-size sweep, mini-batch GCN on Cora's full split, vs PyG",
        "figures": figures,
        "summary": (
            f"6 B × {seeds} seeds × {epochs} epochs: ours measured {t_ours / 60:.1f} min (whole sweep, compile "
            f"included, {jax.device_count()} host devices) vs PyG {total_pyg / 60:.1f} min extrapolated from "
            f"{pyg_steps} measured steps per B → {total_pyg / t_ours:.1f}× (target ≥ 10×)"
        ),
    }
