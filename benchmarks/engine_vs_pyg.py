"""(b) 16 full-batch GCN runs on Cora: our vmapped bucket against PyG run one after another.

PyG 2.8.1 (torch CPU) with its GCNConv (cached normalisation), Kipf's recipe,
exactly as a PyG user writes the loop; its Planetoid reads the same raw files.
Our side is one bucket sharded over one XLA host device per core (torch uses
as many intra-op threads); it includes compilation (a user pays it once per
sweep) and is also reported warm.
"""

from __future__ import annotations

from benchmarks._engine_common import host_mesh, jax_cora, pyg_cora, pyg_train, timed  # before JAX starts


def run(*, quick: bool = False) -> dict:
    import jax
    import torch

    from hgcnet_jax.train import Budget, grid, make_task, sweep

    n, epochs = (4, 20) if quick else (16, 200)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    data = pyg_cora()
    pyg = [pyg_train(data, seed=s, epochs=epochs) for s in range(n)]
    t_pyg = sum(w for w, _, _ in pyg)
    acc_pyg = sum(a for _, _, a in pyg) / n

    ds = jax_cora()
    task = make_task(ds, "gcn")
    runs = grid(batch_size=len(ds.train_idx), lr=0.01, optimizer="adam", l2=5e-4, reg_scope="first_layer",
                seed=range(n))
    budget = Budget(epochs=epochs)
    mesh = host_mesh()
    t_cold, res = timed(lambda: sweep(task, runs, budget, key=jax.random.key(0), progress=False, mesh=mesh))
    t_warm, _ = timed(lambda: sweep(task, runs, budget, key=jax.random.key(0), progress=False, mesh=mesh))
    figures = {
        "runs": n,
        "epochs": epochs,
        "host_devices": jax.device_count(),
        "torch_threads": torch.get_num_threads(),
        "pyg_total_s": t_pyg,
        "pyg_ms_per_epoch": 1e3 * t_pyg / (n * epochs),
        "pyg_mean_test_acc": acc_pyg,
        "ours_cold_s": t_cold,
        "ours_warm_s": t_warm,
        "ours_mean_test_acc": float(res.runs.test_acc.mean()),
        "ratio_cold": t_pyg / t_cold,
        "ratio_warm": t_pyg / t_warm,
    }
    return {
        "title": f"(b) {n} full-batch GCN runs on Cora vs PyG one after another",
        "figures": figures,
        "summary": (
            f"PyG {t_pyg:.1f} s ({figures['pyg_ms_per_epoch']:.1f} ms/epoch) vs ours {t_cold:.1f} s with compile, "
            f"{t_warm:.1f} s warm → {t_pyg / t_cold:.2f}× / {t_pyg / t_warm:.2f}× (target ≥ 3×)"
        ),
    }
