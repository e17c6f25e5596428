"""What ``hgcnet study`` refuses before any training, and how it reads its inputs.

The ``--help`` examples pass the pre-training checks (``--dry-run``); the cheapest one
runs end to end in ``test_study.py``. Grids too small for the causal fit or a refuter,
unknown mediator columns, ``--epoch`` abbreviations and a file given as ``--out`` are
refused with one line naming the field; configuration layers in the documented order;
files honour the umask; a run whose loss is NaN or inf is flagged diverged.
"""

from __future__ import annotations

import os
import shlex
import stat

import numpy as np
import pytest

from hgcnet_jax import _io, cli, study
from hgcnet_jax.config import StudyConfig, load_config, preset


def _main(argv, capsys):
    code = cli.main(argv)
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def _help_text(capsys) -> str:
    with pytest.raises(SystemExit):
        cli.main(["study", "--help"])
    return capsys.readouterr().out


def _examples() -> list[str]:
    text = cli._STUDY_EPILOG
    block = text[text.index("examples:"):].split("\n\n")[0].splitlines()[1:]
    return [line.split(" # ")[0].strip() for line in block if line.strip().startswith("hgcnet study")]


def test_the_help_lists_examples():
    ex = _examples()
    assert len(ex) >= 6 and any("--preset tiny" in e for e in ex) and any("--print-config >" in e for e in ex)


@pytest.mark.parametrize("example", _examples())
def test_every_help_example_passes_the_checks_before_training(example, tmp_path, monkeypatch, capsys, request):
    """Each example, run with --dry-run from an empty folder: accepted, and nothing is written."""
    monkeypatch.chdir(tmp_path)
    if "cora" in example:
        monkeypatch.setenv("HGCNET_DATA_DIR", str(request.getfixturevalue("data_dir")))
    # the --config example reads the file the --print-config example writes
    code, toml, _ = _main(["study", "--print-config"], capsys)
    assert code == 0
    (tmp_path / "study.toml").write_text(toml)
    before = sorted(p.name for p in tmp_path.iterdir())
    argv = shlex.split(example)[1:]
    if ">" in argv:
        argv = argv[: argv.index(">")]
        code, out, err = _main(argv, capsys)
        assert code == 0, err
        assert load_config((tmp_path / "study.toml")) == StudyConfig.from_dict(__import__("tomllib").loads(out))
        return
    code, out, err = _main([*argv, "--dry-run"], capsys)
    assert code == 0, err
    assert out.startswith("config OK:") and "nothing was written" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_the_documented_minimum_is_the_one_checked(capsys):
    help_text = _help_text(capsys)
    need = study.minimum_runs(StudyConfig())
    assert need["causal fit"] == 10 and need["data_subset"] == 12
    flat = " ".join(help_text.split())
    assert "at least 10 runs" in flat and "80 %" in flat and "needs 12" in flat


@pytest.mark.parametrize(
    "argv, field, needle",
    [
        (["--seeds", "2", "--set", "causal.refuters=['data_subset']"], "causal.refuters",
         "data_subset refuter"),  # 10 runs: the fit yes, the refuter no
        (["--seeds", "2"], "causal.refuters", "holdout_seeds refuter"),  # the quick preset's: 5 x 1 kept seed
        (["--batch-sizes", "16,64,256", "--seeds", "3"], "train.seeds", "at least 10"),  # 9 runs
        (["--seeds", "2", "--set", "causal.refuters=[]"], None, None),  # 10 runs and no refuter: fine
        (["--set", "mediators.noise=noise_b_simpel"], "mediators.noise", "did you mean 'noise_b_simple'"),
        (["--set", "mediators.options.mediators=['noise', 'complexity']"], "mediators.sharpness", "not measured"),
    ],
)
def test_a_study_that_cannot_finish_is_refused_before_training(argv, field, needle, tmp_path, capsys, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(study.pipeline, "phase_sweep", no_training)
    out = tmp_path / "out"
    code, stdout, err = _main([*argv, "--out", str(out), "--dry-run"], capsys)
    if field is None:
        assert code == 0 and "config OK" in stdout
        return
    assert code == 2 and err.startswith(f"hgcnet: error: {field}: ") and needle in err, err
    assert err.count("\n") == 1
    # the same without --dry-run: refused before anything is written or trained
    code, _, err2 = _main([*argv, "--out", str(out)], capsys)
    assert code == 2 and err2 == err and not out.exists()


def test_precedence_is_preset_then_file_then_flags_then_set(tmp_path, capsys):
    cfg = tmp_path / "f.toml"
    cfg.write_text("[train]\nbatch_sizes = [16, 32, 64]\nepochs = 7\nseeds = 5\n[causal]\nnum_samples = 77\n"
                   "[data.options]\nnum_nodes = 200\n")
    tiny = StudyConfig().override(preset("tiny"))

    def resolved(*argv):
        code, out, err = _main(["study", *argv, "--print-config"], capsys)
        assert code == 0, err
        return StudyConfig.from_dict(__import__("tomllib").loads(out))

    c = resolved("--preset", "tiny", "--config", str(cfg))
    assert c.train.batch_sizes == (16, 32, 64) and c.train.epochs == 7 and c.causal.num_samples == 77  # the file
    assert c.train.seeds == 5 and c.data.options["num_nodes"] == 200
    assert c.causal.num_warmup == tiny.causal.num_warmup and c.causal.refuters == tiny.causal.refuters  # the preset
    assert c.mediators.options == tiny.mediators.options
    c = resolved("--preset", "tiny", "--config", str(cfg), "--epochs", "3", "--set", "train.epochs=4",
                 "--seeds", "6")
    assert c.train.epochs == 4 and c.train.seeds == 6 and c.train.batch_sizes == (16, 32, 64)
    assert resolved("--config", str(cfg), "--set", "train.epochs=9", "--epochs", "3").train.epochs == 9


def test_abbreviated_flags_are_refused(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["study", "--epoch", "3", "--print-config"])
    assert e.value.code == 2 and "unrecognized arguments: --epoch" in capsys.readouterr().err


def test_an_out_that_is_a_file_is_named_as_such(tmp_path, capsys):
    f = tmp_path / "results.txt"
    f.write_text("mine")
    code, _, err = _main(["--preset", "tiny", "--out", str(f)], capsys)
    assert code == 2 and "it is a file, not a folder" in err and "File exists" not in err
    code, _, err = _main(["--preset", "tiny", "--out", str(f / "sub")], capsys)
    assert code == 2 and "results.txt' is a file, not a folder" in err
    assert f.read_text() == "mine"


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_written_files_honour_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        a = _io.write_text(tmp_path / "a.json", "{}")
        with _io.atomic_path(tmp_path / "b.nc") as tmp:
            tmp.write_bytes(b"x")
    finally:
        os.umask(old)
    for p in (a, tmp_path / "b.nc"):
        assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~umask, p
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.nc"]


def test_non_finite_final_losses_mark_a_run_diverged():
    from hgcnet_jax.train.sweep import METRICS, _divergence

    steps = np.array([10, 20, 30])
    hist = np.ones((3, len(METRICS)))
    assert _divergence(True, -1, hist, steps) == (False, -1)
    assert _divergence(False, 7, hist, steps) == (True, 7)  # a non-finite step froze it
    for bad in (np.nan, np.inf, -np.inf):
        h = hist.copy()
        h[1:, METRICS.index("train_loss")] = bad
        assert _divergence(True, -1, h, steps) == (True, 20), bad
        h = hist.copy()
        h[:, METRICS.index("test_loss")] = bad
        assert _divergence(True, -1, h, steps) == (True, 10), bad
    h = hist.copy()
    h[1, METRICS.index("val_loss")] = np.nan  # recovered by the end: not diverged
    assert _divergence(True, -1, h, steps) == (False, -1)


def test_devices_are_where_runs_train_not_what_they_compute(tmp_path, capsys):
    """``train.devices`` leaves the fingerprint alone, and asking for more devices than JAX has
    (this process: conftest's 8 CPU devices) names the field before anything is written."""
    tiny = StudyConfig().override(preset("tiny"))
    assert tiny.override({"train.devices": 2}).fingerprint() == tiny.fingerprint()
    assert study.plan.sweep_mesh(tiny) is None                        # a CPU: one device unless asked
    assert study.plan.sweep_mesh(tiny.override({"train.devices": 3})).devices.size == 3
    three = tiny.override({"train.devices": 3})
    assert study.plan.sharding_record(three, study.plan.sweep_mesh(three)) == {
        "devices": 3, "data_devices": 1, "replicas_per_bucket": {"8": 6, "16": 6, "32": 6}, "idle_replicas": 6}
    out = tmp_path / "s"
    code, _, err = _main(["--preset", "tiny", "--devices", "9", "--out", str(out)], capsys)
    assert code == 2 and "train.devices" in err and "JAX sees 8" in err and not out.exists()


def test_data_devices_split_the_mesh_and_name_their_field(tmp_path, capsys):
    """``--data-devices 2`` on 8 devices: a (4 runs x 2 data) mesh, each bucket's 4 seeds on the 4 rows,
    no padding; a split that does not divide the devices or a batch size names the field."""
    tiny = StudyConfig().override(preset("tiny"))
    split = tiny.override({"train.devices": 8, "train.data_devices": 2})
    assert split.fingerprint() == tiny.fingerprint()
    mesh = study.plan.sweep_mesh(split)
    assert dict(mesh.shape) == {"runs": 4, "data": 2}
    assert study.plan.sharding_record(split, mesh) == {
        "devices": 8, "data_devices": 2, "replicas_per_bucket": {"8": 4, "16": 4, "32": 4}, "idle_replicas": 0}
    for flags, words in ((["--devices", "6", "--data-devices", "4"], "does not divide train.devices"),
                         (["--data-devices", "16"], "does not divide batch sizes [8]"),
                         (["--data-devices", "3"], "does not divide batch sizes [8, 16, 32]")):
        out = tmp_path / "_".join(flags)
        code, _, err = _main(["--preset", "tiny", *flags, "--out", str(out)], capsys)
        assert code == 2 and "train.data_devices" in err and words in err and not out.exists(), err
    with pytest.raises(Exception, match="train.data_devices.*does not divide the 1 devices"):
        study.plan.sweep_mesh(tiny.override({"train.data_devices": 2}))


def test_devices_on_a_cpu_restart_the_command_with_that_many_host_devices(tmp_path):
    """A fresh ``hgcnet study --devices 3`` (no XLA flag set) passes the device check: it restarted
    itself with 3 host devices; told not to restart (as a restarted study is), it names the field."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", cli._RESTARTED)}
    cmd = [sys.executable, "-m", "hgcnet_jax.cli", "study", "--preset", "tiny", "--devices", "3", "--dry-run",
           "--out", str(tmp_path / "s")]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and "config OK" in done.stdout, done.stderr
    done = subprocess.run(cmd, env={**env, cli._RESTARTED: "3"}, capture_output=True, text=True, timeout=600)
    assert done.returncode == 2 and "train.devices: asks for 3 devices but JAX sees 1" in done.stderr
