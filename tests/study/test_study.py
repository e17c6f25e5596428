"""``hgcnet study`` end to end on the tiny preset: outputs, resume, refusal, CLI and the real report in Chromium."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest

from hgcnet_jax import causal, cli, study
from hgcnet_jax.config import ConfigError, StudyConfig, preset
from hgcnet_jax.report import FIGURES, html
from hgcnet_jax.study import summary as _summary

pytestmark = pytest.mark.slow

TINY = StudyConfig().override(preset("tiny"))


def _snapshot(out):
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*")
            if p.is_file() and "checkpoints" not in p.parts and p.name != "phases.json"}


def _help_example() -> list[str]:
    """The help's smoke example, ``hgcnet study --preset tiny --out smoke``, as an argv."""
    import shlex

    line = next(e for e in cli._STUDY_EPILOG.splitlines() if "study --preset tiny" in e).split(" # ")[0]
    return shlex.split(line)[1:]


@pytest.fixture(scope="module")
def _tiny_run(tmp_path_factory):
    """The help's smoke example, run once through the CLI with progress bars and the phase log on.

    Returns the finished study, its log lines, its stderr and its stdout.
    """
    cwd = tmp_path_factory.mktemp("study")
    argv = _help_example()
    err, stdout = io.StringIO(), io.StringIO()
    with contextlib.chdir(cwd), contextlib.redirect_stderr(err), contextlib.redirect_stdout(stdout):
        code = cli.main(argv)
    assert code == 0, err.getvalue()[-2000:]
    result = study.load_result(cwd / argv[argv.index("--out") + 1])
    return result, err.getvalue().splitlines(), err.getvalue(), stdout.getvalue()


@pytest.fixture(scope="module")
def tiny_study(_tiny_run):
    return _tiny_run[:2]


def test_progress_bars_cover_every_long_phase(_tiny_run):
    err = _tiny_run[2]
    assert "sweep" in err and "step" in err
    assert "mediators (noise, sharpness, complexity)" in err          # one step per group of runs
    assert "causal (NUTS fits, criticism, queries)" in err
    for step in ("fit hypergraph: NUTS", "fit pairwise: NUTS", "mediation", "PSIS-LOO", "refute: placebo_treatment"):
        assert step in err, step


def test_every_output_is_written(tiny_study):
    import arviz as az

    result, logs = tiny_study
    out = result.out
    for name in ("config.json", "runs.parquet", "posterior_hypergraph.nc", "posterior_pairwise.nc", "summary.json",
                 "report.html"):
        assert (out / name).is_file(), name
    assert not list(out.rglob("*.tmp"))
    runs = pd.read_parquet(out / "runs.parquet")
    assert len(runs) == 3 * 4
    assert sorted(runs["batch_size"].unique()) == [8, 16, 32]
    assert runs.groupby("batch_size")["seed"].apply(sorted).tolist() == [[0, 1, 2, 3]] * 3
    m = TINY.mediators
    for col in (m.noise, m.sharpness, m.complexity, m.outcome, "wall_time_s", "epochs"):
        assert col in runs and runs[col].notna().all(), col
    for graph in ("hypergraph", "pairwise"):
        idata = az.from_netcdf(out / f"posterior_{graph}.nc")
        assert {"posterior", "log_likelihood", "observed_data"} <= set(idata.groups())
        assert idata.posterior.sizes["chain"] == TINY.causal.num_chains
        assert idata.posterior.sizes["draw"] == TINY.causal.num_samples
    idata_h = result.posterior("hypergraph")
    assert "inter[N*S->C]" in idata_h.posterior and "inter[N*S->C]" not in result.posterior("pairwise").posterior
    # config.json is the fingerprinted config
    saved = json.loads((out / "config.json").read_text())
    assert saved["fingerprint"] == TINY.fingerprint()
    assert StudyConfig.from_dict(saved["config"]) == TINY
    assert any("sweep: 12 runs" in line for line in logs)


def test_summary_is_consistent_with_the_runs(tiny_study):
    result, _ = tiny_study
    s = json.loads((result.out / "summary.json").read_text())
    runs = result.runs
    iv = s["interventional"]
    assert iv["batch_sizes"] == [8, 16, 32]
    np.testing.assert_allclose(iv["observed_mean"], runs.groupby("batch_size")["test_acc"].mean().to_numpy())
    for curve in iv["curves"].values():
        assert np.all(np.asarray(curve["lo"]) <= np.asarray(curve["mean"]))
        assert np.all(np.asarray(curve["mean"]) <= np.asarray(curve["hi"]))
    a = s["ate"]
    assert (a["b_small"], a["b_large"]) == (8, 32)
    assert a["lo"] <= a["mean"] <= a["hi"] and len(a["draws"]) == TINY.causal.num_chains * TINY.causal.num_samples
    assert np.isclose(np.mean(a["draws"]), a["mean"], atol=1e-5)
    assert np.isclose(np.mean(np.asarray(a["draws"]) > 0), a["prob_positive"])
    raw = runs.groupby("batch_size")["test_acc"].mean()
    assert np.isclose(a["observed"], raw.loc[8] - raw.loc[32], atol=1e-6)
    assert 0 < a["p_value"] <= 1
    rows = s["effects"]["rows"]
    assert {"total (ATE)", "direct (NDE)", "indirect (NIE)", "through N (path-specific)",
            "through S (path-specific)"} <= set(rows)
    assert np.isclose(rows["total (ATE)"]["mean"], rows["direct (NDE)"]["mean"] + rows["indirect (NIE)"]["mean"],
                      atol=1e-6)
    rec = s["recommendation"]
    assert rec["best_batch_size"] in (8, 16, 32) and rec["current_batch_size"] == 32
    crit = s["criticism"]
    answered = crit["answered_by"]
    assert rec["source"] == ("model" if crit["trusted"] else "arms")
    assert rec["best_mean"] == pytest.approx(max(rec["mean_by_batch_size"].values()))
    if rec["source"] == "model":  # the chosen graph's E[G | do(B)] curve drives it
        assert crit["chosen"] == answered
        assert [rec["mean_by_batch_size"][str(b)] for b in (8, 16, 32)] == pytest.approx(iv["curves"][answered]["mean"])
    else:  # the arm means drive it
        assert crit["chosen"] is None
        assert [rec["mean_by_batch_size"][str(b)] for b in (8, 16, 32)] == pytest.approx(iv["observed_mean"])
    assert a["graph"] == answered and s["effects"]["graph"] == answered
    tpe = (runs["wall_time_s"] / runs["epochs"]).groupby(runs["batch_size"]).median()
    assert rec["time_per_epoch_s"] == pytest.approx({str(b): tpe.loc[b] for b in (8, 16, 32)})
    assert [r["name"] for r in s["refutations"]] == ["placebo treatment"]
    assert set(s["diagnostics"]["models"]) == set(TINY.causal.candidates)
    # a short MCMC: the diagnostics verdict and the warnings agree
    assert s["diagnostics"]["ok"] == (not any("MCMC diagnostics are poor" in w for w in s["warnings"]))


def test_report_shows_every_figure(tiny_study):
    result, _ = tiny_study
    page = result.report.read_text()
    names = set(re.findall(r'<img class="plot" data-name="([^"]+)"', page))
    assert names == set(FIGURES)
    for name in FIGURES:
        assert (result.out / "plots" / f"{name}.png").is_file() and (result.out / "plots" / f"{name}.svg").is_file()


def test_rerun_resumes_every_phase_without_recomputing(tiny_study):
    result, _ = tiny_study
    before = _snapshot(result.out)
    logs: list[str] = []
    again = study.run(TINY, out=result.out, progress=False, log=logs.append)
    assert again.resumed == ("sweep", "causal", "report")
    assert sum("resumed from" in line for line in logs) == 3
    assert _snapshot(result.out) == before
    pd.testing.assert_frame_equal(again.runs, result.runs)
    assert again.summary == json.loads((result.out / "summary.json").read_text())


def test_a_lost_report_is_rebuilt_from_the_summary_alone(tiny_study, tmp_path):
    import shutil

    result, _ = tiny_study
    copy = tmp_path / "copy"
    shutil.copytree(result.out, copy)
    (copy / "report.html").unlink()
    shutil.rmtree(copy / "plots")
    again = study.run(TINY, out=copy, progress=False, log=None)
    assert again.resumed == ("sweep", "causal")
    assert set(re.findall(r'data-name="([^"]+)"', again.report.read_text())) == set(FIGURES)
    assert (copy / "summary.json").read_bytes() == (result.out / "summary.json").read_bytes()


def test_a_changed_config_is_refused_and_nothing_is_touched(tiny_study):
    result, _ = tiny_study
    before = _snapshot(result.out)
    with pytest.raises(study.StudyFolderError, match=r"changed: train\.epochs"):
        study.run(TINY.override({"train.epochs": 3}), out=result.out, progress=False, log=None)
    assert _snapshot(result.out) == before


def test_cli_resumes_the_same_study(tiny_study, capsys):
    result, _ = tiny_study
    code = cli.main(["study", "--preset", "tiny", "--out", str(result.out), "--no-progress"])
    cap = capsys.readouterr()
    assert code == 0
    assert "resumed from" in cap.err and "report:" in cap.out and "recommended batch size:" in cap.out
    code = cli.main(["study", "--preset", "tiny", "--epochs", "3", "--out", str(result.out)])
    assert code == 2 and "changed: train.epochs" in capsys.readouterr().err
    assert study.load_result(result.out).summary == result.summary


def test_cli_quiet_writes_nothing_to_stderr(tiny_study, capsys):
    result, _ = tiny_study
    code = cli.main(["study", "--preset", "tiny", "--out", str(result.out), "--quiet"])
    cap = capsys.readouterr()
    assert code == 0 and cap.err == ""
    assert "report:" in cap.out and "recommended batch size:" in cap.out


@pytest.mark.browser
def test_the_real_report_renders_in_chromium(tiny_study, tmp_path):
    from test_browser import probe_report

    result, _ = tiny_study
    found = probe_report(result.report, tmp_path)
    assert set(found) == set(FIGURES)
    for name, d in found.items():
        assert d["complete"] and d["nw"] > 100 and d["visible"] and d["w"] > 100, (name, d)


def test_a_finished_study_rebuilds_its_fits_from_the_folder(tiny_study):
    from hgcnet_jax import causal

    result, _ = tiny_study
    loaded = study.load(result.out)
    s = loaded.summary
    a = s["ate"]
    for graph, expected in ((a["graph"], a), ("pairwise", s["ate_pairwise"])):
        fit = loaded.fit(graph)
        assert isinstance(fit, causal.Fit) and fit.num_rows == len(study.fit_table(result.runs, TINY)[0])
        assert fit.num_draws == TINY.causal.num_chains * TINY.causal.num_samples
        eff = causal.ate(fit, "B", a["b_small"], a["b_large"], "G", prob=a["mass"])
        np.testing.assert_allclose([eff.mean, eff.lower, eff.upper], [expected["mean"], expected["lo"], expected["hi"]],
                                   rtol=1e-4, atol=1e-6)
    assert study.diagnostics(loaded.fit("hypergraph"))["max_rhat"] == pytest.approx(
        s["diagnostics"]["models"]["hypergraph"]["max_rhat"], rel=1e-5)
    with pytest.raises(ValueError, match="graph must be"):
        loaded.fit("chain")


# ---------------------------------------------------------------------------- issue 20: nothing lost, nothing changed


def test_the_help_smoke_example_runs_end_to_end(_tiny_run):
    """Every test of this file reads the help's ``--preset tiny`` example (the fixture runs it).

    That progress bars change no result is checked where the numbers are made: the sweep's bars
    (tests/train/test_sweep.py) and the mediators' (tests/mediators/test_measure.py) give
    bit-identical results with and without them.
    """
    result, _, err, out = _tiny_run
    assert "recommended batch size:" in out and f"report: {result.report.resolve()}" in out
    assert json.loads((result.out / "config.json").read_text())["fingerprint"] == TINY.fingerprint()
    assert "Traceback" not in err
    # peak memory is set by how many runs one compiled mediator call holds
    assert json.loads((result.out / "phases.json").read_text())["mediators"]["runs_per_call"] == 3  # ceil(12 / 4)
    assert json.loads((result.out / "phases.json").read_text())["sweep"]["devices"] == 1


def _copy_before_effects(result, tmp_path):
    """A copy of a finished study's folder as it stood before its effects phase (fits kept)."""
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(result.out, copy)
    for name in ("summary.json", "report.html", "plots"):
        study.folder.remove(copy / name)
    return copy


def test_a_failed_late_phase_keeps_everything_and_a_rerun_resumes(tiny_study, tmp_path, monkeypatch):
    result, _ = tiny_study
    copy = _copy_before_effects(result, tmp_path)
    kept = {n: (copy / n).read_bytes() for n in ("runs.parquet", "sweep.parquet", "posterior_hypergraph.nc",
                                                 "posterior_pairwise.nc", "config.json")}

    def broken(*args, **kwargs):
        raise RuntimeError("the effects ran out of memory")

    monkeypatch.setattr(study.pipeline, "summarise", broken)
    with pytest.raises(study.StudyPhaseError, match="the effects phase failed: the effects ran out of memory") as e:
        study.run(TINY, out=copy, progress=False, log=None)
    assert e.value.phase == "effects" and not e.value.user_error
    assert {n: (copy / n).read_bytes() for n in kept} == kept            # nothing finished is lost
    page = (copy / "report.html").read_text()
    assert "The effects phase failed." in page and "ran out of memory" in page and "posterior_pairwise.nc" in page
    assert json.loads((copy / "phases.json").read_text())["failed"]["phase"] == "effects"
    with pytest.raises(FileNotFoundError, match="effects phase failed"):
        study.load_result(copy)
    monkeypatch.undo()
    logs: list[str] = []
    again = study.run(TINY, out=copy, progress=False, log=logs.append)
    assert again.resumed[:2] == ("sweep", "causal fits")                 # the fits are not refitted
    assert any("previous run failed in the effects phase" in line for line in logs)
    assert {n: (copy / n).read_bytes() for n in kept} == kept
    a, b = again.summary["ate"], result.summary["ate"]
    np.testing.assert_allclose([a["mean"], a["lo"], a["hi"]], [b["mean"], b["lo"], b["hi"]], rtol=1e-4, atol=1e-6)
    assert "failed" not in json.loads((copy / "phases.json").read_text())
    assert 'data-name="ate"' in again.report.read_text() and study.load_result(copy).summary == again.summary


def test_when_every_run_diverges_the_study_stops_after_the_sweep_naming_the_lr(tmp_path, capsys):
    config = TINY.override({"train.lr": 1e6, "train.batch_sizes": [8, 16], "train.seeds": 5, "train.epochs": 1})
    out = tmp_path / "lr"
    with pytest.raises(study.StudyPhaseError, match=r"all 10 runs diverged .* train\.lr = 1e\+06.*--lr") as e:
        study.run(config, out=out, progress=False, log=None)
    assert e.value.phase == "sweep" and e.value.user_error
    sweep = pd.read_parquet(out / "sweep.parquet")
    assert len(sweep) == 10 and sweep["diverged"].all()
    assert not (out / "runs.parquet").exists()
    assert "The sweep phase failed." in (out / "report.html").read_text()
    # the same command again: the sweep resumes from its checkpoints and stops with the same one line
    argv = ["--preset", "tiny", "--lr", "1e6", "--batch-sizes", "8,16", "--seeds", "5", "--epochs", "1",
            "--out", str(out), "--quiet"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the sweep phase failed: train.lr: all 10 runs diverged" in err


def test_posteriors_that_cannot_be_rebuilt_are_refitted_not_a_dead_end(tiny_study, tmp_path, monkeypatch):
    result, _ = tiny_study
    copy = _copy_before_effects(result, tmp_path)

    def unreadable(self, graph="hypergraph"):
        raise ValueError("posterior written by an older version")

    def refit(*args, **kwargs):
        raise RuntimeError("refitting")  # stands for the fits; the test only needs to see them called

    monkeypatch.setattr(study.StudyResult, "fit", unreadable)
    monkeypatch.setattr(study.pipeline, "fit_graphs", refit)
    logs: list[str] = []
    with pytest.raises(study.StudyPhaseError, match="causal fits phase failed: refitting"):
        study.run(TINY, out=copy, progress=False, log=logs.append)
    assert any("cannot rebuild them" in line and "older version" in line for line in logs)


# ---------------------------------------------------------------------------- issue 14: criticism in the study


def _outcome_numbers(s: dict):
    """Every number of the summary that is a value of the outcome (an accuracy) or an interval of one."""
    iv = s["interventional"]
    for c in iv["curves"].values():
        yield from (*c["mean"], *c["lo"], *c["hi"])
    yield from (*iv["observed_mean"], *iv["observed_lo"], *iv["observed_hi"])
    r = s["recommendation"]
    yield from (r["best_mean"], r["best_lo"], r["best_hi"], r["current_mean"])
    for k in ("mean_by_batch_size", "lo_by_batch_size", "hi_by_batch_size"):
        yield from r[k].values()
    for rows in s["criticism"]["arms"].values():
        for a in rows:
            yield from (a["arm_mean"], a["arm_lo"], a["arm_hi"], a["model_mean"], a["model_lo"], a["model_hi"])


def test_every_candidate_is_criticised_against_the_arms_and_no_accuracy_leaves_0_1(tiny_study):
    result, _ = tiny_study
    s = json.loads((result.out / "summary.json").read_text())
    crit = s["criticism"]
    names = [r["candidate"] for r in crit["candidates"]]
    assert sorted(names) == sorted(TINY.causal.candidates)
    elpd = [r["elpd"] for r in crit["candidates"]]
    assert elpd == sorted(elpd, reverse=True)  # ranked by PSIS-LOO
    table, _ = study.fit_table(result.runs, TINY)
    arm_means = table.groupby("batch_size")[s["outcome_column"]].mean()
    for name in names:
        rows = crit["arms"][name]
        assert [r["batch_size"] for r in rows] == [8, 16, 32]
        np.testing.assert_allclose([r["arm_mean"] for r in rows], arm_means.to_numpy(), rtol=1e-6)
        for r in rows:
            assert r["arm_lo"] <= r["arm_mean"] <= r["arm_hi"] and r["model_lo"] <= r["model_mean"] <= r["model_hi"]
    passing = [r["candidate"] for r in crit["candidates"] if r["ok"]]
    assert crit["chosen"] == (passing[0] if passing else None)
    assert crit["trusted"] == bool(passing)
    # a logit equation for G: no accuracy anywhere outside [0, 1]
    values = np.asarray(list(_outcome_numbers(s)), dtype=float)
    assert values.size > 50 and np.all((values >= 0) & (values <= 1))
    # the first screen: the verdict comes before the recommendation
    page = (result.out / "report.html").read_text()
    assert 0 < page.index('id="criticism"') < page.index('id="recommendation"')
    assert crit["headline"].split(":")[0] in page


def test_a_misfit_is_said_first_and_the_arms_drive_the_recommendation(tiny_study, monkeypatch):
    """When no candidate passes, the report says so first and recommends the best arm mean, in [0, 1]."""
    result, _ = tiny_study
    loaded = study.load(result.out)
    fits = {g: loaded.fit(g) for g in TINY.causal.candidates}
    table, notes = study.fit_table(result.runs, TINY)
    real = causal.search_graphs

    def none_passes(*args, **kwargs):
        found = real(*args, **kwargs)
        return dataclasses.replace(found, chosen=None, table=found.table.assign(ok=False, chosen=False))

    monkeypatch.setattr(causal, "search_graphs", none_passes)
    config = TINY.override({"causal.refuters": []})
    s = _summary.summarise(config, result.runs, table, fits, notes=notes)
    crit, rec = s["criticism"], s["recommendation"]
    assert crit["chosen"] is None and not crit["trusted"]
    assert crit["headline"].startswith("MISFIT") and s["warnings"][0] == crit["headline"]
    arms = table.groupby("batch_size")[s["outcome_column"]].mean()
    assert rec["source"] == "arms" and rec["graph"] is None
    assert rec["best_batch_size"] == int(arms.idxmax())
    assert rec["best_mean"] == pytest.approx(float(arms.max()))
    assert 0.0 <= rec["best_lo"] <= rec["best_mean"] <= rec["best_hi"] <= 1.0
    assert s["ate"]["trusted"] is False and s["effects"]["trusted"] is False
    page = html.render(s, {})
    assert page.index("Causal model MISFIT") < page.index('id="recommendation"')
    assert "design-based" in page and 'id="effects-untrusted"' in page and 'id="ate-untrusted"' in page


def test_a_causal_only_change_keeps_the_runs_and_recomputes_the_causal_phase(tiny_study, tmp_path):
    result, _ = tiny_study
    copy = tmp_path / "copy"
    shutil.copytree(result.out, copy)
    with pytest.raises(ConfigError, match="holdout_seeds refuter") as info:  # 3 of 4 seeds: 9 runs, too few
        study.run(TINY.override({"causal.refuters": ["holdout_seeds"]}), out=copy, progress=False, log=None)
    assert info.value.field == "causal.refuters"
    config = TINY.override({"causal.candidates": ["hypergraph", "pairwise"], "causal.refuters": ["random_common_cause"]})
    logs: list[str] = []
    again = study.run(config, out=copy, progress=False, log=logs.append)
    assert {"sweep"} <= set(again.resumed) and "causal" not in again.resumed
    assert any(line.startswith("sweep: resumed") for line in logs)
    assert not any(line.startswith("sweep: done") or line.startswith("mediators: done") for line in logs)
    pd.testing.assert_frame_equal(again.runs, result.runs)
    s = again.summary
    assert [r["candidate"] for r in s["criticism"]["candidates"]].count("B->C") == 0
    assert not (copy / study.folder.posterior_file("B->C")).exists()  # the old fit went with its phase
    ref = s["refutations"]
    assert [r["name"] for r in ref] == ["random common cause"] and isinstance(ref[0]["passed"], bool)
    saved = json.loads((copy / "config.json").read_text())
    assert saved["fingerprint"] == config.fingerprint() and "causal.candidates" in saved["changed"]
    # a change to the training is still refused
    with pytest.raises(study.StudyFolderError, match="train.epochs"):
        study.run(config.override({"train.epochs": 3}), out=copy, progress=False, log=None)


def test_the_sweep_saves_a_trajectory_and_the_noise_along_it_is_measured(tiny_study):
    """train.trajectory = 4 by default: every run has the noise it experienced along training."""
    result, _ = tiny_study
    runs = result.runs
    assert TINY.train.trajectory == 4
    for col in ("noise_traj_mean", "noise_traj_final"):
        assert np.isfinite(runs[col]).all() and (runs[col] >= 0).all()
        assert (runs[f"{col}_se"] >= 0).all()
    # tr Sigma / B: at one seed, the smallest batch experienced more noise than the largest
    by_b = runs.groupby("batch_size")["noise_traj_mean"].median()
    assert by_b.loc[8] > by_b.loc[32]


def test_a_trajectory_longer_than_the_shortest_run_is_refused_before_training():
    with pytest.raises(ConfigError) as info:
        study.plan.validate(TINY.override({"train.trajectory": 1000}))
    assert info.value.field == "train.trajectory" and "train.trajectory=" in str(info.value)
    assert study.plan.validate(TINY.override({"train.trajectory": 0}))["runs"] == 12
