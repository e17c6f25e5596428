"""A batch of Lasso fits in one vmapped program (``lasso_batch``) against a loop of single solves.

The Granger fits of a pruning step are one Lasso per seed (and per layer) on designs of
the same shape. ``lasso_batch`` keeps one outer working-set state per problem on the host
and runs the inner coordinate descent of all of them as one vmapped program. Here: ``S``
random ``n × p`` problems (float32, as the Granger fits are; each with its own design and
target), at the same α fraction of each problem's α_max and the same tolerance, solved
(a) by a Python loop of ``lasso(..., solver="ws")`` and (b) by one ``lasso_batch`` call.
Best of ``k`` warm calls each (compilation excluded and reported); every problem's
certificate (gap ≤ tol·‖y‖²/n) is checked in both. Ratio = loop time / batch time.
"""

from __future__ import annotations

import os
import time

import numpy as np


def _problems(S, n, p, k, seed=0):
    from benchmarks.lasso_sklearn import _random_problem

    Xs, ys = zip(*(_random_problem(n, p, k, seed=seed + s) for s in range(S)))
    return np.stack(Xs).astype(np.float32), np.stack(ys).astype(np.float32)


def _best(fn, k):
    best, out = np.inf, None
    for _ in range(k):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return out, best


def _compare(X, y, frac, tol, k):
    import jax.numpy as jnp

    from hgcnet_jax.compile_cache import CompileClock
    from hgcnet_jax.prune import lasso, lasso_batch

    S, n, _ = X.shape
    amax = np.max(np.abs(np.einsum("snp,sn->sp", X.astype(np.float64), y.astype(np.float64))), axis=1) / n
    alpha = (frac * amax).astype(np.float32)
    Xj, yj = jnp.asarray(X), jnp.asarray(y)

    def loop():
        return [lasso(Xj[s], yj[s], float(alpha[s]), solver="ws", tol=tol, warn=False) for s in range(S)]

    def batch():
        r = lasso_batch(Xj, yj, alpha, tol=tol, warn=False)
        r.coef.block_until_ready()
        return r

    out = {"alpha_frac": frac, "S": S}
    for name, fn in (("loop", loop), ("batch", batch)):
        with CompileClock() as c:
            t = time.perf_counter()
            fn()
            out[f"{name}_first_s"] = time.perf_counter() - t
        out[f"{name}_compile_s"] = c.compile_seconds
        res, out[f"{name}_s"] = _best(fn, k)
        conv = [bool(r.converged) for r in res] if name == "loop" else [bool(v) for v in np.asarray(res.converged)]
        out[f"{name}_all_converged"] = all(conv)
        nnz = [int(np.sum(np.asarray(r.coef) != 0)) for r in res] if name == "loop" else \
            [int(v) for v in np.sum(np.asarray(res.coef) != 0, axis=1)]
        out[f"{name}_nnz_mean"] = float(np.mean(nnz))
    out["speedup"] = out["loop_s"] / out["batch_s"]
    out["load_average_1min"] = os.getloadavg()[0]
    return out


def run(*, quick: bool = False) -> dict:
    S, n, p, kk = (3, 100, 1000, 10) if quick else (5, 1000, 20000, 200)
    X, y = _problems(S, n, p, kk)
    tol = 1e-4
    rows = {f"a{f:g}": _compare(X, y, f, tol, 2 if quick else 3) for f in (0.1, 0.05)}
    figures = {f"{r}_{k}": v for r, d in rows.items() for k, v in d.items()}
    parts = [f"α={d['alpha_frac']:g} α_max (≈{d['batch_nnz_mean']:.0f} nnz): loop {d['loop_s']:.3f} s, batch "
             f"{d['batch_s']:.3f} s → **{d['speedup']:.2f}×** (all certified: loop {d['loop_all_converged']}, batch "
             f"{d['batch_all_converged']}; compile {d['loop_compile_s']:.1f} s / {d['batch_compile_s']:.1f} s; load "
             f"{d['load_average_1min']:.1f})" for d in rows.values()]
    summary = (f"{S} Lasso problems {n}×{p} float32 (each its own design and target, tol {tol:g}), a loop of "
               f"lasso(solver='ws') against one lasso_batch call (one vmapped inner program), best warm call: "
               + "; ".join(parts))
    return {"title": "lasso_batch: the fits of all seeds as one vmapped batch vs a loop of single solves",
            "figures": figures, "summary": summary}
