"""Model criticism, candidate graphs, NIE sensitivity (fast: the shared fits of conftest, no new NUTS program).

The 20-table rates (a wrong graph flagged, a true one passed) are in test_criticize_slow.py.
"""

import dataclasses

import jax
import numpy as np
import pandas as pd
import pytest

import hgcnet_jax
from hgcnet_jax import causal
from hgcnet_jax.causal.criticize import holm, local_markov

A, B = 16, 512


# ------------------------------------------------------------------ pure parts
def test_holm_matches_the_step_down_definition():
    p = np.array([0.01, 0.04, 0.03, np.nan, 0.005])
    # sorted: 0.005*4, 0.01*3, 0.03*2, 0.04*1 -> 0.02, 0.03, 0.06, 0.06 (monotone)
    np.testing.assert_allclose(holm(p), [0.03, 0.06, 0.06, np.nan, 0.02])
    assert np.all(holm([0.9, 0.8]) == 1.0)


def test_local_markov_basis_of_the_paper_graphs():
    direct = {(x, y, g) for x, y, g in local_markov(causal.Hypergraph.paper(direct=True))}
    assert direct == {("S", "B", ("N",)), ("C", "B", ("N", "S")), ("G", "N", ("C", "B")), ("G", "S", ("C", "B"))}
    plain = {(x, y) for x, y, _ in local_markov(causal.Hypergraph.paper())}
    assert ("G", "B") in plain and ("C", "B") in plain  # no direct edge: G ⊥ B | C


def test_paper_transforms_and_forms():
    g = causal.Hypergraph.paper(transforms={"G": "logit", "C": "log"})
    assert g.variable("G").transform == "logit" and g.variable("C").transform == "log"
    assert g.variable("N").transform == "identity"
    with pytest.raises(causal.HypergraphError, match="transforms keys"):
        causal.Hypergraph.paper(transforms={"B": "log"})
    f = g.with_forms({"B->N": "rbf"}, "mlp")
    assert {e.label: e.form for e in f.edges} == {"B->N": "rbf", "N->S": "linear", "C->G": "linear"}
    assert f.hyperedges[0].form == "mlp"
    assert all(e.form == "rbf" for e in g.with_forms("rbf").edges)
    with pytest.raises(causal.HypergraphError, match="unknown edge"):
        g.with_forms({"B->G": "rbf"})


def test_a_steps_mediator_routes_the_budget():
    scm = causal.BudgetSCM()
    table = scm.sample(3, key=jax.random.key(0))
    cands = causal.candidate_graphs(causal.Hypergraph.paper(direct=True), steps="steps", table=table)
    assert set(cands) == {"paper", "pairwise", "B->S", "B->C", "B->S,B->C", "steps-mediator",
                          "steps-mediator,B->S", "steps-covariate,B->S"}
    m = cands["steps-mediator"]
    assert m.parents("steps") == ("B",) and "steps" in m.parents("C") and m.has_path("B", "C")
    assert "B" not in m.parents("C")
    assert cands["steps-covariate,B->S"].variable("steps").role == "covariate"
    assert not cands["paper"].has_path("B", "S") or "B" not in cands["paper"].parents("S")
    # equal epochs without early stopping: steps is a function of B, the steps variants are left out
    fixed = table.assign(steps=(scm.epochs * np.ceil(scm.n_train / table["B"])).astype(int))
    with pytest.warns(UserWarning, match="function of B"):
        cands = causal.candidate_graphs(causal.Hypergraph.paper(), steps="steps", table=fixed)
    assert "steps-mediator" not in cands and "B->C" in cands


def test_budget_scm_is_outside_the_paper_graph():
    scm = causal.BudgetSCM()
    t = scm.sample(10, key=jax.random.key(1))
    assert len(t) == 60 and t.groupby("B").size().eq(10).all()
    assert ((t["G"] > 0) & (t["G"] < 1)).all()
    steps = t.groupby("B")["steps"].mean()
    assert steps.loc[16] > 20 * steps.loc[512]
    e = scm.effects(A, B, key=jax.random.key(2), num=100_000)
    assert e.ate > 0.05 and 0 < e.mean_b < e.mean_a < 1
    assert scm.graph().has_path("B", "C") and "steps" in scm.graph().parents("C")


# ------------------------------------------------------------------ criticize
@pytest.fixture(scope="module")
def criticism(direct_fit):
    return causal.criticize(direct_fit, direct_fit.data, key=jax.random.key(0))


def test_criticism_of_the_true_graph_passes(criticism, direct_fit):
    c = criticism
    assert c.ok, c.summary()
    assert list(c.arms.columns) == ["batch_size", "n_runs", "arm_mean", "arm_lo", "arm_hi", "model_mean",
                                    "model_lo", "model_hi", "p_value", "p_adjusted", "miss"]
    assert list(c.arms["batch_size"]) == [16, 32, 64, 128, 256, 512]
    assert c.arms["n_runs"].sum() == direct_fit.num_rows
    assert (c.arms["arm_lo"] <= c.arms["arm_mean"]).all() and (c.arms["arm_mean"] <= c.arms["arm_hi"]).all()
    assert len(c.independences) == 4 and c.independences["p_adjusted"].ge(c.independences["p_value"]).all()
    f = c.falsification
    assert f.num_permutations == 120 and f.violations == 0 and f.informative and not f.rejected
    assert set(c.predictive["variable"]) == {"N", "S", "C", "G"} and set(c.predictive["stat"]) == {"mean", "sd"}
    assert c.predictive["p_value"].between(0, 1).all()
    assert c.lobo is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.ok = False


def test_criticism_flags_a_planted_missing_edge(direct_fit):
    # The same runs with G made to depend on S directly: G ⊥ S | C, B is now false.
    table = direct_fit.data.copy()
    table["G"] = table["G"] + 3.0 * table["S"]
    fit = causal.fit(direct_fit.graph, table, key=jax.random.key(1), method="svi", svi_steps=1500, num_samples=400)
    c = causal.criticize(fit, table, key=jax.random.key(2))
    assert not c.ok
    rejected = set(c.independences.loc[c.independences["rejected"], "statement"])
    assert "G ⊥ S | C, B" in rejected, c.independences


def test_criticize_errors_at_the_boundary(direct_fit, synthetic_tables):
    table = direct_fit.data
    with pytest.raises(ValueError, match="no column 'B' for the treatment"):
        causal.criticize(direct_fit, table.drop(columns="B"), key=jax.random.key(0))
    with pytest.raises(ValueError, match="single arm"):
        causal.criticize(direct_fit, table.assign(B=64), key=jax.random.key(0))
    other = synthetic_tables[1][0]
    with pytest.raises(ValueError, match="another table"):
        causal.criticize(direct_fit, other, key=jax.random.key(0))
    with pytest.raises(ValueError, match="rows"):
        causal.criticize(direct_fit, table.iloc[:50], key=jax.random.key(0))
    with pytest.raises(TypeError, match="DataFrame"):
        causal.criticize(direct_fit, table.to_dict(), key=jax.random.key(0))
    with pytest.raises(TypeError, match="Fit"):
        causal.criticize("fit", table, key=jax.random.key(0))
    with pytest.raises(ValueError, match="alpha"):
        causal.criticize(direct_fit, table, key=jax.random.key(0), alpha=1.5)


def test_top_level_exports():
    assert hgcnet_jax.criticize is causal.criticize and hgcnet_jax.Criticism is causal.Criticism
    assert {"criticize", "Criticism"} <= set(hgcnet_jax.__all__)


# ------------------------------------------------------------------ search on existing fits
def test_search_prefers_the_hypergraph_when_the_truth_has_the_interaction(direct_fit, pairwise_fits, synthetic_tables):
    table = synthetic_tables[0][0]
    cands = {"hypergraph": direct_fit.graph, "pairwise": pairwise_fits[0].graph}
    s = causal.search_graphs(cands, table, key=jax.random.key(0),
                             fits={"hypergraph": direct_fit, "pairwise": pairwise_fits[0]})
    assert s.chosen == "hypergraph", s.table
    assert s.fit is direct_fit and s.graph == direct_fit.graph
    assert s.table["elpd"].is_monotonic_decreasing and s.table["d_elpd"].iloc[0] == 0.0
    truth = causal.SyntheticSCM().effects(A, B, key=jax.random.key(999), num=100_000).ate
    row = s.table.set_index("candidate").loc["hypergraph"]
    assert row.ate_lower <= truth <= row.ate_upper
    with pytest.raises(ValueError, match="unknown candidate"):
        causal.search_graphs(cands, table, key=jax.random.key(0), fits={"other": direct_fit})
    with pytest.raises(ValueError, match="one fit of candidate"):
        causal.search_graphs(cands, table, key=jax.random.key(0), fits={"hypergraph": pairwise_fits[0], "pairwise": direct_fit})


# ------------------------------------------------------------------ sensitivity
def test_nie_sensitivity_recovers_the_product_of_coefficients(direct_fit):
    s = causal.nie_sensitivity(direct_fit, A, B, key=jax.random.key(0))
    assert s.mediator == "C" and s.units == "raw"
    nie = causal.mediation(direct_fit, "B", A, B, "G").nie
    assert abs(s.nie - nie.mean) < 0.35 * abs(nie.mean), (s.nie, nie.mean)  # linear collapse of a non-linear chain
    assert s.lower > 0 or s.upper < 0  # the planted indirect effect is established at ρ = 0
    assert 0 < abs(s.rho_interval) < abs(s.rho_zero) < 1 and np.sign(s.rho_interval) == np.sign(s.rho_zero)
    t = s.table
    at = t.iloc[np.argmin(np.abs(t["rho"] - s.rho_zero))]
    assert abs(at.nie) < 0.05 * abs(s.nie)
    d = np.diff(t["nie"])
    assert np.all(d <= 1e-12) or np.all(d >= -1e-12)  # monotone in ρ (its direction is the sign of β₂)


def test_nie_sensitivity_without_an_indirect_effect(synthetic_tables):
    # G does not depend on C at all: the NIE interval covers 0 already at ρ = 0.
    scm = causal.SyntheticSCM(a_cg=0.0)
    table = scm.sample(200, key=jax.random.key(7))
    s = causal.nie_sensitivity(causal.Hypergraph.paper(direct=True), A, B, key=jax.random.key(0), table=table)
    assert s.lower <= 0 <= s.upper and s.rho_interval == 0.0
    with pytest.raises(ValueError, match="table="):
        causal.nie_sensitivity(causal.Hypergraph.paper(direct=True), A, B, key=jax.random.key(0))
    g = causal.Hypergraph.paper(direct=True).with_edge("S", "G")
    with pytest.raises(ValueError, match="gate mediator"):
        causal.nie_sensitivity(g, A, B, key=jax.random.key(0), table=table)
    assert causal.nie_sensitivity(g, A, B, key=jax.random.key(0), table=table, mediator="C").mediator == "C"
