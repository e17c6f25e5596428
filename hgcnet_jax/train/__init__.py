"""The vectorised training engine: tasks, interventions, budgets and sweeps.

See :func:`sweep` for the compiled ``scan(vmap(step))`` program per batch-size
bucket, :class:`Task` for what a batch is (node tasks propagate the full graph
and the batch is a set of labelled nodes), and :mod:`hgcnet_jax.train.checkpoint`
for resumable sweeps, :mod:`hgcnet_jax.train.distributed` for a sweep over several
processes.
"""

from hgcnet_jax.train import distributed
from hgcnet_jax.train.interventions import Budget, Intervention, grid
from hgcnet_jax.train.optim import ReplicaOptState, replica_optimizer
from hgcnet_jax.train.sharding import make_mesh
from hgcnet_jax.train.sweep import METRICS, SweepResult, Trajectory, run_key, sweep, trajectory_steps
from hgcnet_jax.train.task import Task, TaskSpec, make_task

__all__ = [
    "Task",
    "TaskSpec",
    "make_task",
    "Intervention",
    "grid",
    "Budget",
    "sweep",
    "SweepResult",
    "Trajectory",
    "trajectory_steps",
    "METRICS",
    "run_key",
    "make_mesh",
    "distributed",
    "replica_optimizer",
    "ReplicaOptState",
]
