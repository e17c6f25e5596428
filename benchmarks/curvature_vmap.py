"""Top-5 Hessian eigenvalues of 16 runs: one vmapped compiled call against 16 sequential calls.

The 16 "runs" are the MLP 784→128→10 (101,770 parameters) from 16 torch seeds, each
trained for 50 Adam steps on the same 2,048 Fashion-MNIST images (fewer in --quick).
Sequential: the jitted single-run function called 16 times. Vmapped:
``jit(vmap(top_eigenvalues))`` over the stacked parameters, one call. Same key per
run in both, so the answers agree (checked). Compile times excluded and reported.
"""

from __future__ import annotations

import os
import time

import numpy as np

from benchmarks import _curvature_common as common


def run(*, quick: bool = False) -> dict:
    import jax
    import jax.numpy as jnp

    from hgcnet_jax import curvature as cv

    R = 4 if quick else 16
    n = 256 if quick else common.N_IMAGES
    x, y = common.fashion_mnist(n)
    loss = common.make_loss(x, y)
    runs = [common.jax_params(common.torch_mlp(x, y, seed=s, train_steps=5 if quick else 50)[0]) for s in range(R)]
    stacked = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *runs)
    keys = jax.random.split(jax.random.key(0), R)
    # a fixed number of Lanczos steps, so both sides do exactly the same work
    f = lambda p, k: cv.top_eigenvalues(loss, p, 5, key=k, num_steps=40, tol=0.0).eigenvalues  # noqa: E731

    t0 = time.perf_counter()
    single = jax.jit(f).lower(runs[0], keys[0]).compile()
    c_single = time.perf_counter() - t0
    t0 = time.perf_counter()
    batched = jax.jit(jax.vmap(f)).lower(stacked, keys).compile()
    c_batched = time.perf_counter() - t0

    seq_out = []

    def sequential():
        seq_out.clear()
        seq_out.extend(jax.block_until_ready(single(runs[r], keys[r])) for r in range(R))

    repeats = 2 if quick else 3
    t_seq, _ = common.timeit(sequential, repeats=repeats)
    out = {}

    def vmapped():
        out["v"] = jax.block_until_ready(batched(stacked, keys))

    t_vm, _ = common.timeit(vmapped, repeats=repeats)
    # The two layouts the issue names, to locate the loss: the runs mapped (lax.map) inside one
    # compiled program, and the operator products alone (one HVP per run), vmapped vs a loop.
    mapped = jax.jit(lambda st, ks: jax.lax.map(lambda a: f(*a), (st, ks))).lower(stacked, keys).compile()

    def in_one_map():
        out["m"] = jax.block_until_ready(mapped(stacked, keys))

    t_map, _ = common.timeit(in_one_map, repeats=repeats)
    h = lambda p: cv.hvp(loss, p, p)  # noqa: E731
    h1, hv = jax.jit(h), jax.jit(jax.vmap(h))
    t_hvp_seq, _ = common.timeit(lambda: [jax.block_until_ready(h1(runs[r])) for r in range(R)], repeats=repeats)
    t_hvp_vm, _ = common.timeit(lambda: jax.block_until_ready(hv(stacked)), repeats=repeats)
    diff = float(np.max(np.abs(np.asarray(out["v"]) - np.stack([np.asarray(s) for s in seq_out]))))
    scale = float(np.max(np.abs(np.asarray(out["v"]))))
    figures = {
        "runs": R,
        "num_images": n,
        "lanczos_steps": 40,
        "sequential_s": t_seq,
        "vmapped_s": t_vm,
        "speedup": t_seq / t_vm,
        "compile_single_s": c_single,
        "compile_vmapped_s": c_batched,
        "max_abs_diff_vmapped_vs_sequential": diff,
        "max_eigenvalue": scale,
        "mapped_in_one_program_s": t_map,
        "speedup_mapped": t_seq / t_map,
        "hvp_sequential_s": t_hvp_seq,
        "hvp_vmapped_s": t_hvp_vm,
        "speedup_hvp_only": t_hvp_seq / t_hvp_vm,
        "load_average_end": os.getloadavg()[0],
    }
    summary = (
        f"{R} runs' top-5 spectra (40 Lanczos steps each): vmapped {t_vm:.2f}s vs sequential {t_seq:.2f}s "
        f"= {t_seq / t_vm:.2f}x; lax.map over runs in one program {t_map:.2f}s = {t_seq / t_map:.2f}x; "
        f"HVPs alone vmapped {t_hvp_seq / t_hvp_vm:.2f}x; same eigenvalues to {diff / scale:.1e} relative; "
        f"load average {os.getloadavg()[0]:.1f} at the end"
    )
    return {"title": "Spectra of 16 runs, vmapped vs sequential (CPU)", "figures": figures, "summary": summary}
