"""(a) 16 GCN runs on Cora as one vmapped bucket against a Python loop of 16 jitted single runs.

Kipf's recipe (full batch, 200 epochs, metrics every epoch inside the scan). All
sides are timed warm (compiled once beforehand); the loop calls the compiled
single-run program 16 times. The bucket is timed twice: on one XLA device, and
sharded over one host device per core (``make_mesh()``; the benchmark starts JAX
with ``--xla_force_host_platform_device_count=<cores>``), which is how the engine
uses a multi-core CPU — a single run cannot be split that way.
"""

from __future__ import annotations

from benchmarks._engine_common import host_mesh, jax_cora, timed  # sets XLA_FLAGS before JAX starts


def run(*, quick: bool = False) -> dict:
    import jax

    from hgcnet_jax.train import Budget, grid, make_task, sweep

    n, epochs = (4, 20) if quick else (16, 200)
    ds = jax_cora()
    task = make_task(ds, "gcn")
    runs = grid(batch_size=len(ds.train_idx), lr=0.01, optimizer="adam", l2=5e-4, reg_scope="first_layer",
                seed=range(n))
    budget = Budget(epochs=epochs)
    key = jax.random.key(0)
    mesh = host_mesh()

    def go(rs, m=None):
        return sweep(task, rs, budget, key=key, progress=False, mesh=m)

    go(runs[:1]), go(runs)  # compile the single run and the bucket
    if mesh is not None:
        go(runs, mesh)
    t_loop, loop = timed(lambda: [go([r]) for r in runs])
    t_vmap, res = timed(lambda: go(runs))
    figures = {
        "runs": n,
        "epochs": epochs,
        "host_devices": jax.device_count(),
        "loop_of_single_runs_s": t_loop,
        "vmapped_bucket_1_device_s": t_vmap,
        "ratio_loop_over_bucket_1_device": t_loop / t_vmap,
        "ms_per_run_epoch_loop": 1e3 * t_loop / (n * epochs),
        "ms_per_run_epoch_bucket_1_device": 1e3 * t_vmap / (n * epochs),
        "mean_test_acc": float(res.runs.test_acc.mean()),
        "max_abs_test_acc_diff_loop_vs_bucket": float(
            max(abs(a - b) for a, b in zip(res.runs.sort_values("seed").test_acc, [r.runs.test_acc[0] for r in loop]))
        ),
    }
    summary = (f"{n} runs × {epochs} epochs: loop of single runs {t_loop:.1f} s; one bucket on one device "
               f"{t_vmap:.1f} s → {t_loop / t_vmap:.2f}×")
    if mesh is not None:
        t_shard, _ = timed(lambda: go(runs, mesh))
        k = jax.device_count()
        figures.update({
            "vmapped_bucket_sharded_s": t_shard,
            "ratio_loop_over_bucket_sharded": t_loop / t_shard,
            "ms_per_run_epoch_bucket_sharded": 1e3 * t_shard / (n * epochs),
        })
        summary += f"; sharded over {k} host devices {t_shard:.1f} s → **{t_loop / t_shard:.2f}×** (target ≥ 1.5×)"
    else:
        summary += " (one host device: no sharded figure; target ≥ 1.5×)"
    return {"title": f"(a) {n} GCN runs on Cora: one vmapped bucket vs a loop of jitted single runs",
            "figures": figures, "summary": summary}
