"""bs_regularisation.py --quick: every level and arm, the budgets as planned, C measured; the shrinkage statistic."""

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "experiments"))


def test_shrinkage_recovers_a_planted_shrinking_and_a_planted_growing_effect():
    import bs_regularisation as br

    rng = np.random.default_rng(0)
    g = lambda m: m + 0.005 * rng.standard_normal(10)           # noqa: E731
    shrinks = br.shrinkage(g(0.90), g(0.80), g(0.85), g(0.84), num_resamples=4000)
    assert shrinks["shrink"] == pytest.approx(0.09, abs=0.01) and shrinks["lo"] > 0
    grows = br.shrinkage(g(0.80), g(0.90), g(0.70), g(0.90), num_resamples=4000)    # d0 < 0, and more negative
    assert grows["shrink"] == pytest.approx(-0.10, abs=0.01) and grows["hi"] < 0
    flat = {"lo": -0.01, "hi": 0.02}
    assert br.verdict(False, shrinks, True).startswith("inconclusive: no batch-size effect")
    assert br.verdict(True, shrinks, True).startswith("reproduces")
    assert br.verdict(True, shrinks, False).startswith("does not reproduce as stated")
    assert br.verdict(True, grows, True).startswith("does not reproduce: the batch-size effect grows")
    assert br.verdict(True, flat, True).startswith("inconclusive: no shrinkage")
    assert br.verdict(True, shrinks, True, base_underfit=True).startswith("inconclusive: without regularisation an arm")


@pytest.mark.slow
def test_bs_regularisation_quick_runs_every_level_and_resumes(tmp_path, capsys):
    import bs_regularisation as br

    docs = (REPO / "docs" / "results.md").read_bytes()
    assert br.main(["--quick", "--out", str(tmp_path)]) == 0
    md = capsys.readouterr().out
    plan = br.QUICK
    st = json.loads((tmp_path / "state.json").read_text())
    assert sorted(st["budgets"]) == sorted(br.BUDGETS)
    for budget in br.BUDGETS:
        t = pd.read_csv(tmp_path / f"{budget}.csv")
        assert len(t) == len(plan.levels()) * len(plan.batch_sizes) * plan.seeds        # no run dropped
        assert sorted(zip(t.regulariser, t.strength)) == sorted(
            (f, s) for f, s in plan.levels() for _ in plan.batch_sizes for _ in range(plan.seeds))
        steps = t.groupby("batch_size").steps.first()
        if budget == "steps":
            assert steps.nunique() == 1
        else:
            assert steps.loc[min(plan.batch_sizes)] > steps.loc[max(plan.batch_sizes)]
        # the strongest L2 shrinks every seed's parameter norm against the same seed unregularised
        none = t[t.regulariser == "none"].set_index(["batch_size", "seed"]).complexity_l2
        strong = t[(t.regulariser == "l2") & np.isclose(t.strength, max(plan.l2))].set_index(["batch_size", "seed"])
        assert np.all(strong.complexity_l2 < none.loc[strong.index])
    assert "| none |" in md and "Verdict (epochs budget)" in md and "Verdict (steps budget)" in md
    assert (REPO / "docs" / "results.md").read_bytes() == docs
    assert br.main(["--quick", "--out", str(tmp_path)]) == 0                           # resumes: nothing rerun
    assert json.loads((tmp_path / "state.json").read_text())["budgets"] == st["budgets"]
