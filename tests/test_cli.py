"""The ``hgcnet`` command line: help for newcomers, exit status 2 with a field-named message on user errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hgcnet_jax import cli
from hgcnet_jax.config import PAPER_BATCH_SIZES, StudyConfig, load_config


def _main(argv, capsys):
    code = cli.main(argv)
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_study_help_explains_the_command(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["study", "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for needle in ("hgcnet study --dataset cora --model gcn", "--batch-sizes", "--config", "--overwrite",
                   "report.html", "resumes", "KEY=VALUE", "precedence"):
        assert needle in text, needle


def test_no_subcommand_means_study(capsys):
    code, out, _ = _main(["--print-config"], capsys)
    assert code == 0
    assert "[train]" in out and 'name = "csbm"' in out


def test_print_config_round_trips_and_applies_precedence(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[train]\nepochs = 7\nseeds = 3\n[causal]\nnum_samples = 50\n')
    code, out, _ = _main(["study", "--config", str(cfg), "--seeds", "5", "--set", "causal.num_samples=60",
                          "--set", "model.options.hidden=8", "--print-config"], capsys)
    assert code == 0
    p = tmp_path / "resolved.toml"
    p.write_text(out)
    c = load_config(p)
    assert c.train.epochs == 7           # from the file
    assert c.train.seeds == 5            # the flag beats the file
    assert c.causal.num_samples == 60    # --set beats everything
    assert c.model.options["hidden"] == 8


def test_paper_preset_for_real_datasets(capsys):
    code, out, _ = _main(["--dataset", "cora", "--model", "gcn", "--print-config"], capsys)
    assert code == 0
    p = StudyConfig.from_dict(__import__("tomllib").loads(out))
    assert p.train.batch_sizes == PAPER_BATCH_SIZES and p.train.seeds == 10 and p.data.split == "full"
    code, out, _ = _main(["--dataset", "cora", "--preset", "quick", "--print-config"], capsys)
    assert "batch_sizes = [16, 32, 64, 128, 256]" in out


@pytest.mark.parametrize(
    "argv, field",
    [
        (["--epochs", "0"], "train.epochs"),
        (["--batch-sizes", "32"], "train.batch_sizes"),
        (["--set", "train.epoch=3"], "train.epoch"),
        (["--set", "causal.method=hmc"], "causal.method"),
        (["--current-batch-size", "100"], "current_batch_size"),
        (["--optimizer", "adamw"], "train.optimizer"),
    ],
)
def test_bad_values_exit_2_naming_the_field(argv, field, capsys, tmp_path):
    out = tmp_path / "out"
    code, _, err = _main([*argv, "--out", str(out)], capsys)
    assert code == 2
    assert err.startswith(f"hgcnet: error: {field}: ")
    assert not out.exists()


def test_bad_config_file_exits_2(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("train:\n  batch_sizes: [16, nope]\n")
    code, _, err = _main(["--config", str(cfg), "--out", str(tmp_path / "out")], capsys)
    assert code == 2 and "train.batch_sizes[1]" in err
    code, _, err = _main(["--config", str(tmp_path / "missing.toml")], capsys)
    assert code == 2 and "not found" in err
    assert not (tmp_path / "out").exists()


def test_unknown_dataset_or_model_exit_2_and_leave_nothing(tmp_path, capsys):
    out = tmp_path / "a" / "b"
    code, _, err = _main(["--dataset", "corra", "--out", str(out)], capsys)
    assert code == 2 and "data.name" in err and "cora" in err
    code, _, err = _main(["--model", "gcnn", "--out", str(out)], capsys)
    assert code == 2 and "model.name" in err
    assert not (tmp_path / "a").exists()


def test_unwritable_output_folder_exits_2_before_any_work(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code, _, err = _main(["--out", str(blocker / "study")], capsys)
    assert code == 2 and "cannot write to the output folder" in err
    assert blocker.read_text() == "not a folder"


def test_argparse_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--batch-sizes", "16,x"])
    assert e.value.code == 2
    assert "comma-separated integers" in capsys.readouterr().err


def test_data_subcommand_lists_datasets(capsys):
    code, out, _ = _main(["data"], capsys)
    assert code == 0 and "cora" in out and "csbm" in out and "HGCNET_DATA_DIR" in out


def test_console_entry_point_prints_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "hgcnet_jax.cli", "--set", "train.lr=-1", "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "hgcnet: error: train.lr: must be > 0, got -1.0"
    assert "Traceback" not in proc.stderr


def test_prune_is_delegated_to_the_prune_command_line(capsys):
    pytest.importorskip("hgcnet_jax.prune.cli")
    with pytest.raises(SystemExit) as e:
        cli.main(["prune", "--help"])
    assert e.value.code == 0
    assert "usage: hgcnet prune" in capsys.readouterr().out


@pytest.mark.parametrize("what", ["file", "missing"])
def test_data_dir_that_is_not_a_folder_is_one_line(what, tmp_path, capsys, monkeypatch):
    """HGCNET_DATA_DIR at a file or a missing folder: one 'hgcnet: error:' line naming the variable, no traceback."""
    target = tmp_path / "not-a-folder"
    if what == "file":
        target.write_text("x")
    monkeypatch.setenv("HGCNET_DATA_DIR", str(target))
    code, _, err = _main(["study", "--dataset", "cora", "--dry-run", "--out", str(tmp_path / "out")], capsys)
    assert code == 2 and err.startswith("hgcnet: error: HGCNET_DATA_DIR=") and "is not a folder" in err
    assert err.count("\n") == 1 and "Traceback" not in err
