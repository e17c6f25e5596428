"""A sweep over two processes (``jax.distributed`` on 127.0.0.1, 4 CPU devices each) equals one process's,
also when both processes are killed with SIGKILL mid-sweep and started again (orbax multi-host checkpoints)."""

import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time

import jax
import pandas as pd
import pytest

from hgcnet_jax import data
from hgcnet_jax.train import Budget, grid, make_mesh, make_task, sweep

TIMING = ["wall_time_s", "bucket_wall_time_s", "bucket_compile_time_s"]

CHILD = textwrap.dedent(
    """
    import sys
    from hgcnet_jax.train import distributed
    distributed.initialize(f"127.0.0.1:{sys.argv[1]}", 2, int(sys.argv[2]))
    import jax
    from hgcnet_jax import data
    from hgcnet_jax.train import Budget, grid, make_mesh, make_task, sweep
    BUDGET = Budget(epochs=6)
    assert (jax.process_count(), jax.device_count(), jax.local_device_count()) == (2, 8, 4)
    task = make_task(data.load("csbm", num_nodes=120), "gcn")
    runs = grid(batch_size=[8, 24], seed=[0, 1, 2], lr=0.05)
    res = sweep(task, runs, BUDGET, key=jax.random.key(0), mesh=make_mesh(), progress=False,
                checkpoint_dir=sys.argv[4], chunk_steps=9)
    res.runs.drop(columns=%r).to_csv(sys.argv[3], index=False)
    """ % TIMING
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(script, port, outs, ckpt, env):
    return [subprocess.Popen([sys.executable, str(script), str(port), str(i), str(outs[i]), str(ckpt)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(2)]


@pytest.mark.slow
def test_a_sweep_over_two_processes_killed_and_restarted_equals_one_process(tmp_path):
    script, ckpt = tmp_path / "child.py", tmp_path / "ckpt"
    script.write_text(CHILD)
    # 4 host devices per process; the suite's other XLA flags (its compile settings) are kept
    flags = re.sub(r"--xla_force_host_platform_device_count=\d+", "", os.environ.get("XLA_FLAGS", ""))
    env = {**os.environ, "XLA_FLAGS": f"{flags} --xla_force_host_platform_device_count=4".strip(), "JAX_PLATFORMS": "cpu"}
    outs = [tmp_path / f"runs_{i}.csv" for i in range(2)]
    procs = _start(script, _free_port(), outs, ckpt, env)
    first = ckpt / "bucket_000"
    deadline = time.time() + 600
    while time.time() < deadline and all(p.poll() is None for p in procs):
        if first.is_dir() and any(d.name.isdigit() and int(d.name) >= 2 for d in first.iterdir()):
            break  # bucket 0 (B=8, 6 chunks) has saved 2 of them on both processes
        time.sleep(0.05)
    for p in procs:
        p.send_signal(signal.SIGKILL)
    logs = [p.communicate(timeout=60)[0] for p in procs]
    assert [p.returncode for p in procs] == [-signal.SIGKILL] * 2, "\n".join(log[-3000:] for log in logs)
    assert not any(out.exists() for out in outs)
    procs = _start(script, _free_port(), outs, ckpt, env)
    try:
        logs = [p.communicate(timeout=600)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [0, 0], "\n".join(log[-3000:] for log in logs)
    task = make_task(data.load("csbm", num_nodes=120), "gcn")
    runs = grid(batch_size=[8, 24], seed=[0, 1, 2], lr=0.05)
    one = sweep(task, runs, Budget(epochs=6), key=jax.random.key(0), mesh=make_mesh(jax.devices()[:8]),
                progress=False).runs.drop(columns=TIMING)
    for out in outs:  # every process holds the whole table
        two = pd.read_csv(out)
        assert len(two) == 6
        pd.testing.assert_frame_equal(two, pd.read_csv(_csv(one, tmp_path)), rtol=1e-5, atol=1e-6)


def _csv(df: pd.DataFrame, tmp_path) -> str:
    """``df`` through the same CSV round trip as the children's tables."""
    path = tmp_path / "one.csv"
    df.to_csv(path, index=False)
    return str(path)
