"""Issue #14's acceptance rates of model criticism and the candidate-graph search, on synthetic sweeps.

Two truths, 20 sweeps each (6 batch sizes × 10 seeds = 60 runs):

* *outside* the paper's graph: :class:`hgcnet_jax.causal.BudgetSCM` (steps drive C,
  B → S, G saturating below 1, heavy-tailed N);
* *inside* it: :class:`hgcnet_jax.causal.SyntheticSCM` (the paper's graph with a direct
  edge B → G), balanced arms.

Measured: how often :func:`hgcnet_jax.causal.criticize` flags the paper's graph
(``Hypergraph.paper(direct=True)``, the study's default) outside (issue: >= 18 of 20)
and passes it inside (>= 17 of 20); how often :func:`hgcnet_jax.causal.search_graphs`
over :func:`hgcnet_jax.causal.candidate_graphs` (base: the paper's graph with a logit
G) picks a graph with a budget path into C (>= 16 of 20), and how often that graph's
90 % ATE interval covers the true ATE (>= 16 of 20).

Usage::

    python experiments/criticism_synthetic.py            # 20 + 20 tables, every candidate (about 20 min on 2 cores)
    python experiments/criticism_synthetic.py --quick    # 2 + 2 tables, three candidates (the suite's smoke test)

The full run writes the section ``criticism_synthetic`` of ``docs/results.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import jax

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hgcnet_jax import causal  # noqa: E402

A, B = 16, 512
SEEDS = 10
NUTS = dict(num_warmup=300, num_samples=300, num_chains=2)
QUICK_CANDIDATES = ("paper", "B->S,B->C", "steps-mediator,B->S")


def has_budget_path(graph: causal.Hypergraph) -> bool:
    """Whether B reaches C other than through N and S (B → C, or B → steps → C)."""
    t = graph.treatment
    return any(p == t or (p not in ("N", "S") and graph.has_path(t, p)) for p in graph.parents("C"))


def run(num_tables: int, *, candidates: tuple[str, ...] | None = None, seed: int = 0) -> dict:
    budget, inside = causal.BudgetSCM(), causal.SyntheticSCM()
    outside_tables = [budget.sample(SEEDS, key=jax.random.key(1000 + i)) for i in range(num_tables)]
    inside_tables = [inside.sample(6 * SEEDS, key=jax.random.key(2000 + i), balanced=True) for i in range(num_tables)]
    truth = budget.effects(A, B, key=jax.random.key(999)).ate
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", causal.ConvergenceWarning)
        paper = causal.Hypergraph.paper(direct=True)
        fits = causal.fit_many(paper, outside_tables + inside_tables, key=jax.random.key(seed), **NUTS)
        crits = [causal.criticize(f, t, key=jax.random.key(10 + i))
                 for i, (f, t) in enumerate(zip(fits, outside_tables + inside_tables, strict=True))]
        flagged = sum(not c.ok for c in crits[:num_tables])
        passed = sum(c.ok for c in crits[num_tables:])
        base = causal.Hypergraph.paper(direct=True, transforms={"G": "logit"})
        cands = causal.candidate_graphs(base, steps="steps", table=outside_tables[0])
        if candidates is not None:
            cands = {k: v for k, v in cands.items() if k in candidates}
        searches = causal.search_graphs(cands, outside_tables, key=jax.random.key(seed + 1), **NUTS)
    picked = [s.chosen for s in searches]
    true_path = sum(s.graph is not None and has_budget_path(s.graph) for s in searches)
    covered = 0
    for s in searches:
        if s.chosen is not None:
            row = s.table.set_index("candidate").loc[s.chosen]
            covered += bool(row.ate_lower <= truth <= row.ate_upper)
    return {
        "tables": num_tables,
        "paper_flagged_outside": flagged,
        "paper_passed_inside": passed,
        "search_true_path": true_path,
        "search_ate_covered": covered,
        "search_none": sum(p is None for p in picked),
        "picked": picked,
        "true_ate": truth,
        "candidates": list(cands),
        "reasons_inside_failures": [list(c.reasons) for c in crits[num_tables:] if not c.ok],
        "seconds": time.perf_counter() - t0,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 + 2 tables and three candidates")
    parser.add_argument("--json", type=Path, help="also write the counts to this file")
    args = parser.parse_args(argv)
    out = run(2, candidates=QUICK_CANDIDATES) if args.quick else run(20)
    print(json.dumps(out, indent=1, default=str))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=str))
    if not args.quick:
        from _common import write_section

        n = out["tables"]
        write_section("criticism_synthetic", "\n".join([
            "### Model criticism and graph search on synthetic sweeps (issue #14)",
            "",
            f"{n} sweeps per truth, 6 batch sizes × {SEEDS} seeds; NUTS 2 × ({NUTS['num_warmup']} + {NUTS['num_samples']}).",
            "",
            "| check | count | issue's bar |",
            "|---|---|---|",
            f"| criticism flags the paper's graph, truth outside it (BudgetSCM) | {out['paper_flagged_outside']} / {n} | >= 18 |",
            f"| criticism passes the paper's graph, truth inside it (SyntheticSCM) | {out['paper_passed_inside']} / {n} | >= 17 |",
            f"| search picks a graph with a budget path into C | {out['search_true_path']} / {n} | >= 16 |",
            f"| the chosen graph's 90 % ATE interval covers the truth ({out['true_ate']:.4f}) | {out['search_ate_covered']} / {n} | >= 16 |",
            f"| no candidate passes | {out['search_none']} / {n} | |",
            "",
            f"Candidates: {', '.join(out['candidates'])}. Picked: {', '.join(map(str, out['picked']))}.",
        ]))
    return out


if __name__ == "__main__":
    main()
