"""prune_granger_fair.py --quick: every phase, resume, refusal of another plan; nothing written to docs/."""

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "experiments"))


@pytest.mark.slow
def test_prune_granger_fair_quick_runs_every_phase_and_resumes(tmp_path, capsys):
    import prune_granger_fair as pgf

    docs = (REPO / "docs" / "results.md").read_bytes()
    assert pgf.main(["--quick", "--out", str(tmp_path)]) == 0
    md = capsys.readouterr().out
    plan = pgf.QUICK
    st = json.loads((tmp_path / "state.json").read_text())
    phases = ([f"pretrain:{e}" for e in range(plan.pretrain_epochs)] + ["dense", "oracle"]
              + [f"{m}:{i}" for i in range(len(plan.levels)) for m in plan.methods])
    assert sorted(st["done"]) == sorted(phases)
    rows = pd.DataFrame(st["rows"])
    assert len(rows) == len(plan.seeds) * (1 + len(plan.levels) * len(plan.methods))
    P = int(np.load(tmp_path / "mask_magnitude_global_0.npz")["n"])
    for m in plan.methods:
        spec = pgf.METHODS[m]
        r = rows[rows.method == m]
        assert sorted(r.level.unique()) == list(range(len(plan.levels)))
        if spec["kind"] in ("magnitude", "random") or spec.get("mode") == "rank":
            for i, target in enumerate(plan.levels):      # budgeted: the target sparsity exactly
                np.testing.assert_allclose(r[r.level == i].sparsity, target, atol=1.0 / P)
        st_obj = pgf.State(tmp_path, plan, overwrite=False)
        a, b = st_obj.load_mask(m, 0), st_obj.load_mask(m, 1)
        assert a.shape == (len(plan.seeds), P) and np.all(b <= a)     # never revives a pruned weight
    assert np.all(rows.val_acc.between(0, 1)) and np.all(rows.test_acc.between(0, 1))
    assert np.all(np.isfinite(rows.lambda_max)) and np.all(rows.lanczos_residual >= 0)
    # Lasso certificates on the Granger rows, none on the baselines
    g = rows[rows.method.str.startswith("granger")]
    assert np.all(np.isfinite(g.lasso_max_gap)) and rows[rows.method == "magnitude_global"].lasso_max_gap.isna().all()
    # the oracle was measured for every score on every layer
    orc = st["oracle"]["weights"]
    assert "magnitude_global" in orc and "granger_exact" in orc and "ref: mean g² (gradient energy)" in orc
    assert all("granger_structured" in u for u in st["oracle"]["units"].values())
    assert all(len(v) == len(plan.seeds) for per in orc.values() for v in per.values())
    # the report is built from the state, verdict included; docs/ untouched
    assert "Verdict against the authors' claim" in md and "| magnitude, global |" in md
    assert f"recorded: {pgf.regression_rows(plan)} rows of the regression" in md     # checked against the fits
    assert (REPO / "docs" / "results.md").read_bytes() == docs
    # a rerun resumes: nothing is recomputed
    assert pgf.main(["--quick", "--out", str(tmp_path)]) == 0
    assert len(json.loads((tmp_path / "state.json").read_text())["rows"]) == len(rows)
    # a folder of another plan is refused with what to do
    other = json.loads((tmp_path / "state.json").read_text())
    other["config"]["seeds"] = [7]
    (tmp_path / "state.json").write_text(json.dumps(other))
    with pytest.raises(SystemExit, match="another plan; pass --overwrite"):
        pgf.main(["--quick", "--out", str(tmp_path)])
