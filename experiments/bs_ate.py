"""The batch-size ATE across datasets, models and splits, and the hypergraph against its pairwise twin.

    nice -n 10 python experiments/bs_ate.py                 # every setting (resumes setting by setting)
    nice -n 10 python experiments/bs_ate.py --plan text     # reproduction 8: the same study on the text tasks
    python experiments/bs_ate.py --quick --out DIR          # one tiny synthetic setting (the tests run it)
    python experiments/bs_ate.py --report-only              # rewrite the section from experiments/state/bs_ate/

Issue #18, reproductions 2 and 4. Each *setting* (dataset × model × split) is one whole
``hgcnet study`` (:func:`hgcnet_jax.study.run`: sweep, mediators, every candidate graph's
NUTS fit, criticism, effects, refutations) in its own resumable folder
``hgcnet-out/experiments/bs_ate/<setting>`` (the study resumes by phase); the small summary
the report needs is saved per setting in ``experiments/state/bs_ate/<setting>.json``, so the
section can be rebuilt with ``--report-only`` after ``hgcnet-out/`` is gone.

Reproduction 2. Per setting: the design-based difference of arm means of test accuracy,
E[G | do(B=16)] − E[G | do(B=512)] (B is randomised, so an arm's mean estimates
E[G | do(B)] without a model), over every run (diverged runs count with the accuracy they
end at), with its two-sided permutation p-value and 95 % bootstrap interval
(:func:`hgcnet_jax.causal.frequentist.permutation_test`); next to it the ATE of the graph
the criticism accepts (the study's chosen candidate: the best by PSIS-LOO among those that
pass; none when none passes) with its 95 % credible interval, and whether that model agrees
with the arms (the study's per-arm check, and whether the design-based difference lies in
the model's interval). Then the mean over the settings that use the paper's contrast
(16 against 512) with a stratified bootstrap interval and permutation p, against the
paper's "+2.4 % on average". The public Planetoid split trains on 140 (Cora) and 120
(CiteSeer) nodes, so B = 256 and 512 (and 128 on CiteSeer) cannot form a minibatch: those
settings use the paper's batch sizes that fit, their contrast is 16 against the largest
that fits, and they are reported but kept out of the comparison with the paper's average
(a different contrast). A setting where fewer than two batch sizes fit is skipped, with
the reason in the report.

Reproduction 4. The study fits the paper's hypergraph and its pairwise twin on the same
runs. Per setting: Δelpd (hypergraph − pairwise) ± SE by PSIS-LOO, each graph's criticism,
both ATEs and their difference. Whether the two graphs have the same parent sets and equal
flexibility apart from the hyperedge is checked in code on the graphs each study fitted
(:func:`twin_check`: :func:`hgcnet_jax.study.plan.graphs` → ``Hypergraph.pairwise``, and the
terms :func:`hgcnet_jax.causal.model.make_model` builds), and what differs is printed.

FULL: Cora and CiteSeer × GCN and GAT × the full 60/20/20 split and the public split = 8
studies of the ``paper`` preset (B ∈ {16 … 512} where they fit, 10 seeds, 30 epochs of SGD
lr 0.2, mediators on 256 training nodes, every candidate graph, four refuters), credible
intervals at 95 %. Estimated compute on this machine's 2-core CPU when it has the cores to
itself: the Cora GCN full-split study took 1395 s (sweep 270, mediators 304, fits 407,
effects 403); the others are scaled from the per-step and per-run costs in
docs/scaling.md (GAT steps cost 7× a GCN step on Cora, 4× on CiteSeer; a public-split
sweep takes 5–8 % of the full split's steps): CiteSeer GCN full ≈ 2000 s, Cora GAT full
≈ 3800 s, CiteSeer GAT full ≈ 4800 s, the four public-split studies ≈ 700–1200 s each
(their causal phase, ≈ 10 min, dominates) — ≈ 16,000 s ≈ 4.5 h in all, and 1.5–2× that
while the machine is shared with other jobs.

TEXT (``--plan text``, reproduction 8: the text domain): the same study, the ``paper`` preset,
on the transformer classifier of the product reviews (``amazon_reviews``: 4000 training reviews,
"great" against the rest) and of the medical newsgroup task (``newsgroups_med``: ``sci.med``
against the other science groups, 2373 training posts), every paper batch size fitting. It has
its own state (``experiments/state/bs_text/``), studies (``hgcnet-out/experiments/bs_text/``)
and section (``bs_text``). A transformer step costs about B examples' work (unlike a
full-graph GCN step), so its equal-epoch sweep is far longer than Cora's; its compute is stated
by the run.

QUICK (``--quick``, the test): the ``tiny`` preset on a 120-node CSBM graph, GCN, one
setting — a 60/20/20 split (72 training nodes, B ∈ {8, 16, 32}) — 5 seeds (the causal fit
needs 10 runs), the two mandatory candidates (hypergraph, pairwise), no refuter, no
trajectory checkpoints and SVI instead of NUTS: the smallest study the pipeline accepts,
most of its time compilation. The split too small for the largest batch (the public
split's situation) is tested on :func:`setting_config` alone, without a study.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "experiments"))
sys.path.insert(0, str(REPO))

NAME = "bs_ate"


def state_dir(name: str = NAME) -> Path:
    return REPO / "experiments" / "state" / name


def study_root(name: str = NAME) -> Path:
    return REPO / "hgcnet-out" / "experiments" / name


def fig_dir(name: str = NAME) -> Path:
    return REPO / "docs" / "results" / name


STATE_DIR, STUDY_ROOT, FIG_DIR = state_dir(), study_root(), fig_dir()
PAPER_BATCH_SIZES = (16, 32, 64, 128, 256, 512)

#: The paper's figures (HGCNet, arXiv 2506.17826; /work/shared/papers/FACTS.md).
PAPER_ATE = 0.024
PAPER_PAIRWISE_COST = (0.018, 0.023)
CLAIM = ("**The paper's claims** (HGCNet, arXiv 2506.17826; `FACTS.md`): ATE = E[G | do(B=16)] − E[G | do(B=512)] "
         "≈ +2.4 % accuracy, the mean over its datasets (Cora, CiteSeer, PubMed with GCN and GAT, and text data); "
         "the pairwise graph instead of the hypergraph costs 1.8–2.3 %. None of the paper's tables could be read, "
         "so neither figure's exact definition is known; PubMed is not on this machine.")

#: How each split name becomes study-config updates, per dataset family.
PLANETOID_SPLITS = (("full", (("data.split", "full"),)), ("public", (("data.split", "public"),)))
CSBM_SPLITS = (("full", (("data.options.fractions", [0.6, 0.2, 0.2]),)),
               ("public", (("data.options.fractions", [0.2, 0.2, 0.6]),)))
TEXT_SPLITS = (("standard", (("data.split", "standard"),)),)
TITLES = {NAME: "Batch-size ATE across settings; hypergraph against pairwise (issue #18, reproductions 2 and 4)",
          "bs_text": "Batch-size ATE in the text domain; hypergraph against pairwise (issue #18, reproduction 8)"}


@dataclass(frozen=True)
class Plan:
    """The settings and what every study of them shares.

    Attributes:
        settings: ``(dataset, model, split)`` triples, run in this order.
        batch_sizes: the grid; a setting uses the sizes that fit in its training split.
        seeds: seeds per batch size.
        preset: the study preset (:func:`hgcnet_jax.config.preset`).
        splits: ``(split, ((dotted field, value), …))``: how a split name becomes config updates.
        overrides: dotted updates applied to every study after the preset.
        credible_mass: level of the model's intervals (and of the study's arm intervals).
        num_permutations: permutations and bootstrap resamples of the design-based tests.
        name: the plan's state folder, study folder, figure folder and section of docs/results.md.
    """

    settings: tuple = (("cora", "gcn", "full"), ("citeseer", "gcn", "full"), ("cora", "gat", "full"),
                       ("citeseer", "gat", "full"), ("cora", "gcn", "public"), ("citeseer", "gcn", "public"),
                       ("cora", "gat", "public"), ("citeseer", "gat", "public"))
    batch_sizes: tuple = PAPER_BATCH_SIZES
    seeds: int = 10
    preset: str = "paper"
    splits: tuple = PLANETOID_SPLITS
    overrides: tuple = ()
    credible_mass: float = 0.95
    num_permutations: int = 20_000
    name: str = NAME

    def to_dict(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self)))


FULL = Plan()
QUICK = Plan(settings=(("csbm", "gcn", "full"),), batch_sizes=(8, 16, 32), seeds=5,
             preset="tiny", splits=CSBM_SPLITS,
             overrides=(("causal.candidates", ["hypergraph", "pairwise"]), ("causal.refuters", []),
                        ("causal.permutations", 100), ("causal.method", "svi"), ("train.trajectory", 0)),
             num_permutations=2000)
TEXT = Plan(settings=(("amazon_reviews", "transformer", "standard"), ("newsgroups_med", "transformer", "standard")),
            splits=TEXT_SPLITS, name="bs_text")
PLANS = {"paper": FULL, "text": TEXT}


def setting_name(setting) -> str:
    return "-".join(setting)


def fitting_batch_sizes(grid, n_train: int) -> tuple[int, ...]:
    """The batch sizes of ``grid`` that form at least one minibatch of the ``n_train`` training examples."""
    return tuple(sorted(b for b in grid if b <= n_train))


def base_config(plan: Plan, setting):
    """The study config of ``setting`` before its batch sizes are fitted to the training split."""
    from hgcnet_jax.config import resolve

    dataset, model, split = setting
    splits = dict(plan.splits)
    if split not in splits:
        raise SystemExit(f"setting {setting_name(setting)}: unknown split {split!r}; the plan knows {sorted(splits)}")
    updates = {"data.name": dataset, "model.name": model, "train.seeds": plan.seeds,
               "causal.credible_mass": plan.credible_mass, **dict(splits[split]), **dict(plan.overrides)}
    return resolve(plan.preset, None, updates)


def setting_config(plan: Plan, setting):
    """``(config, n_train, note)``: the study of ``setting``, or ``(None, n_train, reason)`` when it cannot run.

    The batch sizes are the plan's that fit in the training split (at least two, else the
    setting is skipped); ``train.trajectory`` is capped at the fewest steps any run takes.
    """
    from hgcnet_jax import data
    from hgcnet_jax.study.plan import make_budget

    cfg = base_config(plan, setting)
    d = cfg.data
    ds = data.load(d.name, root=d.root, split=d.split, seed=cfg.seed, **dict(d.options))
    n_train = int(len(ds.splits["train"]))
    bs = fitting_batch_sizes(plan.batch_sizes, n_train)
    left_out = [b for b in plan.batch_sizes if b not in bs]
    if len(bs) < 2:
        return None, n_train, (f"only {list(bs)} of the batch sizes {list(plan.batch_sizes)} fit in its {n_train} "
                               "training nodes; a contrast needs two")
    cfg = cfg.override({"train.batch_sizes": list(bs)})
    note = (f"B = {', '.join(map(str, left_out))} {'exceeds' if len(left_out) == 1 else 'exceed'} the {n_train} "
            "training nodes: the contrast is "
            f"B = {bs[0]} against B = {bs[-1]}, the largest that fits") if left_out else ""
    budget = make_budget(cfg)
    fewest = min(budget.total_steps(b, n_train) for b in bs)
    if cfg.train.trajectory > fewest:
        cfg = cfg.override({"train.trajectory": fewest})
        note = (note + "; " if note else "") + f"train.trajectory capped at {fewest} (the fewest steps of a run)"
    return cfg, n_train, note


def twin_check(config, runs) -> dict:
    """Do the fitted hypergraph and pairwise graphs differ only by the hyperedge? (checked on the study's own graphs)

    Compares :func:`hgcnet_jax.study.plan.graphs`' ``hypergraph`` and ``pairwise`` for the
    study's config and fitted rows: the variables (columns, transforms, measurement-error
    columns), the noise model, every variable's parent set, the forms of the edges they
    share, and the coefficients of the NumPyro model each one generates
    (:func:`hgcnet_jax.causal.model.make_model`'s layout: names and prior scales of the mean
    terms, the heteroscedastic scale terms, the radial-basis edges).
    """
    from hgcnet_jax.causal.model import make_model
    from hgcnet_jax.study.plan import fit_table, graphs

    table, _ = fit_table(runs, config)
    g = graphs(config, table)
    h, p = g["hypergraph"], g["pairwise"]
    lh, lp = make_model(h).layout, make_model(p).layout
    ch, cp = dict(zip(lh.coef_names, lh.coef_scales, strict=True)), dict(zip(lp.coef_names, lp.coef_scales, strict=True))
    he = {e.label: (e.form, e.num_basis) for e in h.edges}
    pe = {e.label: (e.form, e.num_basis) for e in p.edges}
    only_pair_edges = sorted(set(pe) - set(he))
    only_h_coef = sorted(set(ch) - set(cp))
    inter = {f"inter[{'*'.join(x.parents)}->{x.child}]" for x in h.hyperedges}
    checks = {
        "same variables": h.variables == p.variables,
        "same noise model": (h.noise, h.noise_scale) == (p.noise, p.noise_scale),
        "same parent sets": all(set(h.parents(v)) == set(p.parents(v)) for v in h.names),
        "shared edges have the same forms": all(he[k] == pe[k] for k in set(he) & set(pe)),
        "no edge only in the hypergraph": not (set(he) - set(pe)),
        "pairwise's extra edges are the hypergraph's linear main effects": all(
            pe[k][0] == "linear" and f"coef[{k}]" in ch for k in only_pair_edges),
        "pairwise has no coefficient the hypergraph lacks": not (set(cp) - set(ch)),
        "shared coefficients have the same priors": all(ch[k] == cp[k] for k in set(ch) & set(cp)),
        "the hypergraph's extra coefficients are its hyperedge's": set(only_h_coef) <= inter,
        "same noise-scale terms": set(lh.scale_names) == set(lp.scale_names),
        "same radial-basis edges": set(lh.rbf_labels) == set(lp.rbf_labels),
        "hyperedges are interactions (no network sites)": all(x.form == "interaction" for x in h.hyperedges),
    }
    return {"ok": all(checks.values()), "checks": checks,
            "hyperedges": [f"{{{', '.join(x.parents)}}} → {x.child} ({x.form})" for x in h.hyperedges],
            "only_hypergraph": [f"{k} (prior scale {ch[k]:g})" for k in only_h_coef],
            "only_pairwise_edges": only_pair_edges,
            "edges": sorted(f"{k} ({v[0]})" for k, v in pe.items()),
            "scale_terms": list(lp.scale_names),
            "num_coefficients": {"hypergraph": len(ch), "pairwise": len(cp)},
            "noise": f"{h.noise}, scale {h.noise_scale}",
            "error_columns": sorted(v.error_column for v in h.variables if v.error_column)}


def _interval(e) -> dict:
    return {"mean": float(e.mean), "lo": float(e.lower), "hi": float(e.upper)}


def _round(xs, nd: int = 6) -> list[float]:
    return [round(float(x), nd) for x in np.asarray(xs, dtype=np.float64)]


def summarise_setting(plan: Plan, setting, config, result, n_train: int, note: str, seconds: float) -> dict:
    """The per-setting summary the report needs (saved as ``<setting>.json``)."""
    import jax

    from hgcnet_jax import causal
    from hgcnet_jax.causal.frequentist import permutation_test

    s = result.summary
    runs = result.runs
    bs = list(config.train.batch_sizes)
    a, b = bs[0], bs[-1]
    y = config.mediators.outcome
    pt = permutation_test(runs, "batch_size", a, b, y, key=jax.random.key(1), num_permutations=plan.num_permutations,
                          num_bootstrap=plan.num_permutations, prob=0.95)
    arm = {str(k): [float(x) for x in runs.loc[runs.batch_size == k, y]] for k in (a, b)}
    crit, ate = s["criticism"], s["ate"]
    answered = crit["answered_by"]
    arms_check = crit["arms"][answered]
    model = {"graph": answered, "trusted": bool(crit["trusted"]), "mean": ate["mean"], "lo": ate["lo"],
             "hi": ate["hi"], "mass": ate["mass"], "p_positive": ate["prob_positive"], "draws": _round(ate["draws"])}
    # hypergraph and pairwise: their ATEs from the saved posteriors (the same query, key and contrast as the study's)
    twin_ate, twin_draws = {}, {}
    for g in ("hypergraph", "pairwise"):
        e = causal.ate(result.fit(g), "B", a, b, "G", prob=plan.credible_mass)
        twin_ate[g] = _interval(e)
        twin_draws[g] = np.asarray(e.draws, dtype=np.float64)
    diff = twin_draws["hypergraph"] - twin_draws["pairwise"]   # independent posteriors: any pairing of draws
    q = (1 - plan.credible_mass) / 2
    cands = {r["candidate"]: r for r in crit["candidates"]}
    loo = s["loo"]
    timings = {k: v.get("seconds") for k, v in s.get("timings", {}).items()}
    return {
        "setting": setting_name(setting), "dataset": setting[0], "model_name": setting[1], "split": setting[2],
        "n_train": n_train, "batch_sizes": bs, "contrast": [a, b],
        "paper_contrast": [a, b] == [min(plan.batch_sizes), max(plan.batch_sizes)], "note": note,
        "fingerprint": config.fingerprint(), "runs": int(len(runs)),
        "diverged": {str(k): int(v) for k, v in runs.groupby("batch_size")["diverged"].sum().items()},
        "arm_means": {str(k): float(v) for k, v in runs.groupby("batch_size")[y].mean().items()},
        "arms": arm,
        "design": {"diff": pt.diff, "lo": pt.lower, "hi": pt.upper, "p": pt.p_value, "n_a": pt.n_a, "n_b": pt.n_b,
                   "num_permutations": pt.num_permutations},
        "study_design": {"diff": ate["observed"], "p": ate["p_value"]},
        "chosen": crit["chosen"], "headline": crit["headline"], "model": model,
        "arm_check": [{"batch_size": r["batch_size"], "arm_mean": r["arm_mean"], "model_mean": r["model_mean"],
                       "model_lo": r["model_lo"], "model_hi": r["model_hi"], "miss": bool(r["miss"])} for r in arms_check],
        "arm_misses": int(sum(bool(r["miss"]) for r in arms_check)),
        "candidates": [{"candidate": r["candidate"], "d_elpd": r["d_elpd"], "se": r["se"], "ok": r["ok"],
                        "chosen": r["chosen"], "ate_mean": r["ate_mean"], "ate_lo": r["ate_lo"], "ate_hi": r["ate_hi"],
                        "reason": (r["reasons"][0] if r["reasons"] else "")} for r in crit["candidates"]],
        "twin": {"loo_diff": loo["diff"], "loo_se": loo["se_diff"], "z": loo["z"],
                 "ok": {g: bool(cands[g]["ok"]) for g in ("hypergraph", "pairwise")},
                 "reason": {g: (cands[g]["reasons"][0] if cands[g]["reasons"] else "") for g in ("hypergraph", "pairwise")},
                 "ate": twin_ate,
                 "diff": {"mean": float(diff.mean()), "lo": float(np.quantile(diff, q)),
                          "hi": float(np.quantile(diff, 1 - q))},
                 "diff_draws": _round(diff),
                 "check": twin_check(config, runs)},
        "refutations": [{"name": r["name"], "passed": bool(r["passed"])} for r in s.get("refutations", [])],
        "mcmc_ok": bool(s["diagnostics"]["ok"]),
        "seconds": round(seconds, 1), "timings": timings,
    }


class Experiment:
    def __init__(self, plan: Plan, folder: Path, studies: Path, say, *, overwrite: bool = False):
        from _common import open_state

        self.plan, self.folder, self.studies, self.say, self.overwrite = plan, folder, studies, say, overwrite
        self.state = open_state(folder, {"config": plan.to_dict(), "settings": {}})

    def _record(self, name: str, entry: dict) -> None:
        from hgcnet_jax import _io

        self.state["settings"][name] = entry
        _io.write_json(self.folder / "state.json", self.state)

    def setting(self, setting) -> None:
        from hgcnet_jax import _io, study

        name = setting_name(setting)
        t0 = time.perf_counter()
        config, n_train, note = setting_config(self.plan, setting)
        if config is None:
            self._record(name, {"status": "skipped", "reason": note, "n_train": n_train})
            self.say(f"{name}: skipped ({note})")
            return
        self.say(f"{name}: study of B ∈ {list(config.train.batch_sizes)} × {config.train.seeds} seeds"
                 + (f" ({note})" if note else "") + f" → {self.studies / name}")
        try:
            result = study.run(config, out=self.studies / name, overwrite=self.overwrite, progress=False,
                               log=lambda m: self.say(f"{name}: {m}"))
        except study.StudyPhaseError as e:
            self._record(name, {"status": "failed", "reason": str(e), "n_train": n_train})
            self.say(f"{name}: FAILED ({e}); a re-run resumes it")
            return
        t_run = time.perf_counter()
        summary = summarise_setting(self.plan, setting, config, result, n_train, note, t_run - t0)
        if result.resumed:  # a study resumed after an interruption: its phases' recorded times, not this call's
            phases = [v for v in summary["timings"].values() if v is not None and math.isfinite(v)]
            summary["seconds"] = round(sum(phases) + time.perf_counter() - t_run, 1)
        else:
            summary["seconds"] = round(time.perf_counter() - t0, 1)
        _io.write_json(self.folder / f"{name}.json", summary)
        self._record(name, {"status": "done", "seconds": summary["seconds"], "fingerprint": summary["fingerprint"]})
        self.say(f"{name}: done in {time.perf_counter() - t0:.0f}s")

    def run(self, report) -> None:
        for setting in self.plan.settings:
            if self.state["settings"].get(setting_name(setting), {}).get("status") in ("done", "skipped"):
                continue
            self.setting(setting)
            report()


# --------------------------------------------------------------------------- analysis


def verdict(lo: float, hi: float, claim: float, *, what: str = "the advantage of small batches") -> str:
    """Reproduces / does not / inconclusive, from an interval and the paper's figure (both as fractions)."""
    if lo > 0 and lo <= claim <= hi:
        return "reproduces"
    if lo > 0:
        return f"does not reproduce: {what} is {'larger' if lo > claim else 'smaller'} than the paper's"
    if hi < 0:
        return "does not reproduce: the sign is reversed (large batches are better)"
    if lo <= claim <= hi:
        return "inconclusive: the interval holds both 0 and the paper's figure"
    return "does not reproduce: no effect detected, and the paper's figure lies outside the interval"


def pooled_design(arms: list[tuple[np.ndarray, np.ndarray]], *, num: int, seed: int = 0) -> dict:
    """Mean over settings of the arm-mean differences: stratified bootstrap 95 % interval and permutation p.

    Each setting's two arms are resampled (bootstrap) or their labels shuffled (permutation)
    within the setting, and the per-setting differences averaged: the settings are fixed, as
    the paper's "average over datasets" is.
    """
    rng = np.random.default_rng(seed)
    obs = float(np.mean([ya.mean() - yb.mean() for ya, yb in arms]))
    boot, perm = np.zeros(num), np.zeros(num)
    for ya, yb in arms:
        na, nb = len(ya), len(yb)
        boot += ya[rng.integers(0, na, (num, na))].mean(1) - yb[rng.integers(0, nb, (num, nb))].mean(1)
        pooled = np.concatenate([ya, yb])
        idx = rng.permuted(np.tile(np.arange(na + nb), (num, 1)), axis=1)
        perm += pooled[idx[:, :na]].mean(1) - pooled[idx[:, na:]].mean(1)
    boot /= len(arms)
    perm /= len(arms)
    p = (1 + np.sum(np.abs(perm) >= abs(obs) - 1e-12)) / (1 + num)
    lo, hi = np.quantile(boot, [0.025, 0.975])
    return {"mean": obs, "lo": float(lo), "hi": float(hi), "p": float(p)}


def pooled_draws(draws: list, *, mass: float, seed: int = 0) -> dict:
    """Mean over settings of independent posteriors: draw-wise average (each shuffled, cut to the shortest)."""
    rng = np.random.default_rng(seed)
    k = min(len(d) for d in draws)
    avg = np.mean([rng.permutation(np.asarray(d, dtype=np.float64))[:k] for d in draws], axis=0)
    q = (1 - mass) / 2
    return {"mean": float(avg.mean()), "lo": float(np.quantile(avg, q)), "hi": float(np.quantile(avg, 1 - q))}


def load_settings(plan: Plan, folder: Path) -> dict[str, dict]:
    """The finished settings' summaries, in plan order."""
    st = json.loads((folder / "state.json").read_text())
    out = {}
    for setting in plan.settings:
        name = setting_name(setting)
        if st["settings"].get(name, {}).get("status") == "done" and (folder / f"{name}.json").exists():
            out[name] = json.loads((folder / f"{name}.json").read_text())
    return out


def twin_outcome(r: dict) -> str:
    """Per setting: is the hyperedge needed ('hypergraph'), harmful ('pairwise') or neither ('neither')?"""
    t = r["twin"]
    h = t["z"] >= 2 or (t["ok"]["hypergraph"] and not t["ok"]["pairwise"])
    p = t["z"] <= -2 or (t["ok"]["pairwise"] and not t["ok"]["hypergraph"])
    return "hypergraph" if h and not p else "pairwise" if p and not h else "neither"


def analyse(plan: Plan, folder: Path) -> dict:
    """Every number of the report, from the per-setting summaries alone."""
    rows = load_settings(plan, folder)
    head = [n for n, r in rows.items() if r["paper_contrast"]]
    out: dict = {"rows": rows, "head": head}

    def design(names):
        if not names:
            return None
        arms = [tuple(np.asarray(rows[n]["arms"][str(c)], dtype=np.float64) for c in rows[n]["contrast"])
                for n in names]
        return {**pooled_design(arms, num=plan.num_permutations), "settings": list(names)}

    out["design_head"] = design(head)
    out["design_all"] = design(list(rows))
    trusted = [n for n in head if rows[n]["model"]["trusted"]]
    out["model_head"] = ({**pooled_draws([rows[n]["model"]["draws"] for n in trusted], mass=plan.credible_mass),
                          "settings": trusted} if trusted else None)
    if out["design_head"]:
        d = out["design_head"]
        out["verdict"] = verdict(d["lo"], d["hi"], PAPER_ATE)
    else:
        out["verdict"] = "inconclusive: no setting with the paper's contrast has finished"
    m = out["model_head"]
    out["model_verdict"] = verdict(m["lo"], m["hi"], PAPER_ATE) if m else None
    # reproduction 4
    outcomes = {n: twin_outcome(r) for n, r in rows.items()}
    out["twin_outcomes"] = outcomes
    out["twin_head"] = ({**pooled_draws([rows[n]["twin"]["diff_draws"] for n in head], mass=plan.credible_mass),
                         "settings": head} if head else None)
    n_h = sum(v == "hypergraph" for v in outcomes.values())
    n_p = sum(v == "pairwise" for v in outcomes.values())
    th = out["twin_head"]
    small = th is not None and -PAPER_PAIRWISE_COST[0] < th["lo"] and th["hi"] < PAPER_PAIRWISE_COST[0]
    if not rows:
        tv = "inconclusive: no setting has finished"
    elif n_h > len(rows) / 2 and n_p == 0:
        tv = "reproduces: the hyperedge is needed in most settings and harmful in none"
    elif n_p > len(rows) / 2 or (n_h == 0 and small):
        tv = ("does not reproduce: the hyperedge is needed in no setting"
              + (" and the two graphs' ATEs differ by less than the paper's 1.8 %" if small else "")
              if n_p <= len(rows) / 2 else "does not reproduce: the pairwise graph is better in most settings")
    else:
        tv = "inconclusive"
    out["twin_verdict"] = tv
    out["twin_ok"] = all(r["twin"]["check"]["ok"] for r in rows.values())
    return out


# --------------------------------------------------------------------------- report


def _pts(x: float) -> str:
    return f"{100 * x:+.2f}"


def _iv(d: dict) -> str:
    return f"{_pts(d['mean'])} [{_pts(d['lo'])}, {_pts(d['hi'])}]"


def _split_text(r: dict) -> str:
    if r["dataset"] == "csbm":
        return f"CSBM, {r['split']} ({r['n_train']} train)"
    return f"{r['dataset']}, {r['split']} ({r['n_train']} train)"


def write_report(plan: Plan, folder: Path, quick: bool) -> str:
    a = analyse(plan, folder)
    st = json.loads((folder / "state.json").read_text())
    rows = a["rows"]
    lo_b, hi_b = min(plan.batch_sizes), max(plan.batch_sizes)
    pct = f"{plan.credible_mass:.0%}"
    flag = "" if plan.name == NAME else f" --plan {next(k for k, v in PLANS.items() if v.name == plan.name)}"
    cmd = ("python experiments/bs_ate.py --quick --out DIR" if quick else f"nice -n 10 python experiments/bs_ate.py{flag}")
    done = sum(v.get("status") == "done" for v in st["settings"].values())
    L = [f"## {TITLES.get(plan.name, TITLES[NAME])}", "",
         f"`{cmd}` (resumable setting by setting; studies in `hgcnet-out/experiments/{plan.name}/<setting>`, summaries in "
         f"`experiments/state/{plan.name}/`; `--report-only` rebuilds this section). Progress: {done} of "
         f"{len(plan.settings)} settings finished.", "", CLAIM, ""]
    skipped = {k: v for k, v in st["settings"].items() if v.get("status") in ("skipped", "failed")}
    pending = [setting_name(s) for s in plan.settings if setting_name(s) not in st["settings"]]
    for k, v in skipped.items():
        L.append(f"- `{k}`: **{v['status']}**: {v['reason']}")
    if pending:
        L.append(f"- not run yet: {', '.join(f'`{p}`' for p in pending)}")
    if skipped or pending:
        L.append("")
    if rows:
        L += ["### Reproduction 2: E[G | do(B = small)] − E[G | do(B = large)] (test accuracy, percentage points)", "",
              "Design-based: the difference of the two arms' mean test accuracy over every run (B is randomised, so "
              "each arm's mean is E[G | do(B)]), its two-sided permutation p-value and 95 % bootstrap interval. "
              f"Model: the ATE of the graph the criticism accepts (the study's chosen candidate), {pct} credible "
              "interval; *none accepted* shows the best graph by PSIS-LOO in italics, which answers nothing. "
              "'Model vs arms': the study's check of the answering graph's E[G | do(B)] against every arm, and "
              "whether the design-based difference lies in the model's interval.", "",
              "| setting | B | contrast | design-based Δ [95 %] | p | accepted graph | model ATE "
              f"[{pct}] | model vs arms | diverged |",
              "|---|---|---|---|---|---|---|---|---|"]
        for n, r in rows.items():
            d, m = r["design"], r["model"]
            inside = m["lo"] <= d["diff"] <= m["hi"]
            ate = _iv(m) if m["trusted"] else f"*{_iv(m)}*"
            graph = f"`{r['chosen']}`" if r["chosen"] else f"none accepted (*`{m['graph']}`*)"
            agree = (f"{len(r['arm_check']) - r['arm_misses']}/{len(r['arm_check'])} arms agree; Δ "
                     + ("inside" if inside else "**outside**"))
            L.append(f"| `{n}` ({_split_text(r)}) | {', '.join(map(str, r['batch_sizes']))} | {r['contrast'][0]} vs "
                     f"{r['contrast'][1]}{'' if r['paper_contrast'] else ' ¹'} | {_pts(d['diff'])} [{_pts(d['lo'])}, "
                     f"{_pts(d['hi'])}] | {d['p']:.3g} | {graph} | {ate} | {agree} | "
                     f"{sum(r['diverged'].values())} of {r['runs']} |")
        L.append("")
        notes = [f"`{n}`: {r['note']}" for n, r in rows.items() if r["note"]]
        if notes:
            L += ["¹ Not the paper's contrast, kept out of the comparison with its average: " + "; ".join(notes) + ".",
                  ""]
        dh, da, mh = a["design_head"], a["design_all"], a["model_head"]
        if dh:
            L.append(f"**Mean over the {len(dh['settings'])} setting(s) with the paper's contrast "
                     f"(B = {lo_b} vs {hi_b}: {', '.join(f'`{s}`' for s in dh['settings'])})**: design-based "
                     f"{_iv(dh)} pts (95 % stratified bootstrap; stratified permutation p = {dh['p']:.3g}); model ATE of "
                     "the accepted graphs " + (f"{_iv(mh)} pts ({pct}, over the {len(mh['settings'])} settings with an "
                                               "accepted graph)" if mh else "not available: no setting with the "
                                               "paper's contrast has an accepted graph")
                     + f". **The paper: +{100 * PAPER_ATE:.1f} %** on average.")
            L.append("")
        L.append(f"**Verdict (reproduction 2, design-based mean against +{100 * PAPER_ATE:.1f} %): {a['verdict']}.**"
                 + (f" The accepted graphs' mean ATE: {a['model_verdict']}." if a["model_verdict"] else ""))
        if len(rows) == len(plan.settings) or quick:
            L.append("")
        if da and da["settings"] != (dh or {}).get("settings"):
            L.append(f"For context, every finished setting at its own contrast ({len(da['settings'])} settings): "
                     f"design-based mean {_iv(da)} pts (p = {da['p']:.3g}).")
            L.append("")
        L += ["Candidate graphs and their criticism (Δelpd to the best ± SE; ATE at the setting's contrast):", ""]
        for n, r in rows.items():
            parts = []
            for c in r["candidates"]:
                why = f": {c['reason']}" if c["reason"] and not c["ok"] else ""
                parts.append(f"`{c['candidate']}`{' (chosen)' if c['chosen'] else ''} {c['d_elpd']:+.1f} ± {c['se']:.1f}, "
                             f"{'passes' if c['ok'] else 'fails'}, ATE {_pts(c['ate_mean'])}{why}")
            refs = "; ".join(f"{x['name']} {'passed' if x['passed'] else 'FAILED'}" for x in r["refutations"])
            L.append(f"- `{n}`: " + " · ".join(parts) + (f". Refutations: {refs}." if refs else ".")
                     + ("" if r["mcmc_ok"] else " MCMC diagnostics poor for at least one fit."))
        L.append("")
        # reproduction 4
        L += ["### Reproduction 4: the hypergraph against its pairwise twin", "",
              f"PSIS-LOO Δelpd (hypergraph − pairwise) ± SE on the joint density of the runs; each graph's criticism; "
              f"both ATEs at the setting's contrast ({pct}) and their difference (independent posteriors). 'Hyperedge "
              "needed' when the hypergraph wins by |z| ≥ 2 or passes its criticism where the pairwise graph fails "
              "('pairwise' for the reverse, 'neither' otherwise).", "",
              f"| setting | Δelpd ± SE (z) | hypergraph | pairwise | ATE hypergraph | ATE pairwise | "
              f"difference [{pct}] | hyperedge needed? |", "|---|---|---|---|---|---|---|---|"]
        for n, r in rows.items():
            t = r["twin"]
            crit = {g: ("passes" if t["ok"][g] else "fails") for g in ("hypergraph", "pairwise")}
            L.append(f"| `{n}` | {t['loo_diff']:+.2f} ± {t['loo_se']:.2f} ({t['z']:+.1f}) | {crit['hypergraph']} | "
                     f"{crit['pairwise']} | {_iv(t['ate']['hypergraph'])} | {_iv(t['ate']['pairwise'])} | "
                     f"{_iv(t['diff'])} | {a['twin_outcomes'][n]} |")
        L.append("")
        chk = next(iter(rows.values()))["twin"]["check"]
        failed = {n: [k for k, v in r["twin"]["check"]["checks"].items() if not v] for n, r in rows.items()}
        failed = {n: v for n, v in failed.items() if v}
        L.append("**Do the two graphs differ only by the hyperedge?** Checked in code on every setting's fitted graphs "
                 "(`hgcnet_jax.study.plan.graphs` → `Hypergraph.pairwise`, and the terms `causal.model.make_model` "
                 "builds): " + ("**yes, in every setting**" if a["twin_ok"] else
                                "**NO**: " + "; ".join(f"`{n}`: {', '.join(v)}" for n, v in failed.items()))
                 + f". Both have the same variables and parent sets, the same noise model ({chk['noise']}"
                 + (f"; heteroscedastic scale terms {', '.join(chk['scale_terms'])}" if chk["scale_terms"] else "")
                 + f"), the same measurement errors ({', '.join(chk['error_columns']) or 'none'}) "
                 f"and the edges {', '.join(chk['edges'])}. The hypergraph's C equation carries its hyperedge "
                 f"{', '.join(chk['hyperedges'])} as the linear main effects of N and S (the pairwise graph's "
                 f"{' and '.join(chk['only_pairwise_edges'])}, same priors) plus "
                 f"{', '.join(chk['only_hypergraph'])}: {chk['num_coefficients']['hypergraph']} against "
                 f"{chk['num_coefficients']['pairwise']} mean coefficients, the extra one being the hyperedge's. So "
                 "'equal flexibility apart from the hyperedge' holds: the pairwise graph is the hypergraph with its "
                 "interaction coefficient fixed at 0.")
        L.append("")
        th = a["twin_head"]
        if th:
            L.append(f"Mean over the settings with the paper's contrast of ATE(hypergraph) − ATE(pairwise): {_iv(th)} "
                     f"pts ({pct}); the paper: pairwise instead of hypergraph costs "
                     f"{100 * PAPER_PAIRWISE_COST[0]:.1f}–{100 * PAPER_PAIRWISE_COST[1]:.1f} % (its measure unknown).")
            L.append("")
        counts = {k: sum(v == k for v in a["twin_outcomes"].values()) for k in ("hypergraph", "pairwise", "neither")}
        L.append(f"**Verdict (reproduction 4): {a['twin_verdict']}** (hyperedge needed in {counts['hypergraph']}, "
                 f"pairwise better in {counts['pairwise']}, neither in {counts['neither']} of {len(rows)} settings).")
        L.append("")
        if not quick:
            L += [f"![per-setting differences](results/{plan.name}/{plan.name}.png)", ""]
    secs = sum(r["seconds"] for r in rows.values())
    L.append(f"Setup: the `{plan.preset}` study preset, {plan.seeds} seeds per batch size, batch sizes "
             f"{', '.join(map(str, plan.batch_sizes))} where they fit, every study's other settings as "
             "`hgcnet study` has them" + (f" (overrides: {', '.join(f'{k} = {v}' for k, v in plan.overrides)})"
                                          if plan.overrides else "")
             + f"; {plan.num_permutations} permutations and bootstrap resamples. Compute so far: {secs / 60:.1f} min "
             "wall-clock on this machine's 2-core CPU (shared with other jobs); per setting: "
             + (", ".join(f"`{n}` {r['seconds'] / 60:.1f} min" for n, r in rows.items()) or "none") + ".")
    md = "\n".join(L)
    if rows:
        plot(plan, a, folder / f"{plan.name}.png" if quick else fig_dir(plan.name) / f"{plan.name}.png")
    if not quick:
        from _common import write_section

        write_section(plan.name, md)
    return md


def plot(plan: Plan, a: dict, path: Path) -> None:
    """Per-setting design-based differences and model ATEs, and the twins' ATE differences, with intervals;
    the last row holds the means over the settings with the paper's contrast."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hgcnet_jax import _io

    rows = a["rows"]
    entries = [(n + ("" if r["paper_contrast"] else f" ({r['contrast'][0]} vs {r['contrast'][1]})"),
                {"mean": r["design"]["diff"], "lo": r["design"]["lo"], "hi": r["design"]["hi"]}, r["model"],
                r["model"]["trusted"], r["twin"]["diff"]) for n, r in rows.items()]
    if a["design_head"]:
        m = a["model_head"]
        entries.append(("mean, paper's contrast", a["design_head"], m, m is not None, a["twin_head"]))
    y = np.arange(len(entries))[::-1].astype(float)

    def bar(ax, v, at, **kw):
        ax.errorbar(100 * v["mean"], at, xerr=[[100 * (v["mean"] - v["lo"])], [100 * (v["hi"] - v["mean"])]],
                    capsize=3, **kw)

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 0.5 * len(entries) + 2.8), sharey=True)
    for i, (_, d, m, trusted, t) in enumerate(entries):
        bar(ax1, d, y[i] + 0.12, fmt="o", color="C0", label="design-based (arms), 95 %" if i == 0 else None)
        if m is not None:
            bar(ax1, m, y[i] - 0.12, fmt="s", color="C1", mfc="C1" if trusted else "white",
                label="model ATE (hollow: no graph accepted)" if i == 0 else None)
        if t is not None:
            bar(ax2, t, y[i], fmt="D", color="C2")
    ax1.axvline(100 * PAPER_ATE, color="k", ls="--", lw=1, label=f"paper: +{100 * PAPER_ATE:.1f} % (average)")
    for ax in (ax1, ax2):
        ax.axvline(0, color="grey", lw=0.8)
        if a["design_head"]:
            ax.axhline(y[-1] + 0.5, color="grey", lw=0.6, ls=":")
    for s in (1, -1):
        ax2.axvspan(s * 100 * PAPER_PAIRWISE_COST[0], s * 100 * PAPER_PAIRWISE_COST[1], color="k", alpha=0.15,
                    label="paper: pairwise costs 1.8–2.3 % (sign unknown)" if s == 1 else None)
    ax1.set_yticks(y, [e[0] for e in entries], fontsize=8)
    ax1.set_xlabel("E[G | do(B small)] − E[G | do(B large)], test accuracy (pts)")
    ax2.set_xlabel(f"ATE(hypergraph) − ATE(pairwise) (pts, {plan.credible_mass:.0%})")
    for ax in (ax1, ax2):
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with _io.atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="two tiny synthetic settings; writes nothing to docs/")
    ap.add_argument("--out", type=Path, default=None,
                    help=f"state folder (default {STATE_DIR.relative_to(REPO)}; with --quick, the studies go in OUT/studies)")
    ap.add_argument("--overwrite", action="store_true",
                    help="forget the saved summaries, and let a study folder holding another config be replaced "
                         "(a study of the same config still resumes)")
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--plan", choices=sorted(PLANS), default="paper",
                    help="paper: Cora and CiteSeer, GCN and GAT, full and public split (reproductions 2 and 4); "
                         "text: the transformer on the product reviews and the medical newsgroups (reproduction 8)")
    args = ap.parse_args(argv)
    plan = QUICK if args.quick else PLANS[args.plan]
    folder = args.out or (REPO / "hgcnet-out" / "experiments" / f"{NAME}_quick" if args.quick else state_dir(plan.name))
    studies = folder / "studies" if args.quick else study_root(plan.name)
    if args.overwrite and folder.exists() and not args.report_only:
        for f in [folder / f"{setting_name(s)}.json" for s in plan.settings] + [folder / "state.json"]:
            f.unlink(missing_ok=True)
    if not (folder / "state.json").exists() and args.report_only:
        raise SystemExit(f"{folder / 'state.json'} does not exist: nothing to report")
    t0 = time.perf_counter()

    def say(msg):
        print(f"[{time.perf_counter() - t0:7.1f}s] {msg}", flush=True)

    if not args.report_only:
        from _common import data_root

        from hgcnet_jax import compile_cache

        root = data_root()
        if root and "HGCNET_DATA_DIR" not in os.environ:
            os.environ["HGCNET_DATA_DIR"] = root
        compile_cache.enable(studies.parent / f"{studies.name}.xla-cache")  # a caller's cache folder wins
        exp = Experiment(plan, folder, studies, say, overwrite=args.overwrite)
        exp.run(lambda: None if args.quick else write_report(plan, folder, False))
    md = write_report(plan, folder, args.quick)
    if args.quick:
        print(md)
    st = json.loads((folder / "state.json").read_text())
    return 1 if any(v.get("status") == "failed" for v in st["settings"].values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
