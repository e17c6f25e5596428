"""The study's output folder: resume, refusal of a changed config, overwrite, atomic netCDF writes."""

from __future__ import annotations

import json

import pytest

from hgcnet_jax import _io, study
from hgcnet_jax.config import StudyConfig


def _seed_folder(out, config):
    _io.write_json(out / "config.json", {"format": 1, "fingerprint": config.fingerprint(), "config": config.to_dict()})
    (out / "runs.parquet").write_bytes(b"runs")
    (out / "plots").mkdir()
    (out / "plots" / "ate.png").write_bytes(b"png")
    (out / "notes.txt").write_text("the user's own file")


def test_new_folder_is_created_and_not_resumed(tmp_path):
    out = tmp_path / "a" / "b"
    assert study.folder.prepare_folder(out, StudyConfig(), overwrite=False) is False
    assert out.is_dir()


def test_same_config_resumes(tmp_path):
    c = StudyConfig()
    _seed_folder(tmp_path, c)
    assert study.folder.prepare_folder(tmp_path, StudyConfig(), overwrite=False) is True
    assert (tmp_path / "runs.parquet").read_bytes() == b"runs"


def test_changed_config_is_refused_naming_the_fields(tmp_path):
    c = StudyConfig()
    _seed_folder(tmp_path, c)
    changed = c.override({"train.epochs": 3, "causal.num_samples": 77})
    with pytest.raises(study.StudyFolderError, match=r"changed: causal\.num_samples, train\.epochs.*--overwrite"):
        study.folder.prepare_folder(tmp_path, changed, overwrite=False)
    assert (tmp_path / "runs.parquet").read_bytes() == b"runs"          # nothing touched


def test_overwrite_deletes_only_the_study_files(tmp_path):
    c = StudyConfig()
    _seed_folder(tmp_path, c)
    assert study.folder.prepare_folder(tmp_path, c.override({"seed": 5}), overwrite=True) is False
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_study_files_without_a_config_are_refused(tmp_path):
    (tmp_path / "summary.json").write_text("{}")
    with pytest.raises(study.StudyFolderError, match="without a readable config.json"):
        study.folder.prepare_folder(tmp_path, StudyConfig(), overwrite=False)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(study.StudyFolderError):
        study.folder.prepare_folder(tmp_path, StudyConfig(), overwrite=False)
    assert study.folder.prepare_folder(tmp_path, StudyConfig(), overwrite=True) is False
    assert list(tmp_path.iterdir()) == []


def test_a_folder_of_other_files_is_usable(tmp_path):
    (tmp_path / "data.csv").write_text("x")
    assert study.folder.prepare_folder(tmp_path, StudyConfig(), overwrite=False) is False
    assert (tmp_path / "data.csv").exists()


def test_unwritable_folder_is_refused_before_work(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(PermissionError, match="cannot write to the output folder"):
        study.run(StudyConfig(), out=blocker / "out", log=None)


def test_recomputing_a_phase_drops_the_later_ones(tmp_path):
    for name in study.ARTIFACTS:
        (tmp_path / name).write_text("x")
    (tmp_path / "plots").mkdir()
    study.folder.drop_after(tmp_path, "runs.parquet")
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ["config.json", "phases.json", "runs.parquet", "sweep.parquet"]
    study.folder.drop_after(tmp_path, "sweep.parquet")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "phases.json", "sweep.parquet"]


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "posterior.nc"
    with pytest.raises(RuntimeError):
        with _io.atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
    with _io.atomic_path(target) as tmp:
        tmp.write_bytes(b"whole")
    assert target.read_bytes() == b"whole" and [p.name for p in tmp_path.iterdir()] == ["posterior.nc"]


def test_load_result_requires_a_finished_study(tmp_path):
    _io.write_json(tmp_path / "config.json", {"config": StudyConfig().to_dict()})
    with pytest.raises(FileNotFoundError, match="missing runs.parquet, summary.json, report.html"):
        study.load_result(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["config"]["seed"] == 0


def test_causal_progress_bar_counts_fits_queries_and_refutations():
    c = StudyConfig()
    assert study.progress.causal_bar(c, progress=False) is None
    bar = study.progress.causal_bar(c, progress=True)
    try:
        assert bar.total == 2 * 2 + 4 + len(c.causal.refuters)  # fit and criticise each of two graphs
        assert study.progress.causal_bar(c, progress=True, num_graphs=5).total == 2 * 5 + 4 + len(c.causal.refuters)
        study.progress.tick(bar, "fit hypergraph")
        study.progress.tick(None, "ignored")
        assert bar.n == 1
    finally:
        bar.close()


def test_alive_redraws_the_bar_while_one_long_call_runs_and_then_stops():
    import threading
    import time

    class Bar:
        def __init__(self):
            self.refreshes, self.postfix = 0, None

        def refresh(self):
            self.refreshes += 1

        def set_postfix_str(self, text, refresh=True):
            self.postfix = text

    bar = Bar()
    study.progress.step(bar, "fit hypergraph: NUTS 2 chains x 1500 transitions")
    with study.progress.alive(bar, every=0.01):
        time.sleep(0.2)                      # stands for one compiled NUTS program
    n = bar.refreshes
    assert n >= 3 and bar.postfix.startswith("fit hypergraph")
    time.sleep(0.05)
    assert bar.refreshes == n                # the thread has stopped
    assert not any(t.name == "hgcnet-progress" for t in threading.enumerate())
    with study.progress.alive(None):                 # progress off: no thread at all
        assert not any(t.name == "hgcnet-progress" for t in threading.enumerate())
    study.progress.step(None, "ignored")
