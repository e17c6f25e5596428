"""Several processes, one sweep, on JAX's own multi-controller runtime (``jax.distributed``).

Every process runs the same program: it calls :func:`initialize` before any other JAX
call, builds the same task and interventions, and calls ``sweep(..., mesh=make_mesh())``.
The mesh then spans every process's devices; each process holds the (replicated) dataset
and computes only the replicas on its own devices, and the runs table (gathered with
``multihost_utils.process_allgather``) is the same on every process, and the same as a
single-process sweep's on as many devices. With ``checkpoint_dir`` (a folder every process
sees) orbax saves and restores the sharded state across processes: a sweep killed on every
process resumes exactly when all of them are started again.
"""

from __future__ import annotations

import os

__all__ = ["initialize"]


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an integer, got {value!r}") from None


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None) -> None:
    """Join this process to a multi-process JAX run; call it before any other JAX call.

    Arguments left ``None`` are read from ``JAX_COORDINATOR_ADDRESS`` (``host:port`` of
    process 0), ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``; where those are unset too,
    ``jax.distributed.initialize`` detects the cluster itself (Cloud TPU pod slices, SLURM,
    Open MPI). On CPU the cross-process collectives are gloo's, JAX's default
    (``jax_cpu_collectives_implementation``).

    Raises:
        ValueError: an environment variable above is not an integer.
    """
    import jax

    num_processes = _env_int("JAX_NUM_PROCESSES") if num_processes is None else num_processes
    process_id = _env_int("JAX_PROCESS_ID") if process_id is None else process_id
    jax.distributed.initialize(coordinator_address=coordinator_address, num_processes=num_processes,
                               process_id=process_id)
