"""Issue #14 in the study, the parts that need no study run: config fields, graphs, the fitted rows, the
first screen (the end-to-end checks on the tiny study are in test_study.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hgcnet_jax import study
from hgcnet_jax.config import ConfigError, StudyConfig, preset
from hgcnet_jax.report import html



def test_reusable_phases_follow_the_sections_that_changed():
    keep = study.folder.reusable_phases
    assert keep(["causal.alpha", "current_batch_size"]) == ("sweep", "mediators")
    assert keep(["mediators.noise", "causal.alpha"]) == ("sweep",)
    assert keep(["train.epochs"]) == () and keep(["causal.alpha", "data.name"]) == ()
    assert keep(["<unreadable previous config>"]) == ()


@pytest.mark.parametrize(
    "updates, field",
    [
        ({"causal.candidates": ["hypergraph"]}, "causal.candidates"),
        ({"causal.candidates": ["hypergraph", "pairwise", "B->X"]}, "causal.candidates[2]"),
        ({"causal.outcome_transform": "probit"}, "causal.outcome_transform"),
        ({"causal.edge_form": "spline"}, "causal.edge_form"),
        ({"causal.noise": "laplace"}, "causal.noise"),
        ({"causal.noise_scale": "arm"}, "causal.noise_scale"),
        ({"causal.alpha": 0.7}, "causal.alpha"),
        ({"train.budget": "steps"}, "train.steps"),
        ({"train.steps": 100}, "train.steps"),
        ({"train.budget": "forever"}, "train.budget"),
        ({"train.patience": 0}, "train.patience"),
    ],
)
def test_bad_model_family_and_budget_settings_name_their_field(updates, field):
    with pytest.raises(ConfigError) as info:
        StudyConfig().override(updates)
    assert info.value.field == field


def test_the_forms_and_the_outcome_transform_reach_the_graphs():
    config = StudyConfig().override({"causal.edge_form": "rbf", "causal.treatment_form": "linear",
                                     "causal.hyperedge_form": "mlp", "causal.outcome_transform": "logit"})
    g = study.plan.base_graph(config)
    forms = {e.label: e.form for e in g.edges}
    assert forms["B->N"] == "linear" and forms["C->G"] == "rbf"
    assert {h.form for h in g.hyperedges} == {"mlp"}
    assert g.variable("G").transform == "logit"
    plain = study.plan.base_graph(StudyConfig().override({"causal.outcome_transform": "identity"}))
    assert plain.variable("G").transform == "identity"
    assert {e.label: e.form for e in plain.edges}["B->N"] == "rbf"  # the default treatment form
    assert (plain.noise, plain.noise_scale) == ("gaussian", "parents")   # heteroscedastic by default
    other = study.plan.base_graph(StudyConfig().override({"causal.noise": "student", "causal.noise_scale": "constant"}))
    assert (other.noise, other.noise_scale) == ("student", "constant")
    assert all(g.noise_scale == "parents" for g in study.plan.graphs(StudyConfig()).values())
    # the embedded demo has 4 seeds per arm: too few for a per-arm spread
    assert StudyConfig().override(preset("quick")).causal.noise_scale == "constant"
    assert StudyConfig().override(preset("paper", "cora")).causal.noise_scale == "parents"


def test_accuracies_of_0_or_1_are_moved_by_half_a_count_and_bad_values_name_their_runs():
    runs = pd.DataFrame({"run_id": range(4), "batch_size": [8, 8, 16, 16], "seed": [0, 1, 0, 1],
                         "test_acc": [1.0, 0.9, 0.8, 0.0], "n_test": 10, "diverged": False,
                         "noise_b_simple": [1.0, 2.0, 3.0, 4.0], "sharp_lambda_max": 1.0,
                         "complexity_dist_init": 1.0})
    config = StudyConfig()
    table, notes = study.fit_table(runs, config)
    np.testing.assert_allclose(table["test_acc_adjusted"], (np.array([10, 9, 8, 0]) + 0.5) / 11)
    assert any("exactly 0 or 1" in n for n in notes)
    assert study.plan.base_graph(config, table).variable("G").column == "test_acc_adjusted"
    bad = runs.assign(noise_b_simple=[1.0, -2.0, 3.0, 0.0])
    with pytest.raises(ConfigError, match=r"run\(s\) 1 \(B=8\), 3 \(B=16\)") as info:
        study.fit_table(bad, config)
    assert info.value.field == "mediators.transform"
    with pytest.raises(ConfigError, match="no 'n_test' column"):
        study.fit_table(runs.drop(columns="n_test"), config)


def test_the_report_opens_with_the_criticism_and_escapes_it(summary):
    page = html.render(summary, {})
    assert page.index('id="criticism"') < page.index('id="recommendation"') < page.index("Interventional outcome")
    assert "&lt;test headline&gt;" in page and "<test headline>" not in page
    assert "&lt;test reason&gt;" in page and "(chosen)" in page and "MISS" not in page.split('id="criticism"')[1][:50]


def test_the_model_family_and_the_budget_are_reachable_from_the_cli():
    from hgcnet_jax import cli

    args = cli.build_parser().parse_args(["study", "--edge-form", "rbf", "--treatment-form", "linear",
                                          "--hyperedge-form", "mlp", "--outcome-transform", "identity",
                                          "--budget", "convergence", "--noise", "student", "--noise-scale", "constant"])
    c = cli.config_from_args(args)
    assert (c.causal.edge_form, c.causal.treatment_form, c.causal.hyperedge_form, c.causal.outcome_transform,
            c.train.budget) == ("rbf", "linear", "mlp", "identity", "convergence")
    assert (c.causal.noise, c.causal.noise_scale) == ("student", "constant")


def test_the_budget_is_a_design_choice_and_a_varying_step_count_adds_the_steps_graphs():
    from hgcnet_jax import train

    conv = StudyConfig().override({"train.budget": "convergence", "train.patience": 3, "train.epochs": 40})
    assert study.plan.make_budget(conv) == train.Budget(epochs=40, patience=3)
    assert study.plan.make_budget(StudyConfig().override({"train.budget": "steps", "train.steps": 500})) == \
        train.Budget(steps=500)
    assert study.plan.make_budget(StudyConfig()) == train.Budget(epochs=20)
    rng = np.random.default_rng(0)
    runs = pd.DataFrame({"batch_size": np.repeat([16, 64, 256], 4), "seed": np.tile(range(4), 3),
                         "test_acc": 0.8, "noise_b_simple": 1.0, "sharp_lambda_max": 1.0, "complexity_dist_init": 1.0})
    notes: list[str] = []
    equal = study.plan.graphs(conv, runs.assign(steps=np.repeat([400, 100, 25], 4)), notes=notes)
    assert "steps-mediator" not in equal and any("function of the batch size" in n for n in notes)
    varying = study.plan.graphs(conv, runs.assign(steps=rng.integers(20, 400, size=12)))
    assert {"steps-mediator", "steps-mediator,B->S", "steps-covariate,B->S"} <= set(varying)
    assert "steps" in varying["steps-mediator"].parents("C")
    assert list(varying)[:2] == ["hypergraph", "pairwise"]


def test_measurement_error_reads_the_standard_error_columns_when_asked():
    table = pd.DataFrame({"batch_size": [8, 16], "noise_b_simple": [1.0, 2.0], "noise_b_simple_se": [0.1, 0.2],
                          "sharp_lambda_max": [1.0, 2.0], "sharp_lambda_max_err": [0.0, 0.0],
                          "complexity_dist_init": [1.0, 2.0], "complexity_dist_init_se": [0.0, 0.0],
                          "test_acc": [0.5, 0.6]})
    g = study.plan.base_graph(StudyConfig(), table)
    assert {v.name: v.error_column for v in g.variables} == {
        "B": None, "N": "noise_b_simple_se", "S": None, "C": "complexity_dist_init_se", "G": None}  # _err: a bound
    off = study.plan.base_graph(StudyConfig().override({"causal.measurement_error": False}), table)
    assert all(v.error_column is None for v in off.variables)
    with pytest.raises(ConfigError) as info:
        StudyConfig().override({"causal.measurement_error": "yes"})
    assert info.value.field == "causal.measurement_error"
