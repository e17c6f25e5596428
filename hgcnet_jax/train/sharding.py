"""Device meshes for a sweep: a ``runs`` axis (independent replicas) and an optional ``data`` axis.

A sweep's replicas (runs of one bucket) are independent, so they are split across
devices along the ``runs`` axis with no communication. The ``data`` axis splits the
minibatch of *one* run: every device of a ``data`` row holds the run's parameters,
computes the gradient of its slice of the batch, and the slices' gradients are
averaged (``lax.pmean``) before the update, which is then the same on every device of
the row. The dataset is replicated.

``make_mesh(devices)`` is all runs (1-D); ``make_mesh(devices, data=k)`` is a
``(n // k, k)`` mesh with ``k`` devices per run. Meshes are built with
``AxisType.Auto`` and work unchanged on several hosts (``jax.devices()`` then lists
every process's devices, ordered by process, so a ``data`` row of ``k`` consecutive
devices stays inside one host whenever ``k`` divides a host's device count).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

__all__ = ["make_mesh", "mesh_axes", "replica_sharding", "replicated_sharding", "padded_size", "runs_mesh",
           "RUNS", "DATA"]

RUNS = "runs"
DATA = "data"


class MeshAxes(NamedTuple):
    """The axis names of a sweep mesh: ``runs``, and ``data`` (``None`` for a 1-D mesh)."""

    runs: str
    data: str | None
    runs_size: int
    data_size: int


def make_mesh(devices: Sequence[jax.Device] | None = None, *, data: int = 1) -> Mesh:
    """A mesh over ``devices`` (default: all) for :func:`~hgcnet_jax.train.sweep`.

    Args:
        devices: the devices, in order (default ``jax.devices()``).
        data: devices per run (the ``data`` axis). 1 (default): a 1-D mesh, every device
            on ``runs``. ``k > 1``: a ``(len(devices) // k, k)`` mesh with axes
            ``("runs", "data")``; consecutive devices form one run's ``data`` row.

    Raises:
        ValueError: if ``devices`` is empty, or ``data`` is not a positive divisor of its length.
    """
    devs = list(jax.devices() if devices is None else devices)
    if not devs:
        raise ValueError("make_mesh: devices is empty")
    if isinstance(data, bool) or not isinstance(data, int) or data < 1 or len(devs) % data:
        raise ValueError(f"make_mesh: data={data!r} must be a positive int dividing the {len(devs)} devices "
                         f"(it is the number of devices that train one run together)")
    if data == 1:
        return Mesh(np.asarray(devs), (RUNS,), axis_types=(AxisType.Auto,))
    grid = np.asarray(devs, dtype=object).reshape(len(devs) // data, data)
    return Mesh(grid, (RUNS, DATA), axis_types=(AxisType.Auto, AxisType.Auto))


def mesh_axes(mesh: Mesh) -> MeshAxes:
    """The runs and data axes of a sweep mesh.

    A 1-D mesh's single axis (whatever its name) is the runs axis; a 2-D mesh must have
    a ``"data"`` axis, the other one being the runs axis.

    Raises:
        TypeError: for something that is not a ``Mesh``.
        ValueError: for a mesh of more than two axes, or a 2-D mesh without a ``"data"`` axis.
    """
    if not isinstance(mesh, Mesh):
        raise TypeError(f"sweep: mesh must be a jax.sharding.Mesh (see make_mesh), got {type(mesh).__name__}")
    names = tuple(mesh.axis_names)
    if len(names) == 1:
        return MeshAxes(names[0], None, int(mesh.shape[names[0]]), 1)
    if len(names) != 2 or DATA not in names:
        raise ValueError(f"sweep: mesh must be 1-D (runs) or 2-D with a {DATA!r} axis "
                         f"(make_mesh(devices, data=k)), got axes {names}")
    runs = names[0] if names[1] == DATA else names[1]
    return MeshAxes(runs, DATA, int(mesh.shape[runs]), int(mesh.shape[DATA]))


def check_mesh(mesh: Mesh) -> str:
    """The name of ``mesh``'s runs axis (see :func:`mesh_axes`, which it validates with)."""
    return mesh_axes(mesh).runs


def replica_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (replica) axis split over the runs axis, replicated over ``data``, other axes whole."""
    return NamedSharding(mesh, PartitionSpec(check_mesh(mesh)))


def replicated_sharding(mesh: Mesh) -> NamedSharding:
    """Every device holds the whole array (the dataset)."""
    return NamedSharding(mesh, PartitionSpec())


def runs_mesh(mesh: Mesh) -> Mesh:
    """A 1-D mesh over every device of ``mesh``: for work that has no ``data`` split (the mediators)."""
    ax = mesh_axes(mesh)
    if ax.data is None:
        return mesh
    return Mesh(mesh.devices.reshape(-1), (ax.runs,), axis_types=(AxisType.Auto,))


def padded_size(n: int, mesh: Mesh | None) -> int:
    """``n`` rounded up to a multiple of the mesh's runs axis (padding replicas are dropped afterwards)."""
    if mesh is None:
        return n
    k = mesh_axes(mesh).runs_size
    return -(-n // k) * k
