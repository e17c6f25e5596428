"""bs_ate.py: the batch sizes that fit, the verdicts, the pooled figures; --quick end to end (resume, report-only, docs/ untouched)."""

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "experiments"))


def test_public_split_keeps_the_paper_batch_sizes_that_fit():
    import bs_ate

    grid = bs_ate.PAPER_BATCH_SIZES
    assert bs_ate.fitting_batch_sizes(grid, 140) == (16, 32, 64, 128)      # Cora's public split
    assert bs_ate.fitting_batch_sizes(grid, 120) == (16, 32, 64)           # CiteSeer's
    assert bs_ate.fitting_batch_sizes(grid, 1626) == grid                  # a full split
    assert bs_ate.fitting_batch_sizes(grid, 20) == (16,)                   # too few: the setting is skipped


def test_a_split_too_small_for_the_largest_batch_contrasts_the_largest_that_fits():
    import bs_ate

    cfg, n_train, note = bs_ate.setting_config(bs_ate.QUICK, ("csbm", "gcn", "public"))
    assert n_train == 24 and list(cfg.train.batch_sizes) == [8, 16]
    assert note.startswith("B = 32 exceeds the 24 training nodes: the contrast is B = 8 against B = 16")
    plan = bs_ate.dataclasses.replace(bs_ate.QUICK, batch_sizes=(16, 32))
    cfg, _, reason = bs_ate.setting_config(plan, ("csbm", "gcn", "public"))      # one size fits: skipped
    assert cfg is None and "a contrast needs two" in reason


@pytest.mark.parametrize("lo, hi, start", [
    (0.01, 0.03, "reproduces"),
    (0.05, 0.09, "does not reproduce: the advantage of small batches is larger"),
    (0.001, 0.01, "does not reproduce: the advantage of small batches is smaller"),
    (-0.03, -0.01, "does not reproduce: the sign is reversed"),
    (-0.01, 0.03, "inconclusive"),
    (-0.01, 0.01, "does not reproduce: no effect detected"),
])
def test_verdict_reads_the_interval_against_the_claim(lo, hi, start):
    import bs_ate

    assert bs_ate.verdict(lo, hi, 0.024).startswith(start)


def test_pooled_design_is_the_mean_of_the_settings_differences():
    import bs_ate

    rng = np.random.default_rng(0)
    arms = [(rng.normal(0.9, 0.01, 10), rng.normal(0.7, 0.02, 10)), (rng.normal(0.8, 0.01, 7), rng.normal(0.8, 0.01, 9))]
    r = bs_ate.pooled_design(arms, num=4000)
    assert r["mean"] == pytest.approx(np.mean([a.mean() - b.mean() for a, b in arms]), abs=1e-12)
    assert r["lo"] < r["mean"] < r["hi"] and r["p"] < 0.01                 # a clear pooled difference
    null = bs_ate.pooled_design([(a, a.copy()) for a, _ in arms], num=4000)
    assert null["mean"] == 0.0 and null["p"] == 1.0                          # no difference: every permutation as extreme
    draws = [rng.normal(0.1, 0.01, 2000), rng.normal(0.3, 0.01, 1500)]
    m = bs_ate.pooled_draws(draws, mass=0.95)
    assert m["mean"] == pytest.approx(0.2, abs=2e-3) and m["lo"] < 0.2 < m["hi"]


@pytest.mark.slow
def test_bs_ate_quick_summarises_every_setting_and_resumes(tmp_path, capsys, monkeypatch):
    import bs_ate

    from hgcnet_jax import study

    docs = (REPO / "docs" / "results.md").read_bytes()
    fig_dir_existed = bs_ate.FIG_DIR.exists()
    plan = bs_ate.QUICK
    names = [bs_ate.setting_name(s) for s in plan.settings]
    assert bs_ate.main(["--quick", "--out", str(tmp_path)]) == 0
    md = capsys.readouterr().out.split("## Batch-size ATE", 1)[1]
    st = json.loads((tmp_path / "state.json").read_text())
    assert sorted(st["settings"]) == sorted(names)
    assert all(v["status"] == "done" for v in st["settings"].values())

    rows = {n: json.loads((tmp_path / f"{n}.json").read_text()) for n in names}
    for n, r in rows.items():
        runs = pd.read_parquet(tmp_path / "studies" / n / "runs.parquet")
        summary = json.loads((tmp_path / "studies" / n / "summary.json").read_text())
        bs = sorted(runs.batch_size.unique().tolist())
        assert r["batch_sizes"] == bs and r["contrast"] == [bs[0], bs[-1]]
        assert len(runs) == len(bs) * plan.seeds and r["runs"] == len(runs)          # no run dropped
        a, b = r["contrast"]
        hand = runs.loc[runs.batch_size == a, "test_acc"].mean() - runs.loc[runs.batch_size == b, "test_acc"].mean()
        assert r["design"]["diff"] == pytest.approx(hand, abs=1e-9)
        assert r["design"]["lo"] <= r["design"]["diff"] <= r["design"]["hi"] and 0 < r["design"]["p"] <= 1
        assert r["arms"][str(a)] == pytest.approx(runs.loc[runs.batch_size == a, "test_acc"].tolist(), abs=1e-6)
        # the model's answer is the study's: the chosen graph, its ATE
        assert r["chosen"] == summary["criticism"]["chosen"]
        assert r["model"]["graph"] == summary["criticism"]["answered_by"]
        assert r["model"]["mean"] == summary["ate"]["mean"] and len(r["model"]["draws"]) == len(summary["ate"]["draws"])
        assert r["twin"]["loo_diff"] == summary["loo"]["diff"]
        # the twins' ATEs from the saved posteriors are the study's candidate-table ATEs (float32 rounding)
        cand = {c["candidate"]: c for c in summary["criticism"]["candidates"]}
        for g in ("hypergraph", "pairwise"):
            assert r["twin"]["ate"][g]["mean"] == pytest.approx(cand[g]["ate_mean"], abs=1e-4)
        chk = r["twin"]["check"]
        assert chk["ok"], chk["checks"]
        assert chk["only_hypergraph"] == ["inter[N*S->C] (prior scale 0.5)"]
        assert chk["only_pairwise_edges"] == ["N->C", "S->C"]
    assert rows["csbm-gcn-full"]["batch_sizes"] == [8, 16, 32] and rows["csbm-gcn-full"]["paper_contrast"]

    # the averaged figures are the means of the per-setting ones
    a = bs_ate.analyse(plan, tmp_path)
    assert a["design_head"]["settings"] == ["csbm-gcn-full"]
    assert a["design_head"]["mean"] == pytest.approx(rows["csbm-gcn-full"]["design"]["diff"], abs=1e-12)
    assert a["design_all"]["mean"] == pytest.approx(np.mean([r["design"]["diff"] for r in rows.values()]), abs=1e-12)
    assert a["twin_head"]["mean"] == pytest.approx(np.mean(rows["csbm-gcn-full"]["twin"]["diff_draws"]), abs=1e-9)
    assert a["verdict"].split(":")[0] in ("reproduces", "does not reproduce", "inconclusive")
    for n in names:
        assert f"| `{n}` (" in md and f"| `{n}` | " in md          # a row in both tables
    assert "Verdict (reproduction 2" in md and "Verdict (reproduction 4" in md and "yes, in every setting" in md
    assert (tmp_path / "bs_ate.png").stat().st_size > 0

    # nothing was written into docs/
    assert (REPO / "docs" / "results.md").read_bytes() == docs
    assert bs_ate.FIG_DIR.exists() == fig_dir_existed

    # resuming computes nothing again: no study is run, the summaries stay as they are
    saved = {p.name: p.read_bytes() for p in tmp_path.glob("*.json")}

    def no_study(*args, **kwargs):
        raise AssertionError("a finished setting was run again")

    monkeypatch.setattr(study, "run", no_study)
    assert bs_ate.main(["--quick", "--out", str(tmp_path)]) == 0
    assert capsys.readouterr().out.split("## Batch-size ATE", 1)[1] == md
    assert {p.name: p.read_bytes() for p in tmp_path.glob("*.json")} == saved

    # the report is rebuilt from the summaries alone, without the study folders
    shutil.rmtree(tmp_path / "studies")
    assert bs_ate.main(["--quick", "--out", str(tmp_path), "--report-only"]) == 0
    assert capsys.readouterr().out.split("## Batch-size ATE", 1)[1] == md

    # another plan in the same folder is refused
    st["config"]["seeds"] = 99
    (tmp_path / "state.json").write_text(json.dumps(st))
    with pytest.raises(SystemExit, match="--overwrite"):
        bs_ate.main(["--quick", "--out", str(tmp_path)])


def test_the_text_plan_resolves_both_tasks_with_every_paper_batch_size(data_dir, monkeypatch):
    """Reproduction 8's settings: the transformer on the reviews and on sci.med, all six batch sizes fitting."""
    import bs_ate

    monkeypatch.setenv("HGCNET_DATA_DIR", str(data_dir))
    expect = {"amazon_reviews": 4000, "newsgroups_med": 594 + 1779}       # shared/data/README.md's counts
    for setting in bs_ate.TEXT.settings:
        cfg, n_train, note = bs_ate.setting_config(bs_ate.TEXT, setting)
        assert n_train == expect[setting[0]] and note == ""
        assert cfg.model.name == "transformer" and tuple(cfg.train.batch_sizes) == bs_ate.PAPER_BATCH_SIZES
    assert bs_ate.TEXT.name == "bs_text" and bs_ate.state_dir(bs_ate.TEXT.name) != bs_ate.STATE_DIR
