"""bs_budget.py --quick: every cell, no run dropped, the budgets and lr scalings as planned; nothing written to docs/."""

import json
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "experiments"))


@pytest.mark.slow
def test_bs_budget_quick_runs_every_cell(tmp_path, capsys):
    import bs_budget as bb

    docs = (REPO / "docs" / "results.md").read_bytes()
    assert bb.main(["--quick", "--out", str(tmp_path)]) == 0
    md = capsys.readouterr().out
    st = json.loads((tmp_path / "state.json").read_text())
    assert sorted(st["cells"]) == sorted(f"{b}-{s}" for b in bb.BUDGETS for s in bb.SCALINGS)
    plan = bb.QUICK
    for b in bb.BUDGETS:
        for s in bb.SCALINGS:
            t = pd.read_csv(tmp_path / f"{b}-{s}.csv")
            assert len(t) == len(plan.batch_sizes) * plan.seeds            # no run dropped
            steps = t.groupby("batch_size").steps.first()
            if b == "steps":                                               # equal steps: every B the same
                assert steps.nunique() == 1
            if b == "epochs":                                              # equal epochs: steps ∝ 1/B
                assert steps.loc[min(plan.batch_sizes)] > steps.loc[max(plan.batch_sizes)]
            lr = t.groupby("batch_size").lr_effective.first()
            ratio = max(plan.batch_sizes) / min(plan.batch_sizes)
            expect = {"fixed": 1.0, "linear": ratio, "sqrt": ratio ** 0.5}[s]
            assert lr.loc[max(plan.batch_sizes)] / lr.loc[min(plan.batch_sizes)] == pytest.approx(expect)
    assert "| epochs | fixed |" in md and "Verdict" in md
    # reproduction 5's section: one row per budget, a verdict from the three scalings' cells
    assert "reproduction 5" in md and all(f"| {b} | " in md for b in bb.BUDGETS)
    lo = f"B = {min(plan.batch_sizes)} better"
    assert bb.lr_verdict({"fixed": lo, "linear": lo, "sqrt": lo}, min(plan.batch_sizes)).startswith("reproduces")
    assert bb.lr_verdict({"fixed": lo, "linear": "no difference detected", "sqrt": lo},
                         min(plan.batch_sizes)) == f"does not reproduce: {lo} only under fixed, sqrt"
    assert bb.lr_verdict({"fixed": lo}, min(plan.batch_sizes)).startswith("inconclusive")
    assert (REPO / "docs" / "results.md").read_bytes() == docs
    # resuming runs nothing again
    assert bb.main(["--quick", "--out", str(tmp_path)]) == 0
    assert json.loads((tmp_path / "state.json").read_text())["cells"] == st["cells"]
