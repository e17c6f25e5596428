"""(a) 16 GCN runs on Cora as one vmapped bucket against a Python loop of 16 jitted single runs.

Kipf's recipe (full batch, 200 epochs, metrics every epoch inside the scan). Both
sides are timed warm (compiled once beforehand); the loop calls the compiled
single-run program 16 times. A second pair uses dense features without input
dropout, which turns the first layer into a GEMM, to show where vmapping pays.
"""

from __future__ import annotations

import jax

from benchmarks._engine_common import jax_cora, timed


def _pair(task, runs, budget):
    from hgcnet_jax.train import sweep

    key = jax.random.key(0)
    sweep(task, runs, budget, key=key, progress=False)  # compile the bucket
    sweep(task, runs[:1], budget, key=key, progress=False)  # compile the single run
    t_vmap, res = timed(lambda: sweep(task, runs, budget, key=key, progress=False))
    t_loop, _ = timed(lambda: [sweep(task, [r], budget, key=key, progress=False) for r in runs])
    return t_vmap, t_loop, float(res.runs.test_acc.mean())


def run(*, quick: bool = False) -> dict:
    from hgcnet_jax.train import Budget, grid, make_task

    n, epochs = (4, 20) if quick else (16, 200)
    ds = jax_cora()
    runs = grid(batch_size=len(ds.train_idx), lr=0.01, optimizer="adam", l2=5e-4, reg_scope="first_layer",
                seed=range(n))
    budget = Budget(epochs=epochs)
    t_vmap, t_loop, acc = _pair(make_task(ds, "gcn"), runs, budget)
    from hgcnet_jax.models.gcn import prepare_gcn

    dense = make_task(ds, "gcn", dropout=0.0)
    dense = type(dense)(**{**dense.__dict__, "data": {**dense.data, "inputs": prepare_gcn(ds.graph, sparse=False)}})
    d_vmap, d_loop, _ = _pair(dense, runs, budget)
    figures = {
        "runs": n,
        "epochs": epochs,
        "vmapped_bucket_s": t_vmap,
        "loop_of_single_runs_s": t_loop,
        "ratio_loop_over_vmap": t_loop / t_vmap,
        "ms_per_run_epoch_vmapped": 1e3 * t_vmap / (n * epochs),
        "ms_per_run_epoch_loop": 1e3 * t_loop / (n * epochs),
        "mean_test_acc": acc,
        "dense_no_input_dropout_vmapped_s": d_vmap,
        "dense_no_input_dropout_loop_s": d_loop,
        "dense_no_input_dropout_ratio": d_loop / d_vmap,
    }
    return {
        "title": f"(a) {n} GCN runs on Cora: one vmapped bucket vs a loop of jitted single runs",
        "figures": figures,
        "summary": (
            f"{n} runs × {epochs} epochs: vmapped {t_vmap:.1f} s vs loop {t_loop:.1f} s → "
            f"{t_loop / t_vmap:.2f}× (target ≥ 1.5×); GEMM-bound variant (dense X, no input dropout): "
            f"{d_loop / d_vmap:.2f}×"
        ),
    }
