"""The JAX Lasso against the strongest CPU Lassos — scikit-learn, celer, skglm — at equal precision.

A nominal ``tol`` means something different to every solver (scikit-learn and celer
stop on a duality gap, skglm on the distance of ``-grad`` to the subdifferential, ours
on the gap of the rescaled residual), so equal ``tol`` is not equal precision. Here every
solver is driven to the *same achieved* certificate, computed identically from the
coefficients it returns:

    gap(w) = P(w) - D(s R),  R = y - Xw,  s = min(1, n alpha / ||X^T R||_inf),
    P(w) = ||R||^2 / (2n) + alpha ||w||_1,  D(nu) = (y^T nu - ||nu||^2 / 2) / n,

(objective ``||y - Xw||^2/(2n) + alpha ||w||_1``, no intercept, float64), and the target
is ``gap <= 1e-6 * ||y||^2 / n``. Each solver's own ``tol`` is tightened by factors of
10 from 1e-4 until its returned coefficients meet that target; the ``tol`` used and the
gap achieved are reported. Times are the best of ``k`` warm calls in this process
(numba and XLA compilation excluded; our first call — XLA compilation of its programs for
the design's shape — is reported on its own, with the number of XLA compilations it made,
counted from JAX's compile events). Ratios are ours / fastest peer (below 1: ours is
faster). The 1-minute load average is recorded: on a shared machine times move with it.
Every peer gets its preferred memory layout (a Fortran-ordered copy of ``X``, made once).

Problems: the ``random`` n = 1000, p = 20000 Gaussian design of ``lasso_sklearn`` at
alpha in {0.1, 0.05, 0.01} alpha_max; and, unless ``quick``, the ``lenet_fc1`` Granger
design of ``lasso_sklearn`` (a real LeNet-5 layer) at 0.05 alpha_max, and, once
``experiments/prune_granger_fair`` has pre-trained its network, that experiment's own
fc1 design (1,015 × 48,000, the authors' recipe) at 0.05 and 0.01 alpha_max against celer
and skglm (scikit-learn takes minutes per fit there).
"""

from __future__ import annotations

import os
import time
import warnings

import numpy as np

from hgcnet_jax.compile_cache import CompileClock

TARGET = 1e-6            # achieved gap <= TARGET * ||y||^2 / n, for every solver
TOLS = tuple(10.0 ** -k for k in range(4, 15))   # each solver's own tol, tightened in turn
PEERS = ("sklearn", "celer", "skglm")


def gap_of(X, y, w, alpha):
    """``(primal, gap)`` of ``w``: primal minus the dual value of the rescaled residual (float64, numpy)."""
    n = X.shape[0]
    w = np.asarray(w, dtype=np.float64)
    r = y - X @ w
    corr = r @ X
    cinf = float(np.max(np.abs(corr)))
    s = min(1.0, n * alpha / cinf) if cinf > 0 else 1.0
    nu = s * r
    primal = 0.5 * float(r @ r) / n + alpha * float(np.abs(w).sum())
    dual = (float(y @ nu) - 0.5 * float(nu @ nu)) / n
    return primal, primal - dual


def _fitters(X, Xf, Xj, y, yj, alpha):
    """``name -> (tol -> coef)`` for each solver, all without intercept, float64."""
    import celer
    import jax
    import skglm
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import Lasso

    from hgcnet_jax.prune import lasso

    def quiet(fn):
        def run(tol):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                warnings.simplefilter("ignore", UserWarning)
                return fn(tol)
        return run

    def ours(tol):
        r = lasso(Xj, yj, alpha, solver="ws", tol=tol, warn=False)
        return np.asarray(jax.block_until_ready(r.coef))

    return {
        "sklearn": quiet(lambda tol: Lasso(alpha=alpha, fit_intercept=False, tol=tol,
                                           max_iter=1_000_000).fit(Xf, y).coef_),
        "celer": quiet(lambda tol: celer.Lasso(alpha=alpha, fit_intercept=False, tol=tol, max_iter=1000,
                                               max_epochs=1_000_000).fit(Xf, y).coef_),
        "skglm": quiet(lambda tol: skglm.Lasso(alpha=alpha, fit_intercept=False, tol=tol, max_iter=1000,
                                               max_epochs=1_000_000).fit(Xf, y).coef_),
        "ours": quiet(ours),
    }


def _best(fn, k, budget_s):
    """Best of up to ``k`` calls (at least 2), stopping early once ``budget_s`` is spent."""
    best, spent, runs, out = np.inf, 0.0, 0, None
    while runs < k and (runs < 2 or spent < budget_s):
        t = time.perf_counter()
        out = fn()
        dt = time.perf_counter() - t
        best, spent, runs = min(best, dt), spent + dt, runs + 1
    return out, best, runs


def _compare(X, y, frac, *, k, budget_s, peers=PEERS):
    import jax.numpy as jnp

    from hgcnet_jax.prune import lasso, solvers

    n = X.shape[0]
    alpha = frac * float(np.max(np.abs(X.T @ y)) / n)
    target = TARGET * float(y @ y) / n
    Xf = np.asfortranarray(X)
    Xj, yj = jnp.asarray(X), jnp.asarray(y)
    fit = _fitters(X, Xf, Xj, y, yj, alpha)
    out = {"alpha": alpha, "alpha_frac": frac, "target_gap": target}

    # Our first call: XLA compiles (counted) + the solve.
    with CompileClock() as comp:
        t = time.perf_counter()
        fit["ours"](TOLS[0])
        out["ours_first_call_s"] = time.perf_counter() - t
    out["ours_first_call_compiles"] = comp.compiles
    out["ours_first_call_compile_s"] = comp.compile_seconds
    out["ours_ws_solve_programs"] = int(solvers._ws_solve._cache_size())

    for name in (*peers, "ours"):
        first = None
        for tol in TOLS:
            t = time.perf_counter()
            w = fit[name](tol)
            first = time.perf_counter() - t if first is None else first
            _, g = gap_of(X, y, w, alpha)
            if g <= target:
                break
        out[f"{name}_first_try_s"] = first           # includes numba's compile for skglm
        with CompileClock() as comp:
            w, best, runs = _best(lambda: fit[name](tol), k, budget_s)
        obj, g = gap_of(X, y, w, alpha)
        out.update({f"{name}_s": best, f"{name}_runs": runs, f"{name}_tol": tol, f"{name}_gap": g,
                    f"{name}_gap_met": bool(g <= target), f"{name}_objective": obj,
                    f"{name}_nnz": int(np.sum(w != 0))})
        if name == "ours":
            out["ours_warm_compiles"] = comp.compiles       # 0: nothing recompiles when warm
            res = lasso(Xj, yj, alpha, solver="ws", tol=tol, warn=False)
            out["ours_epochs"] = int(res.n_iter)         # coordinate epochs summed over the inner solves
            out["ours_ws_solve_programs_after"] = int(solvers._ws_solve._cache_size())
    fastest = min(peers, key=lambda p: out[f"{p}_s"])
    out["fastest_peer"] = fastest
    out["ratio_ours_over_fastest_peer"] = out["ours_s"] / out[f"{fastest}_s"]
    fast2 = min(("celer", "skglm"), key=lambda p: out[f"{p}_s"]) if {"celer", "skglm"} <= set(peers) else fastest
    out["speedup_vs_faster_of_celer_skglm"] = out[f"{fast2}_s"] / out["ours_s"]
    out["load_average_1min"] = os.getloadavg()[0]
    return out


def _experiment_design(steps: int = 1008):
    """The authors'-recipe Granger design of LeNet-5's fc1 in ``experiments/prune_granger_fair``.

    From that experiment's pre-trained checkpoint (seed 0; ``None`` until its
    pre-training has run): ``steps`` plain-SGD steps (lr 1e-3) recorded, consecutive-step
    target, raw Δθ² columns of the ``Dense_0`` kernel (400 × 120 = 48,000 weights) — the
    ≥ 1,000-row fit of one pruning iteration there.
    """
    import sys
    from pathlib import Path

    import jax

    repo = Path(__file__).resolve().parents[1]
    ckpt = repo / "experiments" / "state" / "prune_granger_fair" / "theta0.npz"
    if not ckpt.exists():
        return None
    sys.path.insert(0, str(repo / "experiments"))
    import prune_granger_fair as pgf

    exp = pgf.Experiment(pgf.FULL, None, print)
    with np.load(ckpt, allow_pickle=False) as z:
        theta = exp.net.from_np({k: z[k] for k in z.files})
    first = lambda t: jax.tree.map(lambda x: x[:1], t)             # noqa: E731
    _, rec = exp.trainer.record(first(theta), first(exp.net.ones), key=jax.random.fold_in(exp.key, 5000),
                                steps=steps, lr=pgf.FULL.prune_lr, chunk_steps=8)
    X, y = rec.design(0, target="consecutive", features="sq")
    return X[:, rec.layer_slices["Dense_0/kernel"]].astype(np.float64), y.astype(np.float64)


def run(*, quick: bool = False) -> dict:
    import jax

    from benchmarks.lasso_sklearn import _random_problem

    fracs = (0.1, 0.05, 0.01)
    rows = {}
    with jax.enable_x64(True):
        n, p, kk = (200, 2000, 20) if quick else (1000, 20000, 200)
        X, y = _random_problem(n, p, kk)
        for frac in fracs:
            rows[f"random_a{frac:g}"] = _compare(X, y, frac, k=2 if quick else 5, budget_s=1.0 if quick else 15.0)
        lenet = None
        if not quick:
            from benchmarks.lasso_sklearn import _lenet_design

            Xl, yl, _ = _lenet_design(steps=200, n_train=8000)
            # scikit-learn takes ~25 s per fit on this design (lasso_sklearn): one timed call only.
            lenet = _compare(Xl, yl, 0.05, k=3, budget_s=10.0)
            rows["lenet_fc1_a0.05"] = lenet
            design = _experiment_design()
            if design is not None:
                Xp, yp = design
                # scikit-learn needs minutes per fit here (40 s on the 200-row design): celer and skglm only
                for frac in (0.05, 0.01):
                    rows[f"pretrained_fc1_a{frac:g}"] = _compare(Xp, yp, frac, k=3, budget_s=10.0,
                                                                 peers=("celer", "skglm"))
    figures = {f"{r}_{key}": v for r, d in rows.items() for key, v in d.items()
               if not isinstance(v, str)}
    figures.update({f"{r}_fastest_peer_is_{d['fastest_peer']}": 1 for r, d in rows.items()})
    figures["target_gap_rel"] = TARGET

    def line(tag, d):
        sk = f"sklearn {d['sklearn_s']:.3f} s (tol {d['sklearn_tol']:.0e}), " if "sklearn_s" in d else ""
        return (f"{tag}: {sk}celer {d['celer_s']:.3f} s "
                f"(tol {d['celer_tol']:.0e}), skglm {d['skglm_s']:.3f} s (tol {d['skglm_tol']:.0e}), ours "
                f"{d['ours_s']:.3f} s (tol {d['ours_tol']:.0e}; first call {d['ours_first_call_s']:.1f} s, "
                f"{d['ours_first_call_compiles']} XLA compiles): {1.0 / d['ratio_ours_over_fastest_peer']:.2f}× "
                f"the speed of the fastest peer ({d['fastest_peer']}: its time over ours), "
                f"load {d['load_average_1min']:.1f}")

    parts = [line(f"α={d['alpha_frac']:g} α_max ({d['ours_nnz']} nnz)", d) for r, d in rows.items()
             if r.startswith("random")]
    if lenet is not None:
        parts.append(line(f"LeNet-5 fc1 {Xl.shape[0]}×{Xl.shape[1]} α=0.05 α_max ({lenet['ours_nnz']} nnz)", lenet))
    for r, d in rows.items():
        if r.startswith("pretrained"):
            parts.append(line(f"the pre-trained LeNet-5's fc1 design of prune_granger_fair {Xp.shape[0]}×{Xp.shape[1]} "
                              f"(raw Δθ², consecutive target) α={d['alpha_frac']:g} α_max ({d['ours_nnz']} nnz)", d))
    last = rows[f"random_a{fracs[-1]:g}"]
    compile_s = sum(rows[f"random_a{f:g}"]["ours_first_call_compile_s"] for f in fracs)
    summary = (f"Lasso, float64, every solver to the same achieved duality gap ≤ {TARGET:g}·‖y‖²/n "
               f"(computed identically from its coefficients), best warm call; {n}×{p} random, " + "; ".join(parts)
               + f". Ours compiles its inner working-set program once per design shape (a fixed capacity per "
               f"shape): {last['ours_ws_solve_programs_after']} program(s) after the three α on the random design, "
               f"{compile_s:.1f} s of XLA compile in total")
    if lenet is not None:
        summary += (f", {lenet['ours_ws_solve_programs_after']} after the LeNet design as well (one per shape), "
                    f"its first call {lenet['ours_first_call_compile_s']:.1f} s of compile")
    short = [d for d in rows.values() if d["speedup_vs_faster_of_celer_skglm"] < 1.0]
    if short:
        summary += (". Target (≥ 1× the faster of celer/skglm) NOT met at " + ", ".join(
            f"α={d['alpha_frac']:g} α_max ({'LeNet' if d is lenet else 'pre-trained LeNet' if 'celer_s' in d and 'sklearn_s' not in d else 'random'}): ours "
            f"{1.0 / d['speedup_vs_faster_of_celer_skglm']:.2f}× slower, {d['ours_epochs']} CD epochs at "
            f"{d['ours_nnz']} nonzeros" for d in short)
                    + ("" if quick else "; profiled, the warm time there is the inner coordinate-descent epochs "
                       "on the working set (an ill-conditioned support of nearly n features), not compilation "
                       "(excluded) or the screening passes"))
    else:
        summary += ". Target (≥ 1× the faster of celer/skglm) met at every α"
    return {"title": "JAX Lasso vs scikit-learn, celer and skglm at equal achieved duality gap",
            "figures": figures, "summary": summary}
