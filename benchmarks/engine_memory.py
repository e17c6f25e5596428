"""(d) Peak memory of a 64-run bucket against a 1-run bucket (GCN, Cora, full batch).

Memory is read from XLA's own accounting of the compiled bucket program
(``Compiled.memory_analysis()``: arguments + outputs + temporaries, with the
carried state donated), which is the peak the program needs on the device.
The dataset is an argument shared by all replicas; the growth per replica is
compared with the size of one replica's carried state (parameters, Adam's two
moments, its epoch permutation and counters). Both replica layouts are measured:
the CPU default (``vmap_width=1``: replicas mapped one after another, so one
replica's activations live at a time) and one ``vmap`` over the whole bucket
(the accelerator default, where every replica's activations are live at once).
"""

from __future__ import annotations

import importlib

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks._engine_common import jax_cora


def _bytes(tree) -> int:
    return int(sum(np.prod(x.shape) * x.dtype.itemsize for x in jax.tree.leaves(tree)))


def run(*, quick: bool = False) -> dict:
    from hgcnet_jax.train import Budget, Intervention, make_task

    S = importlib.import_module("hgcnet_jax.train.sweep")
    ds = jax_cora()
    task = make_task(ds, "gcn")
    n_train = len(ds.train_idx)
    budget = Budget(epochs=2)
    data = {**task.data, "train": task.splits["train"], "splits": dict(task.splits)}
    masks = S._reg_masks(jax.eval_shape(task.init, jax.random.key(0)))
    out = {}
    for width in (1, None):
        for R in (1, 64):
            plan = S._Plan(n_train, n_train, 1, 2, 1, 2, 2, False, False, width)
            runs = [Intervention(n_train, lr=0.01, optimizer="adam", seed=s) for s in range(R)]
            hp = jax.tree.map(jnp.asarray, S._hp_arrays(runs))
            carry = S._init_carry(task, jax.random.key(0), np.arange(R, dtype=np.int32), n_train)
            compiled = S._compiled.lower(carry, hp, data, masks, jnp.int32(0), spec=task.spec, plan=plan, mesh=None).compile()
            m = compiled.memory_analysis()
            out[width, R] = {
                "peak": m.argument_size_in_bytes + m.output_size_in_bytes - m.alias_size_in_bytes
                + m.temp_size_in_bytes,
                "temp": m.temp_size_in_bytes,
                "carry": _bytes(carry),
            }
    params = _bytes(task.init(jax.random.key(0)))
    data_b = _bytes(data)
    carry_per_replica = (out[1, 64]["carry"] - out[1, 1]["carry"]) / 63
    x = task.data["inputs"].nodes
    n, h = ds.x.shape[0], task.model_kwargs.get("hidden", 16)
    # Per-replica activations of one training step: the gathered rows W[cols] of the sparse
    # first layer (nnz x h) dominate, then node activations (n x h) and their gradients.
    act = 4 * (int(x.vals.shape[0]) * h + 4 * n * h)
    figures = {
        "data_bytes": data_b,
        "params_bytes_per_replica": params,
        "params_and_adam_state_bytes_per_replica": 3 * params,
        "carry_bytes_per_replica": carry_per_replica,
        "per_replica_activation_estimate_bytes": act,
    }
    parts = []
    for width, label in ((1, "CPU default, vmap_width=1"), (None, "one vmap over the bucket")):
        key = "w1" if width == 1 else "vmap"
        growth = (out[width, 64]["peak"] - out[width, 1]["peak"]) / 63
        figures.update({
            f"{key}_peak_bytes_R1": out[width, 1]["peak"],
            f"{key}_peak_bytes_R64": out[width, 64]["peak"],
            f"{key}_temp_bytes_R1": out[width, 1]["temp"],
            f"{key}_temp_bytes_R64": out[width, 64]["temp"],
            f"{key}_growth_bytes_per_extra_replica": growth,
            f"{key}_growth_over_carry_per_replica": growth / carry_per_replica,
            f"{key}_data_copies_implied_by_growth": growth / data_b,
        })
        parts.append(
            f"{label}: peak {out[width, 1]['peak'] / 2**20:.1f} MiB (1 run) → {out[width, 64]['peak'] / 2**20:.1f} MiB "
            f"(64 runs), +{growth / 2**10:.0f} KiB per extra run = {growth / carry_per_replica:.2f}× one run's carried "
            f"state ({carry_per_replica / 2**10:.0f} KiB: params {params / 2**10:.0f} KiB + Adam moments + "
            "permutation and counters)"
        )
    return {
        "title": "(d) peak memory of a 64-run vs a 1-run GCN bucket on Cora (XLA memory analysis)",
        "figures": figures,
        "summary": "; ".join(parts) + (
            f"; data ({data_b / 2**20:.2f} MiB) held once, not replicated (per-run activations of the sparse "
            f"first layer ≈ {act / 2**10:.0f} KiB)"
        ),
    }
