"""bs_budget.py --quick: every cell, no run dropped, the budgets and lr scalings as planned; nothing written to docs/."""

import json
import sys
from pathlib import Path

import numpy as np
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


def test_an_arm_that_does_not_fit_its_training_data_is_flagged_and_left_out_of_the_verdict(tmp_path):
    import bs_budget as bb

    plan = bb.QUICK
    lo, hi = min(plan.batch_sizes), max(plan.batch_sizes)
    rng = np.random.default_rng(0)
    rows = []
    for b, train, test in ((lo, 0.95, 0.85), (hi, 0.50, 0.45)):      # B = hi never fit its training set
        for seed in range(8):                                        # enough seeds for p < 0.05
            rows.append({"batch_size": b, "seed": seed, "lr_effective": 0.1, "steps": 10, "train_acc": train,
                         "test_acc": test + 0.01 * rng.standard_normal(), "diverged": False})
    pd.DataFrame(rows).to_csv(tmp_path / "epochs-fixed.csv", index=False)
    fit = [dict(r, train_acc=0.95) for r in rows]                   # the same test accuracies, both arms fit
    pd.DataFrame(fit).to_csv(tmp_path / "steps-fixed.csv", index=False)
    (tmp_path / "state.json").write_text(json.dumps({"config": plan.to_dict(), "cells": {
        "epochs-fixed": {"seconds": 1.0, "runs": len(rows)}, "steps-fixed": {"seconds": 1.0, "runs": len(rows)}}}))
    a = bb.analyse(plan, tmp_path)
    assert a[("epochs", "fixed")]["underfit"] == [hi] and a[("steps", "fixed")]["underfit"] == []
    assert a[("epochs", "fixed")]["verdict"] == a[("steps", "fixed")]["verdict"] == f"B = {lo} better"
    md = bb.write_report(plan, tmp_path, quick=True)
    assert f"B = {hi} under-fits (train 50.0 %)" in md
    assert "small batch better (p < 0.05, interval above 0) in: steps/fixed;" in md
    assert "an arm of the contrast under-fits" in md and "optimisation, not generalisation): epochs/fixed." in md
