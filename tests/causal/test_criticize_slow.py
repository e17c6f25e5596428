"""Model criticism on 20 + 20 synthetic sweeps, the held-out-seed refuter and a small graph search (slow).

Issue #14's bars: on sweeps whose truth lies outside the paper's graph
(:class:`causal.BudgetSCM`: steps drive C, B → S, G saturating, heavy-tailed N) the
criticism flags the paper's graph in >= 18 of 20; on truths inside it
(:class:`causal.SyntheticSCM`, balanced arms) it passes in >= 17 of 20. Every sweep is
6 batch sizes × 10 seeds; all 40 tables share one compiled NUTS program (fit_many).
The candidate search's 20-table rates (true path >= 16, ATE coverage >= 16) run in
experiments/criticism_synthetic.py (one NUTS program per candidate); here a search over
two candidates on two tables.
"""

import warnings

import jax
import numpy as np
import pytest

from hgcnet_jax import causal

pytestmark = pytest.mark.slow

A, B = 16, 512
SEEDS = 10
NUM = 20
NUTS = dict(num_warmup=300, num_samples=300, num_chains=2)


@pytest.fixture(scope="module")
def tables():
    outside = [causal.BudgetSCM().sample(SEEDS, key=jax.random.key(1000 + i)) for i in range(NUM)]
    inside = [causal.SyntheticSCM().sample(6 * SEEDS, key=jax.random.key(2000 + i), balanced=True) for i in range(NUM)]
    return outside, inside


@pytest.fixture(scope="module")
def paper_fits(tables):
    outside, inside = tables
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", causal.ConvergenceWarning)
        fits = causal.fit_many(causal.Hypergraph.paper(direct=True), outside + inside, key=jax.random.key(0), **NUTS)
    return fits[:NUM], fits[NUM:]


def test_criticism_flags_the_paper_graph_outside_it_and_passes_it_inside(tables, paper_fits):
    (outside, inside), (f_out, f_in) = tables, paper_fits
    out = [causal.criticize(f, t, key=jax.random.key(10 + i)) for i, (f, t) in enumerate(zip(f_out, outside))]
    ins = [causal.criticize(f, t, key=jax.random.key(50 + i)) for i, (f, t) in enumerate(zip(f_in, inside))]
    flagged, passed = sum(not c.ok for c in out), sum(c.ok for c in ins)
    print(f"paper's graph flagged outside: {flagged}/{NUM}; passed inside: {passed}/{NUM}")
    for c in ins:
        if not c.ok:
            print("  inside failure:", c.reasons)
    assert flagged >= 18, flagged
    assert passed >= 17, passed
    # what flags it: the two independences the budget paths break
    rejected = [set(c.independences.loc[c.independences["rejected"], "statement"]) for c in out]
    assert sum("S ⊥ B | N" in r for r in rejected) >= 18
    assert sum(c.falsification.rejected for c in out) >= 15


def test_holdout_refuter_fails_a_planted_wrong_graph(tables):
    # The truth's effect of B on G is all direct (a_cg = 0); the paper's graph without the
    # direct edge routes it through C, which does not carry it: its E[G | do(B)] is flat.
    wrong = [causal.SyntheticSCM(direct=1.5, a_cg=0.0).sample(6 * SEEDS, key=jax.random.key(300 + i), balanced=True)
             for i in range(3)]
    right = [causal.SyntheticSCM(direct=0.0).sample(6 * SEEDS, key=jax.random.key(400 + i), balanced=True)
             for i in range(3)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", causal.ConvergenceWarning)
        res = causal.holdout_check(causal.Hypergraph.paper(), wrong + right, key=jax.random.key(0), **NUTS)
    print("held-out check passed:", [r.passed for r in res])
    assert not any(r.passed for r in res[:3])
    assert all(r.passed for r in res[3:])
    t = res[0].table
    assert list(t["batch_size"]) == [16, 32, 64, 128, 256, 512] and t["n_heldout"].eq(3).all()
    assert len(res[0].heldout_seeds) == 3


def test_search_picks_a_budget_path_and_covers_the_ate(tables, paper_fits):
    outside, _ = tables
    truth = causal.BudgetSCM().effects(A, B, key=jax.random.key(999)).ate
    paper = causal.Hypergraph.paper(direct=True)
    steps = causal.candidate_graphs(paper.replace(variables=tuple(
        v.__class__(v.name, v.role, v.column, "logit") if v.name == "G" else v for v in paper.variables
    )), steps="steps")["steps-mediator,B->S"]
    cands = {"paper": paper, "steps-mediator,B->S": steps}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", causal.ConvergenceWarning)
        found = causal.search_graphs(cands, outside[:2], key=jax.random.key(1), fits={"paper": paper_fits[0][:2]}, **NUTS)
    for s in found:
        print(s.table[["candidate", "elpd", "ok", "ate_mean", "ate_lower", "ate_upper", "chosen"]])
        assert s.chosen == "steps-mediator,B->S", s.table
        assert s.graph.has_path("B", "steps") and "steps" in s.graph.parents("C")
        row = s.table.set_index("candidate").loc[s.chosen]
        assert row.ate_lower <= truth <= row.ate_upper, (row.ate_lower, truth, row.ate_upper)
        assert not s.criticisms["paper"].ok
    assert np.all([s.table["elpd"].iloc[0] >= s.table["elpd"].iloc[1] for s in found])
