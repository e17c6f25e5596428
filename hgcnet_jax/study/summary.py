"""The numbers of a study's report, computed from the runs and the fits (``summary.json``).

Each number comes from the module that owns it (the causal layer's queries, the
frequentist test, the fits' diagnostics); the sentences around them are written by
:mod:`hgcnet_jax.report.text`, so this module computes and the report words.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

from hgcnet_jax.config import StudyConfig
from hgcnet_jax.report import text
from hgcnet_jax.study.folder import FORMAT
from hgcnet_jax.study.keys import StudyKeys
from hgcnet_jax.study.progress import step, tick

__all__ = ["summarise", "diagnostics", "time_per_epoch", "compile_time", "per_batch_size"]


def diagnostics(fit) -> dict[str, Any]:
    """MCMC diagnostics of a fit: worst split-R-hat, worst bulk/tail ESS (ArviZ), divergences, verdict.

    The numbers and the verdict ``ok`` are :func:`hgcnet_jax.causal.diagnostics` (the same
    verdict as the fit's ``ConvergenceWarning``), against the fit's own thresholds
    (``fit.config.max_r_hat`` and ``fit.config.min_ess_per_chain × num_chains``; Vehtari
    et al. 2021).
    """
    from hgcnet_jax import causal

    d = causal.diagnostics(fit)
    return dict(max_rhat=d.max_r_hat, min_ess_bulk=d.min_ess_bulk, min_ess_tail=d.min_ess_tail,
                divergences=d.num_divergences, chains=d.num_chains, ok=d.ok,
                rhat_max=d.r_hat_threshold, ess_min=d.ess_threshold)


def time_per_epoch(runs: pd.DataFrame) -> pd.Series:
    """Measured seconds per epoch for each batch size: median over seeds of ``wall_time_s / epochs``.

    ``wall_time_s`` is the sweep's per-run share of its bucket's warm wall time (the runs
    of a bucket train together, vectorised; the one-off XLA compilation is
    ``bucket_compile_time_s``, reported on its own), so this is the cost per run and epoch.
    """
    t = runs["wall_time_s"].to_numpy(dtype=float) / runs["epochs"].to_numpy(dtype=float)
    return pd.Series(t, index=runs["batch_size"].to_numpy()).groupby(level=0).median()


def compile_time(runs: pd.DataFrame) -> dict[str, float]:
    """Seconds of XLA compilation of each batch size's bucket (``bucket_compile_time_s``; empty if not recorded)."""
    if "bucket_compile_time_s" not in runs:
        return {}
    t = runs.groupby("batch_size")["bucket_compile_time_s"].max()
    return {str(int(b)): float(v) for b, v in t.items() if v == v}


def per_batch_size(runs: pd.DataFrame, config: StudyConfig) -> dict[str, Any]:
    """Per-batch-size table of the report: runs, diverged, mean outcome and median mediators and cost."""
    m = config.mediators
    cols = [m.outcome, m.noise, m.sharpness, m.complexity]
    tpe = time_per_epoch(runs)
    rows = []
    for b, grp in runs.groupby("batch_size"):
        row = {"batch_size": int(b), "runs": int(len(grp)),
               "diverged": int(grp["diverged"].sum()) if "diverged" in grp else 0,
               f"mean {m.outcome}": float(grp[m.outcome].mean()), f"sd {m.outcome}": float(grp[m.outcome].std(ddof=1))}
        for c in cols[1:]:
            row[f"median {c}"] = float(grp[c].median())
        row["steps"] = int(grp["steps"].iloc[0]) if "steps" in grp else None
        row["s / epoch"] = float(tpe.loc[b])
        rows.append(row)
    columns = [k for k in rows[0] if k != "batch_size"]
    return {"columns": columns, "rows": rows}


def interval(e) -> dict[str, float]:
    return {"mean": float(e.mean), "lo": float(e.lower), "hi": float(e.upper)}


def edge_effects(fit) -> list[dict[str, Any]]:
    """Posterior mean of every edge's coefficient (standardised scale) of a fit, for the drawing."""
    post = fit.idata.posterior
    g = fit.graph

    def mean(site: str) -> float | None:
        return float(post[site].mean()) if site in post else None

    edges = [{"tails": [e.parent], "head": e.child, "effect": mean(f"coef[{e.label}]"), "site": f"coef[{e.label}]"}
             for e in g.edges]
    for h in g.hyperedges:
        site = f"inter[{'*'.join(h.parents)}->{h.child}]"
        edges.append({"tails": list(h.parents), "head": h.child, "effect": mean(site), "site": site})
        for p in h.parents:  # the members' main effects carried by the hyperedge
            site = f"coef[{p}->{h.child}]"
            if site in post and not any(e["site"] == site for e in edges):
                edges.append({"tails": [p], "head": h.child, "effect": mean(site), "site": site, "main_effect": True})
    return edges


def summarise(
    config: StudyConfig,
    runs: pd.DataFrame,
    table: pd.DataFrame,
    fits: Mapping[str, Any],
    *,
    notes: list[str] | None = None,
    log: Callable[[str], None] | None = None,
    bar=None,
) -> dict[str, Any]:
    """Every number of the report, from the runs and the two fits (``summary.json``).

    Calls the causal layer for each query: :func:`hgcnet_jax.causal.recommend` (E[G | do(B = b)]
    for every b, common random numbers across b), :func:`~hgcnet_jax.causal.ate`,
    :func:`~hgcnet_jax.causal.mediation`, :func:`~hgcnet_jax.causal.loo_compare`,
    :func:`~hgcnet_jax.causal.refute` and :func:`~hgcnet_jax.causal.permutation_test`.

    Args:
        config: the study's config.
        runs: the full runs table.
        table: the rows the models were fitted on (see :func:`fit_table`).
        fits: ``{"hypergraph": Fit, "pairwise": Fit}``.
        notes: warnings about dropped rows (from :func:`fit_table`).
        log: progress messages.
        bar: optional ``tqdm`` bar advanced once per query (see :func:`causal_bar`).

    Returns:
        A JSON-serialisable dict; its keys are documented in :mod:`hgcnet_jax.report.html`.
    """
    import jax

    from hgcnet_jax import causal
    from hgcnet_jax._version import __version__

    log = log or (lambda msg: None)
    c, m = config.causal, config.mediators
    bs = list(config.train.batch_sizes)
    b_small, b_large = bs[0], bs[-1]
    prob = c.credible_mass
    keys = StudyKeys.of(config.seed)
    k_perm, k_ref = keys.permutation, keys.refutations
    hyper, pair = fits["hypergraph"], fits["pairwise"]
    warnings_: list[str] = list(notes or [])

    # E[G | do(B = b)] for every b, and the recommendation (one call per graph: common random numbers)
    step(bar, "E[G | do(B = b)] for every batch size")
    recs = {name: causal.recommend(f, bs, current=config.current, prob=prob) for name, f in fits.items()}
    curves = {}
    for name, rec in recs.items():
        t = rec.table.set_index("value")
        curves[name] = {"mean": [float(t.loc[b, "mean"]) for b in bs], "lo": [float(t.loc[b, "lower"]) for b in bs],
                        "hi": [float(t.loc[b, "upper"]) for b in bs]}
    tick(bar, "E[G | do(B)]")
    observed = runs.groupby("batch_size")[m.outcome].mean()
    counts = runs.groupby("batch_size")[m.outcome].size()

    # ATE of the smallest against the largest batch size, and the frequentist test over seeds
    log(f"effects: ATE of B={b_small} vs B={b_large}, permutation test")
    step(bar, "ATE, permutation test")
    eff = causal.ate(hyper, "B", b_small, b_large, "G", prob=prob)
    perm = causal.permutation_test(table, "batch_size", b_small, b_large, m.outcome, key=k_perm,
                                   num_permutations=c.permutations, num_bootstrap=c.permutations)
    ate = {"b_small": b_small, "b_large": b_large, "mean": eff.mean, "lo": eff.lower, "hi": eff.upper, "mass": prob,
           "sd": eff.sd, "prob_positive": eff.p_positive, "prob_sign": eff.p_sign, "observed": perm.diff,
           "observed_lo": perm.lower, "observed_hi": perm.upper, "p_value": perm.p_value,
           "n_small": perm.n_a, "n_large": perm.n_b, "draws": [round(float(x), 6) for x in eff.draws]}
    ate_pair = causal.ate(pair, "B", b_small, b_large, "G", prob=prob)
    tick(bar, "ATE")

    # Direct and mediated effects (Pearl 2001; path-specific: Avin, Shpitser & Pearl 2005)
    log("effects: mediation (natural direct/indirect, path-specific through N, S, C)")
    step(bar, "mediation")
    med = causal.mediation(hyper, "B", b_small, b_large, "G", prob=prob)
    tick(bar, "mediation")
    rows = {"total (ATE)": interval(med.total), "direct (NDE)": interval(med.nde),
            "indirect (NIE)": interval(med.nie)}
    for name, e in med.pse.items():
        rows[f"through {name} (path-specific)"] = interval(e)
    effects = {"rows": rows, "note": text.effects_note(b_small, b_large, m.outcome, med.noise, config.causal.direct_edge)}

    # Hypergraph against pairwise
    log("effects: PSIS-LOO hypergraph against pairwise")
    step(bar, "PSIS-LOO")
    lc = causal.loo_compare(hyper, pair, names=("hypergraph", "pairwise"))
    tick(bar, "PSIS-LOO")
    verdict = text.loo_verdict(lc.prefers_a(), lc.diff, lc.se_diff, lc.z, interval(ate_pair), float(eff.mean))
    if lc.max_pareto_k > 0.7:
        warnings_.append(text.pareto_warning(lc.max_pareto_k))
    loo = {"models": {"hypergraph": {"elpd": lc.elpd_a, "se": lc.se_a, "p_loo": None, "pareto_k_max": lc.max_pareto_k},
                      "pairwise": {"elpd": lc.elpd_b, "se": lc.se_b, "p_loo": None, "pareto_k_max": lc.max_pareto_k}},
           "diff": lc.diff, "se_diff": lc.se_diff, "z": lc.z,
           "preferred": "hypergraph" if lc.diff >= 0 else "pairwise", "verdict": verdict}

    # Refutations (each refits the model)
    refutations = []
    if c.refuters:
        log(f"effects: refutations ({', '.join(c.refuters)}); each refits the model …")
        import warnings as _w

        frames = []
        for name, k in zip(c.refuters, jax.random.split(k_ref, len(c.refuters))):
            step(bar, f"refute: {name} (refits the model)")
            with _w.catch_warnings():
                _w.simplefilter("ignore", causal.ConvergenceWarning)
                frames.append(causal.refute(hyper, "B", b_small, b_large, "G", key=k, refuters=(name,), prob=prob))
            tick(bar, f"refute: {name}")
        for r in pd.concat(frames, ignore_index=True).to_dict("records"):
            refutations.append({
                "name": r["refuter"].replace("_", " "), "original": r["estimate"], "new": r["new_estimate"],
                "new_lo": r["new_lower"], "new_hi": r["new_upper"], "passed": bool(r["passed"]),
                "detail": f"{r['criterion']} (new interval [{r['new_lower']:+.4f}, {r['new_upper']:+.4f}])"})
            if not r["passed"]:
                warnings_.append(text.refutation_warning(r["refuter"], r["criterion"]))

    # MCMC diagnostics
    diag = {name: diagnostics(f) for name, f in fits.items()}
    for name, d in diag.items():
        if not d["ok"]:
            warnings_.append(text.mcmc_warning(name, d))

    # Recommendation
    rec = recs["hypergraph"]
    t = rec.table.set_index("value")
    tpe = time_per_epoch(runs)
    compile_s = compile_time(runs)
    best, cur = int(rec.best), int(config.current)
    recommendation = {
        "best_batch_size": best, "best_mean": float(t.loc[best, "mean"]), "best_lo": float(t.loc[best, "lower"]),
        "best_hi": float(t.loc[best, "upper"]), "p_best": float(t.loc[best, "p_best"]),
        "current_batch_size": cur, "current_mean": float(t.loc[cur, "mean"]),
        "prob_beats_current": float(rec.p_beats_current) if best != cur else 0.0,
        "gain_vs_current": float(rec.gain) if best != cur else 0.0,
        "best_time_per_epoch_s": float(tpe.loc[best]), "current_time_per_epoch_s": float(tpe.loc[cur]),
        "time_ratio_vs_current": float(tpe.loc[best] / tpe.loc[cur]),
        "time_per_epoch_s": {str(b): float(tpe.loc[b]) for b in bs},
        "p_best_by_batch_size": {str(b): float(t.loc[b, "p_best"]) for b in bs},
        "time_note": text.TIME_NOTE,
        "compile_time_s": compile_s,
        "compile_time_note": text.compile_note(compile_s) if compile_s else None,
    }

    d = config.data
    return {
        "version": __version__,
        "format": FORMAT,
        "fingerprint": config.fingerprint(),
        "title": text.title(config.model.name, d.name),
        "subtitle": text.subtitle(config, len(runs), len(table)),
        "config": config.to_dict(),
        "config_toml": config.to_toml(),
        "outcome": m.outcome,
        "mediator_columns": {"N": m.noise, "S": m.sharpness, "C": m.complexity},
        "interventional": {"batch_sizes": bs, "curves": curves, "observed_mean": [float(observed.loc[b]) for b in bs],
                           "n_runs": [int(counts.loc[b]) for b in bs]},
        "ate": ate,
        "ate_pairwise": interval(ate_pair),
        "effects": effects,
        "hypergraph_edges": edge_effects(hyper),
        "loo": loo,
        "refutations": refutations,
        "diagnostics": {"ok": all(x["ok"] for x in diag.values()), "rhat_max": diag["hypergraph"]["rhat_max"],
                        "ess_min": diag["hypergraph"]["ess_min"], "models": diag},
        "recommendation": recommendation,
        "per_batch_size": per_batch_size(runs, config),
        "warnings": warnings_,
        "files": ["config.json", "sweep.parquet", "runs.parquet", "posterior_hypergraph.nc", "posterior_pairwise.nc", "summary.json",
                  "plots/<name>.png", "plots/<name>.svg", "report.html", "phases.json"],
    }
