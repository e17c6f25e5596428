"""bs_epoch_time.py: the per-step time from two step budgets, the epoch ratio and its verdict; --quick end to end."""

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "experiments"))


def test_per_epoch_recovers_a_planted_step_time_and_cancels_fixed_costs():
    import bs_epoch_time as bet

    s = bet.Setting("x", "csbm", "gcn", steps=(10, 50), replicas=(1, 4))
    step = {16: 2e-3, 512: 3e-3}                       # seconds per step of one run
    rows = []
    for b, t in step.items():
        for r in (1, 4):
            for k in s.steps:
                for rep in range(3):
                    fixed = 0.5 + 0.1 * rep            # differs per repeat; cancels within a repeat
                    rows.append({"batch_size": b, "replicas": r, "steps": k, "repeat": rep,
                                 "wall_s": fixed + k * r * t, "compile_s": 7.0 if rep == 0 else 0.0})
    res = {"rows": rows, "n_train": 1024}
    tab = bet.per_epoch(res, s)
    one = tab[tab.replicas == 1].set_index("batch_size")
    assert one.loc[16].steps_per_epoch == 64 and one.loc[512].steps_per_epoch == 2
    assert one.loc[16].epoch_s == pytest.approx(64 * 2e-3) and one.loc[512].epoch_s == pytest.approx(2 * 3e-3)
    assert tab[tab.replicas == 4].set_index("batch_size").loc[16].step_ms == pytest.approx(2.0)   # per run
    assert one.loc[16].compile_s == 7.0                # the compiling repeat's time is reported, not timed
    q, lo, hi = bet.ratio(tab, 16, 512, 1)
    assert q == pytest.approx(64 * 2 / (2 * 3)) and lo == pytest.approx(q) and hi == pytest.approx(q)
    assert bet.verdict(lo, hi) == "does not reproduce"
    assert bet.verdict(1.8, 2.4) == "reproduces" and bet.verdict(1.0, 2.5) == "inconclusive"
    assert bet.verdict(-0.1, 2.0).startswith("unmeasured")


@pytest.mark.slow
def test_bs_epoch_time_quick_runs_and_resumes(tmp_path, capsys):
    import bs_epoch_time as bet

    docs = (REPO / "docs" / "results.md").read_bytes()
    assert bet.main(["--quick", "--out", str(tmp_path)]) == 0
    md = capsys.readouterr().out
    st = json.loads((tmp_path / "state.json").read_text())
    plan = bet.QUICK
    for s in plan.settings:
        rows = st["settings"][s.name]["rows"]              # every (B, R, k, repeat) measured
        assert len(rows) == len(plan.batch_sizes) * len(s.replicas) * len(s.steps) * (plan.repeats + 1)
        assert all(r["wall_s"] > 0 for r in rows)
    assert "reproduction 7" in md and "| gcn_csbm | 1 |" in md
    assert (REPO / "docs" / "results.md").read_bytes() == docs
    assert bet.main(["--quick", "--out", str(tmp_path)]) == 0         # resumes: nothing measured again
    assert json.loads((tmp_path / "state.json").read_text()) == st
