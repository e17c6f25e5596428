"""The numbers of a study's report, computed from the runs and the fits (``summary.json``).

Each number comes from the module that owns it (the causal layer's queries, the
frequentist test, the fits' diagnostics); the sentences around them are written by
:mod:`hgcnet_jax.report.text`, so this module computes and the report words.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

from hgcnet_jax.config import StudyConfig
from hgcnet_jax.report import text
from hgcnet_jax.study.folder import FORMAT
from hgcnet_jax.study.keys import StudyKeys
from hgcnet_jax.study.progress import step, tick

__all__ = ["summarise", "criticise", "diagnostics", "time_per_epoch", "compile_time", "per_batch_size"]


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


def _records(df: pd.DataFrame, columns: list[str]) -> list[dict[str, Any]]:
    out = []
    for r in df[columns].to_dict("records"):
        out.append({k: (v.item() if hasattr(v, "item") else list(v) if isinstance(v, tuple) else v) for k, v in r.items()})
    return out


def criticise(config: StudyConfig, table: pd.DataFrame, fits: Mapping[str, Any], *, bar=None,
              log: Callable[[str], None] | None = None):
    """Criticise and rank every fitted candidate (:func:`hgcnet_jax.causal.search_graphs` on the study's fits).

    Returns ``(GraphSearch, summary dict)``; the dict is ``summary.json``'s ``criticism``.
    """
    from hgcnet_jax import causal

    c = config.causal
    bs = list(config.train.batch_sizes)
    names = list(fits)
    step(bar, f"criticism of {len(names)} candidate graphs")
    if log:
        log(f"criticism: arm checks, local Markov independences, falsification, predictive checks of {names}"
            + (", leave one batch size out" if c.lobo else ""))
    search = causal.search_graphs({n: fits[n].graph for n in names}, table, key=StudyKeys.of(config.seed).criticism,
                                  contrast=(bs[0], bs[-1]), prob=c.credible_mass, fits=fits,
                                  criticism=dict(alpha=c.alpha, lobo=c.lobo, lobo_config=None),
                                  config=fits[names[0]].config)
    for _ in names:
        tick(bar, "criticism")
    tab = search.table
    answered = search.chosen if search.chosen is not None else str(tab["candidate"].iloc[0])
    reasons = {n: list(search.criticisms[n].reasons) for n in names}
    cands = []
    for r in tab.to_dict("records"):
        n = r["candidate"]
        cands.append({"candidate": n, "elpd": r["elpd"], "se": r["se"], "d_elpd": r["d_elpd"],
                      "max_pareto_k": r["max_pareto_k"], "ok": bool(r["ok"]), "chosen": bool(r["chosen"]),
                      "arm_misses": int(r["arm_misses"]), "rejected_independences": int(r["rejected_independences"]),
                      "falsification_p": r["falsification_p"], "ate_mean": r["ate_mean"], "ate_lo": r["ate_lower"],
                      "ate_hi": r["ate_upper"], "reasons": reasons[n]})
    arm_cols = ["batch_size", "n_runs", "arm_mean", "arm_lo", "arm_hi", "model_mean", "model_lo", "model_hi",
                "p_value", "p_adjusted", "miss"]
    ind_cols = ["statement", "statistic", "p_value", "p_adjusted", "rejected"]
    crit = {
        "chosen": search.chosen,
        "answered_by": answered,
        "trusted": search.chosen is not None,
        "headline": text.criticism_headline(search.chosen, answered, len(names), len(bs), reasons),
        "alpha": c.alpha,
        "prob": float(search.criticisms[answered].prob),
        "candidates": cands,
        "arms": {n: _records(search.criticisms[n].arms, arm_cols) for n in names},
        "independences": {n: _records(search.criticisms[n].independences, ind_cols) for n in names},
        "falsification": {n: {k: (v.item() if hasattr(v, "item") else v)
                              for k, v in dataclasses.asdict(search.criticisms[n].falsification).items()}
                          for n in names},
        "predictive_flagged": {n: int(search.criticisms[n].predictive["flagged"].sum()) for n in names},
        "lobo": ({n: _records(search.criticisms[n].lobo, list(search.criticisms[n].lobo.columns)) for n in names}
                 if c.lobo else None),
        "not_identified": sorted({str(x) for n in names for x in getattr(search.criticisms[n], "not_identified", ())}),
    }
    return search, crit


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
    """Every number of the report, from the runs and the candidate fits (``summary.json``).

    First the criticism (:func:`criticise`): every candidate graph is checked against the
    experiment's own arms, its implied independences and its predictive checks, and
    ranked by PSIS-LOO. The queries are then answered by the chosen graph (the best that
    passes) — or, when none passes, by the best by PSIS-LOO, marked untrusted, while the
    recommendation comes from the arm means (:func:`hgcnet_jax.causal.recommend_from_arms`).
    Calls the causal layer for each query: :func:`~hgcnet_jax.causal.recommend`
    (E[G | do(B = b)] for every b, common random numbers across b),
    :func:`~hgcnet_jax.causal.ate`, :func:`~hgcnet_jax.causal.mediation`,
    :func:`~hgcnet_jax.causal.nie_sensitivity`, :func:`~hgcnet_jax.causal.loo_compare`,
    :func:`~hgcnet_jax.causal.refute`, :func:`~hgcnet_jax.causal.holdout_check` and
    :func:`~hgcnet_jax.causal.permutation_test`.

    Args:
        config: the study's config.
        runs: the full runs table.
        table: the rows the models were fitted on (see :func:`fit_table`).
        fits: ``{candidate: Fit}``, with ``"hypergraph"`` and ``"pairwise"``.
        notes: warnings about the fitted rows and candidates (from :func:`fit_table`, :func:`graphs`).
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

    # Criticism first: which graph may answer?
    search, crit = criticise(config, table, fits, bar=bar, log=log)
    answered = crit["answered_by"]
    answer = fits[answered]
    trusted = crit["trusted"]
    if not trusted:
        warnings_.insert(0, crit["headline"])
    ycol = answer.graph.variable(answer.graph.outcomes[0]).column

    # E[G | do(B = b)] for every b (one call per graph: common random numbers), and the recommendation
    step(bar, "E[G | do(B = b)] for every batch size")
    shown = list(dict.fromkeys([answered, "hypergraph", "pairwise"]))
    recs = {name: causal.recommend(fits[name], bs, current=config.current, prob=prob) for name in shown}
    curves = {}
    for name, rec in recs.items():
        t = rec.table.set_index("value")
        curves[name] = {"mean": [float(t.loc[b, "mean"]) for b in bs], "lo": [float(t.loc[b, "lower"]) for b in bs],
                        "hi": [float(t.loc[b, "upper"]) for b in bs]}
    tick(bar, "E[G | do(B)]")
    observed = table.groupby("batch_size")[ycol].mean()
    counts = table.groupby("batch_size")[ycol].size()
    arms = {int(r["batch_size"]): r for r in crit["arms"][answered]}

    # ATE of the smallest against the largest batch size, and the frequentist test over seeds
    log(f"effects: ATE of B={b_small} vs B={b_large} ({answered}), permutation test")
    step(bar, "ATE, permutation test")
    eff = causal.ate(answer, "B", b_small, b_large, "G", prob=prob)
    perm = causal.permutation_test(table, "batch_size", b_small, b_large, ycol, key=k_perm,
                                   num_permutations=c.permutations, num_bootstrap=c.permutations)
    ate = {"b_small": b_small, "b_large": b_large, "graph": answered, "trusted": trusted,
           "mean": eff.mean, "lo": eff.lower, "hi": eff.upper, "mass": prob,
           "sd": eff.sd, "prob_positive": eff.p_positive, "prob_sign": eff.p_sign, "observed": perm.diff,
           "observed_lo": perm.lower, "observed_hi": perm.upper, "p_value": perm.p_value,
           "n_small": perm.n_a, "n_large": perm.n_b, "draws": [round(float(x), 6) for x in eff.draws]}
    ate_pair = causal.ate(pair, "B", b_small, b_large, "G", prob=prob)
    tick(bar, "ATE")

    # Direct and mediated effects (Pearl 2001; path-specific: Avin, Shpitser & Pearl 2005), and their sensitivity
    log(f"effects: mediation (natural direct/indirect, path-specific) and its sensitivity ({answered})")
    step(bar, "mediation")
    med = causal.mediation(answer, "B", b_small, b_large, "G", prob=prob)
    rows = {"total (ATE)": interval(med.total), "direct (NDE)": interval(med.nde),
            "indirect (NIE)": interval(med.nie)}
    for name, e in med.pse.items():
        rows[f"through {name} (path-specific)"] = interval(e)
    try:
        sv = causal.nie_sensitivity(answer, b_small, b_large, key=keys.sensitivity, prob=prob)
        sens = {"mediator": sv.mediator, "a": b_small, "b": b_large, "units": sv.units, "nie": sv.nie,
                "lower": sv.lower, "upper": sv.upper, "rho_zero": sv.rho_zero, "rho_interval": sv.rho_interval,
                "prob": sv.prob}
    except ValueError as e:
        sens = {"error": str(e)}
    sens["note"] = text.sensitivity_note(sens)
    effects = {"graph": answered, "trusted": trusted, "rows": rows,
               "note": text.effects_note(b_small, b_large, m.outcome, med.noise, config.causal.direct_edge, answered),
               "sensitivity": sens}
    tick(bar, "mediation")

    # Hypergraph against pairwise
    log("effects: PSIS-LOO hypergraph against pairwise")
    step(bar, "PSIS-LOO")
    lc = causal.loo_compare(hyper, pair, names=("hypergraph", "pairwise"))
    tick(bar, "PSIS-LOO")
    eff_h = eff if answered == "hypergraph" else causal.ate(hyper, "B", b_small, b_large, "G", prob=prob)
    verdict = text.loo_verdict(lc.prefers_a(), lc.diff, lc.se_diff, lc.z, interval(ate_pair), float(eff_h.mean))
    if lc.max_pareto_k > 0.7:
        warnings_.append(text.pareto_warning(lc.max_pareto_k))
    loo = {"models": {"hypergraph": {"elpd": lc.elpd_a, "se": lc.se_a, "p_loo": None, "pareto_k_max": lc.max_pareto_k},
                      "pairwise": {"elpd": lc.elpd_b, "se": lc.se_b, "p_loo": None, "pareto_k_max": lc.max_pareto_k}},
           "diff": lc.diff, "se_diff": lc.se_diff, "z": lc.z,
           "preferred": "hypergraph" if lc.diff >= 0 else "pairwise", "verdict": verdict}

    # Refutations of the answering graph (each refits it)
    refutations = []
    if c.refuters:
        log(f"effects: refutations ({', '.join(c.refuters)}) of {answered}; each refits the model …")
        import warnings as _w

        for name, k in zip(c.refuters, jax.random.split(k_ref, len(c.refuters)), strict=True):
            step(bar, f"refute: {name} (refits the model)")
            with _w.catch_warnings():
                _w.simplefilter("ignore", causal.ConvergenceWarning)
                if name == "holdout_seeds":
                    hc = causal.holdout_check(answer.graph, table, key=k, alpha=c.alpha, config=answer.config)
                    ht = hc.table
                    refutations.append({
                        "name": "holdout seeds", "original": float(eff.mean), "new": None, "new_lo": None,
                        "new_hi": None, "passed": bool(hc.passed),
                        "detail": text.holdout_detail(hc.heldout_seeds, len(ht), float(ht["statistic"].abs().max()),
                                                      int(ht["rejected"].sum()))})
                    if not hc.passed:
                        warnings_.append(text.refutation_warning(name, "the held-out seeds' arm means within the "
                                                                       "model's predictions"))
                else:
                    r = causal.refute(answer, "B", b_small, b_large, "G", key=k, refuters=(name,), prob=prob)
                    r = r.to_dict("records")[0]
                    refutations.append({
                        "name": r["refuter"].replace("_", " "), "original": r["estimate"], "new": r["new_estimate"],
                        "new_lo": r["new_lower"], "new_hi": r["new_upper"], "passed": bool(r["passed"]),
                        "detail": f"{r['criterion']} (new interval [{r['new_lower']:+.4f}, {r['new_upper']:+.4f}])"})
                    if not r["passed"]:
                        warnings_.append(text.refutation_warning(r["refuter"], r["criterion"]))
            tick(bar, f"refute: {name}")

    # MCMC diagnostics
    diag = {name: diagnostics(f) for name, f in fits.items()}
    for name, d in diag.items():
        if not d["ok"]:
            warnings_.append(text.mcmc_warning(name, d))

    # Recommendation: from the answering graph when it passes, else from the arms
    tpe = time_per_epoch(runs)
    compile_s = compile_time(runs)
    cur = int(config.current)
    if trusted:
        rec = recs[answered]
        source = "model"
    else:
        rec = causal.recommend_from_arms(table, "batch_size", ycol, key=keys.arms, current=cur, prob=prob)
        source = "arms"
    t = rec.table.set_index("value")
    best = int(rec.best)
    recommendation = {
        "source": source, "graph": answered if trusted else None, "label": text.recommendation_label(source, answered),
        "best_batch_size": best, "best_mean": float(t.loc[best, "mean"]), "best_lo": float(t.loc[best, "lower"]),
        "best_hi": float(t.loc[best, "upper"]), "p_best": float(t.loc[best, "p_best"]),
        "current_batch_size": cur, "current_mean": float(t.loc[cur, "mean"]),
        "prob_beats_current": float(rec.p_beats_current) if best != cur else 0.0,
        "gain_vs_current": float(rec.gain) if best != cur else 0.0,
        "mean_by_batch_size": {str(b): float(t.loc[b, "mean"]) for b in bs},
        "lo_by_batch_size": {str(b): float(t.loc[b, "lower"]) for b in bs},
        "hi_by_batch_size": {str(b): float(t.loc[b, "upper"]) for b in bs},
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
        "outcome_column": ycol,
        "mediator_columns": {"N": m.noise, "S": m.sharpness, "C": m.complexity},
        "criticism": crit,
        "interventional": {"batch_sizes": bs, "curves": curves, "observed_mean": [float(observed.loc[b]) for b in bs],
                           "observed_lo": [float(arms[b]["arm_lo"]) for b in bs],
                           "observed_hi": [float(arms[b]["arm_hi"]) for b in bs],
                           "n_runs": [int(counts.loc[b]) for b in bs]},
        "ate": ate,
        "ate_pairwise": interval(ate_pair),
        "effects": effects,
        "hypergraph_edges": edge_effects(answer),
        "loo": loo,
        "refutations": refutations,
        "diagnostics": {"ok": all(x["ok"] for x in diag.values()), "rhat_max": diag["hypergraph"]["rhat_max"],
                        "ess_min": diag["hypergraph"]["ess_min"], "models": diag},
        "recommendation": recommendation,
        "per_batch_size": per_batch_size(runs, config),
        "warnings": warnings_,
        "files": ["config.json", "sweep.parquet", "runs.parquet", "posterior_<candidate>.nc", "summary.json",
                  "plots/<name>.png", "plots/<name>.svg", "report.html", "phases.json"],
    }
