"""bs_noise_removed.py --quick: the three arms at equal steps, the full batch is every training node; verdicts."""

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "experiments"))


def test_verdict_against_the_claimed_cost():
    import bs_noise_removed as bn

    assert bn.verdict(-0.03, -0.04, -0.02, 0.001).startswith("reproduces")
    assert bn.verdict(-0.10, -0.12, -0.08, 0.001).endswith("a larger cost")
    assert bn.verdict(-0.01, -0.015, -0.005, 0.001).endswith("a smaller cost")
    assert bn.verdict(0.02, 0.01, 0.03, 0.001).startswith("does not reproduce: removing the noise *raises*")
    assert bn.verdict(-0.03, -0.06, 0.01, 0.2) == "does not reproduce: no cost of removing the noise detected"


@pytest.mark.slow
def test_bs_noise_removed_quick(tmp_path, capsys):
    import bs_noise_removed as bn

    docs = (REPO / "docs" / "results.md").read_bytes()
    assert bn.main(["--quick", "--out", str(tmp_path)]) == 0
    md = capsys.readouterr().out
    plan, st = bn.QUICK, json.loads((tmp_path / "state.json").read_text())
    t = pd.read_csv(tmp_path / "runs.csv")
    n = st["n_train"]
    assert sorted(t.batch_size.unique()) == sorted([plan.small, plan.large, n])
    assert len(t) == 3 * plan.seeds                                        # no run dropped
    assert t.steps.nunique() == 1 and t.steps.iloc[0] == plan.epochs_of_small * (n // plan.small)
    assert t.lr_effective.nunique() == 1                                   # only the batch differs
    a = bn.analyse(plan, tmp_path)
    by = t.groupby("batch_size").test_acc.mean()
    np.testing.assert_allclose(a["removed"].diff, by[n] - by[plan.small], rtol=1e-6)
    assert "reproduction 3" in md and "Verdict" in md and f"full (B = {n})" in md
    assert (REPO / "docs" / "results.md").read_bytes() == docs
    mtime = (tmp_path / "runs.csv").stat().st_mtime_ns
    assert bn.main(["--quick", "--out", str(tmp_path)]) == 0               # resumes: nothing is rerun
    assert (tmp_path / "runs.csv").stat().st_mtime_ns == mtime
