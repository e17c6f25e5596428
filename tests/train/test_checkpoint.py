"""Resumable sweeps: fingerprint checks and a SIGKILL mid-sweep that resumes bit-identically."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import jax
import numpy as np
import pandas as pd
import pytest

from hgcnet_jax.train import Budget, Intervention, make_task, sweep
from hgcnet_jax.train.checkpoint import check_fingerprint

CHILD = textwrap.dedent(
    """
    import sys, jax, numpy as np
    from hgcnet_jax import data
    from hgcnet_jax.train import make_task, sweep, grid, Budget, Intervention
    ckpt, out = sys.argv[1], sys.argv[2]
    ds = data.load("csbm", num_nodes=120, num_classes=3, num_features=16, seed=0)
    task = make_task(ds, "gcn")
    runs = grid(batch_size=[8, 24], seed=[0, 1], lr=0.1, optimizer="momentum") + [Intervention(24, lr=1e3)]
    res = sweep(task, runs, Budget(epochs=6), key=jax.random.key(7), checkpoint_dir=ckpt,
                chunk_steps=9, progress=False)
    res.runs.drop(columns=["wall_time_s", "bucket_wall_time_s", "bucket_compile_time_s"]).to_csv(out + ".csv", index=False)
    res.trajectories.to_csv(out + "_traj.csv", index=False)
    flat = {str(i): np.concatenate([np.ravel(x) for x in jax.tree.leaves(res.params(i))])
            for i in range(len(runs))}
    np.savez(out + ".npz", **flat)
    """
)


def _run_child(tmp: Path, ckpt: Path, out: Path, *, kill_when=None) -> int:
    script = tmp / "child.py"
    script.write_text(CHILD)
    proc = subprocess.Popen([sys.executable, str(script), str(ckpt), str(out)], env=dict(os.environ))
    if kill_when is None:
        return proc.wait(timeout=900)
    deadline = time.time() + 900
    while time.time() < deadline and proc.poll() is None:
        if kill_when():
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    return proc.wait(timeout=60)


@pytest.mark.slow
def test_sigkill_mid_sweep_then_rerun_equals_uninterrupted(tmp_path):
    ref_ckpt, ckpt = tmp_path / "ref", tmp_path / "ckpt"
    assert _run_child(tmp_path, ref_ckpt, tmp_path / "ref") == 0

    def first_checkpoint_written():
        # bucket 0 (B=8, 9 steps per epoch, chunks of one epoch) has 6 chunks: kill after its first.
        d = ckpt / "bucket_000"
        return d.is_dir() and any(p.name.isdigit() for p in d.iterdir())

    rc = _run_child(tmp_path, ckpt, tmp_path / "killed", kill_when=first_checkpoint_written)
    assert rc == -signal.SIGKILL, "the child must have been killed mid-sweep"
    assert not (tmp_path / "killed.csv").exists()
    done = sorted(int(p.name) for p in (ckpt / "bucket_000").iterdir() if p.name.isdigit())
    assert done and done[-1] < 6, "killed before the first bucket finished"

    assert _run_child(tmp_path, ckpt, tmp_path / "resumed") == 0
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "resumed.csv"), pd.read_csv(tmp_path / "ref.csv"))
    pd.testing.assert_frame_equal(
        pd.read_csv(tmp_path / "resumed_traj.csv"), pd.read_csv(tmp_path / "ref_traj.csv")
    )
    a, b = np.load(tmp_path / "resumed.npz"), np.load(tmp_path / "ref.npz")
    assert sorted(a.files) == sorted(b.files)
    for k in a.files:
        np.testing.assert_array_equal(a[k], b[k])


def test_a_different_sweep_is_refused(tiny_graph, tmp_path):
    task = make_task(tiny_graph, "gcn")
    check_fingerprint(tmp_path, {"something": "else"})
    with pytest.raises(ValueError, match="different sweep"):
        sweep(task, [Intervention(24)], Budget(steps=2), key=jax.random.key(0), checkpoint_dir=tmp_path)
    # the recorded fingerprint is left untouched
    assert json.loads((tmp_path / "sweep.json").read_text()) == {"something": "else"}


def test_unwritable_checkpoint_dir_is_reported(tiny_graph, tmp_path):
    task = make_task(tiny_graph, "gcn")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(PermissionError, match="checkpoint folder"):
        sweep(task, [Intervention(24)], Budget(steps=2), key=jax.random.key(0), checkpoint_dir=blocker / "sub")
