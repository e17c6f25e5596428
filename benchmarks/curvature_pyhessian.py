"""Top-1 / top-5 Hessian eigenvalues and the trace: hgcnet_jax.curvature against PyHessian 0.1.

Same model (MLP 784→128→10, 101,770 parameters), same weights (copied from torch),
same 2,048 Fashion-MNIST images, same CPU. The reference eigenvalues are ours in
float64 with a residual tolerance of 1e-10 (each Ritz value then lies within
1e-10·|λ| of a true eigenvalue). PyHessian runs its documented defaults
(power iteration with deflation, ``tol=1e-3``, ``maxIter=100``; Hutchinson trace
until the running mean changes by < 1e-3). Its spectral density needs ``torch.eig``,
removed from torch, so only the eigenvalues and the trace are compared.

JAX timings exclude compilation (reported separately); every figure is the median
of several calls after a warm-up call.
"""

from __future__ import annotations

import numpy as np

from benchmarks import _curvature_common as common


def run(*, quick: bool = False) -> dict:
    import jax
    import jax.numpy as jnp
    import torch

    from hgcnet_jax import curvature as cv

    torch.set_num_threads(max(1, torch.get_num_threads()))
    n = 512 if quick else common.N_IMAGES
    repeats = 2 if quick else 5
    x, y = common.fashion_mnist(n)
    model, crit, data = common.torch_mlp(x, y, train_steps=5 if quick else 50)
    params = common.jax_params(model)
    loss = common.make_loss(x, y)
    P = sum(int(np.prod(a.shape)) for a in jax.tree_util.tree_leaves(params))

    # ---- reference: float64, tight residual tolerance ------------------------------
    with jax.enable_x64(True):
        p64 = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), params)
        loss64 = common.make_loss(x.astype(np.float64), y)
        ref = cv.top_eigenvalues(loss64, p64, 5, key=jax.random.key(123), num_steps=200, tol=1e-10, check_every=4)
        ref_eigs = np.asarray(ref.eigenvalues, np.float64)
        tref = cv.hessian_trace(loss64, p64, key=jax.random.key(7), num_probes=300 if quick else 1500,
                                method="hutch++", batch_size=50)
        ref_trace, ref_trace_se = float(tref.trace), float(tref.stderr)

    # ---- PyHessian ---------------------------------------------------------------
    import sys

    import pyhessian

    ph_mod = sys.modules["pyhessian.hessian"]  # the module (the package re-exports the class under the same name)

    counter = {"hvp": 0}
    original = ph_mod.hessian_vector_product

    def counting(*a, **k):
        counter["hvp"] += 1
        return original(*a, **k)

    ph_mod.hessian_vector_product = counting
    try:
        H = pyhessian.hessian(model, crit, data=data, cuda=False)

        def ph_top(k):
            counter["hvp"] = 0
            torch.manual_seed(len(ph_runs))
            eigs, _ = H.eigenvalues(top_n=k)
            ph_runs.append((np.asarray(eigs, np.float64), counter["hvp"]))

        ph_runs: list = []
        t_ph1, _ = common.timeit(lambda: ph_top(1), repeats=repeats)
        ph1 = ph_runs[1:]
        ph_runs = []
        t_ph5, _ = common.timeit(lambda: ph_top(5), repeats=repeats)
        ph5 = ph_runs[1:]
        ph_traces = []

        def ph_trace():
            counter["hvp"] = 0
            ph_traces.append((float(np.mean(H.trace())), counter["hvp"]))

        t_phtr, _ = common.timeit(ph_trace, repeats=repeats)
        ph_traces = ph_traces[1:]
    finally:
        ph_mod.hessian_vector_product = original

    def rel_err(eigs, k):
        return float(np.max(np.abs(np.asarray(eigs)[:k] - ref_eigs[:k]) / np.abs(ref_eigs[:k])))

    # PyHessian's deflated power iteration does not guarantee the order: compare sorted values
    ph1_err = max(rel_err(e, 1) for e, _ in ph1)
    ph5_err = max(rel_err(np.sort(e)[::-1], 5) for e, _ in ph5)
    ph5_hvps = [c for _, c in ph5]
    ph_tr = np.array([t for t, _ in ph_traces])

    # ---- ours ----------------------------------------------------------------------
    def compiled(fn, *args):
        import time

        t0 = time.perf_counter()
        c = jax.jit(fn).lower(*args).compile()
        return c, time.perf_counter() - t0

    key = jax.random.key(0)
    top1_fn = lambda p, k: cv.top_eigenvalues(loss, p, 1, key=k, tol=3e-2)  # noqa: E731
    top5_fn = lambda p, k: cv.top_eigenvalues(loss, p, 5, key=k, tol=2e-3)  # noqa: E731
    trace_fn = lambda p, k: cv.hessian_trace(loss, p, key=k, num_probes=30, method="hutch++")  # noqa: E731
    top1, c1 = compiled(top1_fn, params, key)
    top5, c5 = compiled(top5_fn, params, key)
    trc, ctr = compiled(trace_fn, params, key)

    keys = list(jax.random.split(jax.random.key(1), repeats + 1))
    outs: dict[str, list] = {"top1": [], "top5": [], "trace": []}

    def call(name, f):
        def go():
            r = f(params, keys[len(outs[name]) % len(keys)])
            jax.block_until_ready(r)
            outs[name].append(r)

        return go

    t_o1, _ = common.timeit(call("top1", top1), repeats=repeats)
    t_o5, _ = common.timeit(call("top5", top5), repeats=repeats)
    t_otr, _ = common.timeit(call("trace", trc), repeats=repeats)
    o1_err = max(rel_err(r.eigenvalues, 1) for r in outs["top1"])
    o5_err = max(rel_err(r.eigenvalues, 5) for r in outs["top5"])
    o1_steps = [int(r.num_steps) for r in outs["top1"]]
    o5_steps = [int(r.num_steps) for r in outs["top5"]]
    o_tr = np.array([float(r.trace) for r in outs["trace"]])
    o_tr_se = float(np.median([float(r.stderr) for r in outs["trace"]]))

    figures = {
        "num_params": P,
        "num_images": n,
        "reference_top5": [float(v) for v in ref_eigs],
        "reference_trace": ref_trace,
        "reference_trace_se": ref_trace_se,
        "pyhessian_top1_s": t_ph1,
        "pyhessian_top1_hvps": int(np.median([c for _, c in ph1])),
        "pyhessian_top1_max_rel_err": ph1_err,
        "pyhessian_top5_s": t_ph5,
        "pyhessian_top5_hvps_min": int(min(ph5_hvps)),
        "pyhessian_top5_hvps_max": int(max(ph5_hvps)),
        "pyhessian_top5_max_rel_err": ph5_err,
        "pyhessian_trace_s": t_phtr,
        "pyhessian_trace_hvps": int(np.median([c for _, c in ph_traces])),
        "pyhessian_trace_values": [float(v) for v in ph_tr],
        "pyhessian_trace_spread_pct": float(100 * (ph_tr.max() - ph_tr.min()) / ref_trace),
        "ours_top1_s": t_o1,
        "ours_top1_steps": int(np.median(o1_steps)),
        "ours_top1_max_rel_err": o1_err,
        "ours_top1_compile_s": c1,
        "ours_top5_s": t_o5,
        "ours_top5_steps": int(np.median(o5_steps)),
        "ours_top5_max_rel_err": o5_err,
        "ours_top5_compile_s": c5,
        "ours_trace_s": t_otr,
        "ours_trace_hvps": 30,
        "ours_trace_values": [float(v) for v in o_tr],
        "ours_trace_se": o_tr_se,
        "ours_trace_compile_s": ctr,
        "speedup_top1": t_ph1 / t_o1,
        "speedup_top5": t_ph5 / t_o5,
        "speedup_trace": t_phtr / t_otr,
    }
    summary = (
        f"MLP {P:,} params, {n:,} F-MNIST images: top-5 {t_o5:.2f}s (max rel err {o5_err:.1e}) vs PyHessian "
        f"{t_ph5:.2f}s ({ph5_err:.1e}) = {t_ph5 / t_o5:.1f}x; top-1 {t_o1:.2f}s ({o1_err:.1e}) vs {t_ph1:.2f}s "
        f"({ph1_err:.1e}) = {t_ph1 / t_o1:.1f}x; trace (Hutch++, 30 HVPs) {t_otr:.2f}s, "
        f"{float(np.mean(o_tr)):.1f} ± {o_tr_se:.1f} (ref {ref_trace:.1f} ± {ref_trace_se:.1f}) vs PyHessian "
        f"{t_phtr:.2f}s, spread {figures['pyhessian_trace_spread_pct']:.0f}%"
    )
    return {"title": "Hessian top-k and trace vs PyHessian 0.1 (CPU)", "figures": figures, "summary": summary}
