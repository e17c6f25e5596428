"""Fixtures of the study tests: a hand-built summary and runs table for the report tests.

The report is a pure function of (summary, runs); these fixtures give it known
numbers so the tests can check that exactly those numbers reach the page.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

BATCH_SIZES = [16, 32, 64, 128]


def make_runs(seeds: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for b in BATCH_SIZES:
        for s in range(seeds):
            rows.append(
                dict(run_id=len(rows), batch_size=b, seed=s, test_acc=0.8 - 0.01 * np.log2(b) + 0.005 * rng.normal(),
                     noise_b_simple=100.0 / b * (1 + 0.1 * rng.normal()), sharp_lambda_max=2.0 + 0.1 * np.log2(b),
                     complexity_dist_init=5.0 - 0.2 * np.log2(b), wall_time_s=10.0 / np.sqrt(b), epochs=5)
            )
    return pd.DataFrame(rows)


def make_summary(*, diagnostics_ok: bool = True) -> dict:
    k = len(BATCH_SIZES)
    mean = [0.76, 0.75, 0.74, 0.73]
    curve = dict(mean=mean, lo=[m - 0.01 for m in mean], hi=[m + 0.01 for m in mean])
    pair = dict(mean=[m - 0.002 for m in mean], lo=[m - 0.015 for m in mean], hi=[m + 0.012 for m in mean])
    draws = list(np.random.default_rng(1).normal(0.03, 0.004, size=400))
    diag = dict(max_rhat=1.003 if diagnostics_ok else 1.31, min_ess_bulk=812.0 if diagnostics_ok else 9.0,
                min_ess_tail=700.0, divergences=0 if diagnostics_ok else 17, ok=diagnostics_ok)
    arms = [dict(batch_size=b, n_runs=3, arm_mean=m, arm_lo=m - 0.01, arm_hi=m + 0.01, model_mean=m - 0.001,
                 model_lo=m - 0.011, model_hi=m + 0.009, p_value=0.5, p_adjusted=1.0, miss=False)
            for b, m in zip(BATCH_SIZES, mean, strict=True)]
    cand = dict(elpd=-120.5, se=6.1, d_elpd=0.0, max_pareto_k=0.4, arm_misses=0, rejected_independences=0,
                falsification_p=0.2, ate_mean=0.0301, ate_lo=0.0231, ate_hi=0.0372)
    criticism = {
        "chosen": "hypergraph", "answered_by": "hypergraph", "trusted": True, "alpha": 0.05, "prob": 0.95,
        "headline": "The causal model fits the experiment: <test headline>",
        "candidates": [dict(cand, candidate="hypergraph", ok=True, chosen=True, reasons=[]),
                       dict(cand, candidate="pairwise", elpd=-124.0, d_elpd=-3.5, ok=False, chosen=False,
                            arm_misses=1, reasons=["arm B=128: <test reason>"])],
        "arms": {"hypergraph": arms, "pairwise": arms},
        "independences": {}, "falsification": {}, "predictive_flagged": {}, "lobo": None, "not_identified": [],
    }
    return {
        "version": "0.1.0",
        "criticism": criticism,
        "fingerprint": "0123456789abcdef" * 4,
        "title": "Batch-size study: gcn on csbm <test>",
        "subtitle": "4 batch sizes x 3 seeds",
        "config_toml": "seed = 0\n[data]\nname = \"csbm\"\n",
        "outcome": "test_acc",
        "mediator_columns": {"N": "noise_b_simple", "S": "sharp_lambda_max", "C": "complexity_dist_init"},
        "interventional": dict(batch_sizes=BATCH_SIZES, curves={"hypergraph": curve, "pairwise": pair},
                               observed_mean=[0.761, 0.749, 0.741, 0.731], n_runs=[3] * k),
        "ate": dict(b_small=16, b_large=128, mean=0.0301, lo=0.0231, hi=0.0372, mass=0.94, prob_positive=0.9990,
                    prob_sign=0.9990, observed=0.0298, p_value=0.0123, draws=draws),
        "effects": {"rows": {"total": dict(mean=0.03, lo=0.02, hi=0.04),
                             "direct": dict(mean=0.01, lo=-0.01, hi=0.02),
                             "through N": dict(mean=0.015, lo=0.005, hi=0.03),
                             "through S": dict(mean=0.005, lo=-0.002, hi=0.01)},
                    "note": "effects of do(B=16) against do(B=128)"},
        "hypergraph_edges": [dict(tails=["B"], head="N", effect=-0.9), dict(tails=["N"], head="S", effect=0.4),
                             dict(tails=["N", "S"], head="C", effect=0.25), dict(tails=["C"], head="G", effect=-0.5),
                             dict(tails=["B"], head="G", effect=None),
                             dict(tails=["N"], head="C", effect=0.7, main_effect=True)],
        "loo": {"models": {"hypergraph": dict(elpd=-120.5, se=6.1, p_loo=12.0, pareto_k_max=0.4),
                           "pairwise": dict(elpd=-124.0, se=6.4, p_loo=10.0, pareto_k_max=0.3)},
                "preferred": "hypergraph", "verdict": "hypergraph preferred by 3.5 ± 2.0 elpd"},
        "refutations": [dict(name="placebo treatment", original=0.03, new=0.001, passed=True,
                             detail="a permuted B has no effect"),
                        dict(name="random common cause", original=0.03, new=0.05, passed=False,
                             detail="adding a random covariate moves the estimate")],
        "diagnostics": dict(ok=diagnostics_ok, rhat_max=1.01, ess_min=400, models={"hypergraph": diag, "pairwise": diag}),
        "recommendation": dict(best_batch_size=16, best_mean=0.76, best_lo=0.75, best_hi=0.77, current_batch_size=128,
                               prob_beats_current=0.998, best_time_per_epoch_s=0.5, current_time_per_epoch_s=0.25,
                               time_ratio_vs_current=2.0, time_per_epoch_s={"16": 0.5, "32": 0.4, "64": 0.3, "128": 0.25}),
        "per_batch_size": {"columns": ["test_acc", "noise_b_simple"],
                           "rows": [dict(batch_size=b, test_acc=mean[i], noise_b_simple=100 / b)
                                    for i, b in enumerate(BATCH_SIZES)]},
        "warnings": [] if diagnostics_ok else ["MCMC diagnostics are poor for model 'hypergraph' (R-hat 1.31)"],
        "timings": {"sweep": dict(seconds=12.3, source="computed")},
        "files": ["runs.parquet", "summary.json"],
    }


@pytest.fixture
def summary_factory():
    """``summary_factory(diagnostics_ok=...)`` builds a fresh summary."""
    return make_summary


@pytest.fixture
def summary():
    return make_summary()


@pytest.fixture
def runs():
    return make_runs()


@pytest.fixture(scope="session")
def built_report(tmp_path_factory):
    """A report built once per session from the hand-built summary: (folder, summary, runs)."""
    from hgcnet_jax.report import build

    folder = tmp_path_factory.mktemp("report")
    s, r = make_summary(), make_runs()
    build.build(s, r, folder, graph=paper_graph())
    return folder, s, r


def paper_graph():
    from hgcnet_jax.causal import Hypergraph

    return Hypergraph.paper({"B": "batch_size", "N": "noise_b_simple", "S": "sharp_lambda_max",
                             "C": "complexity_dist_init", "G": "test_acc"}, direct=True)
