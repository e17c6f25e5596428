"""A 1-D device mesh over the replica axis of a sweep.

A sweep's replicas (runs of one bucket) are independent, so they are split
across devices along a single mesh axis; the dataset is replicated. The mesh is
built with ``AxisType.Auto`` so XLA propagates the sharding through the
vmapped, scanned program, and works unchanged on several hosts
(``jax.devices()`` then lists every process's devices).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

__all__ = ["make_mesh", "replica_sharding", "replicated_sharding", "padded_size"]

AXIS = "replica"


def make_mesh(devices: Sequence[jax.Device] | None = None, *, axis_name: str = AXIS) -> Mesh:
    """A 1-D ``Mesh`` over ``devices`` (default: all devices) with one ``Auto`` axis.

    Raises:
        ValueError: if ``devices`` is empty.
    """
    devs = list(jax.devices() if devices is None else devices)
    if not devs:
        raise ValueError("make_mesh: devices is empty")
    return Mesh(np.asarray(devs), (axis_name,), axis_types=(AxisType.Auto,))


def check_mesh(mesh: Mesh) -> str:
    """The name of ``mesh``'s single axis; raises for a mesh that is not 1-D."""
    if not isinstance(mesh, Mesh):
        raise TypeError(f"sweep: mesh must be a jax.sharding.Mesh (see make_mesh), got {type(mesh).__name__}")
    if len(mesh.axis_names) != 1:
        raise ValueError(f"sweep: mesh must be 1-D (one replica axis), got axes {mesh.axis_names}")
    return mesh.axis_names[0]


def replica_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (replica) axis split over the mesh, other axes whole."""
    return NamedSharding(mesh, PartitionSpec(check_mesh(mesh)))


def replicated_sharding(mesh: Mesh) -> NamedSharding:
    """Every device holds the whole array (the dataset)."""
    return NamedSharding(mesh, PartitionSpec())


def padded_size(n: int, mesh: Mesh | None) -> int:
    """``n`` rounded up to a multiple of the mesh size (padding replicas are dropped afterwards)."""
    if mesh is None:
        return n
    k = mesh.devices.size
    return -(-n // k) * k
