"""A sweep over two processes (``jax.distributed`` on 127.0.0.1, 4 CPU devices each) equals one process's."""

import os
import socket
import subprocess
import sys
import textwrap

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
    assert (jax.process_count(), jax.device_count(), jax.local_device_count()) == (2, 8, 4)
    task = make_task(data.load("csbm", num_nodes=120), "gcn")
    runs = grid(batch_size=[8, 24], seed=[0, 1, 2], lr=0.05)
    res = sweep(task, runs, Budget(epochs=2), key=jax.random.key(0), mesh=make_mesh(), progress=False)
    res.runs.drop(columns=%r).to_csv(sys.argv[3], index=False)
    """ % TIMING
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_a_sweep_over_two_processes_equals_one_process(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    port = _free_port()
    outs = [tmp_path / f"runs_{i}.csv" for i in range(2)]
    procs = [subprocess.Popen([sys.executable, str(script), str(port), str(i), str(outs[i])], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(2)]
    try:
        logs = [p.communicate(timeout=600)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [0, 0], "\n".join(log[-3000:] for log in logs)
    task = make_task(data.load("csbm", num_nodes=120), "gcn")
    runs = grid(batch_size=[8, 24], seed=[0, 1, 2], lr=0.05)
    one = sweep(task, runs, Budget(epochs=2), key=jax.random.key(0), mesh=make_mesh(jax.devices()[:8]),
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
