"""Compatibility shims for dependencies, kept in one place.

jraph 0.0.6.dev0 still calls ``jax.tree_map`` (removed from JAX 0.6) inside
``jraph.zero_out_padding`` and friends. Rather than re-adding ``tree_map`` to
the global ``jax`` namespace (which would hide the same mistake in other
code), we give jraph's own utils module a view of ``jax`` that has it.

``tests/test_compat.py`` fails as soon as jraph no longer needs this, so the
shim can be deleted then.
"""

from __future__ import annotations

import types

import jax

__all__ = ["jraph_needs_tree_map_shim", "install_jraph_shim"]


def jraph_needs_tree_map_shim() -> bool:
    """True when jraph's utils reference ``jax.tree_map`` and JAX lacks it."""
    import inspect

    from jraph._src import utils as jraph_utils

    source = inspect.getsource(jraph_utils)
    return "jax.tree_map(" in source and not hasattr(jax, "tree_map")


class _JaxWithTreeMap(types.ModuleType):
    """A read-through view of the ``jax`` module that also has ``tree_map``."""

    def __init__(self) -> None:
        super().__init__("jax")
        self.tree_map = jax.tree_util.tree_map

    def __getattr__(self, name: str):
        return getattr(jax, name)


def install_jraph_shim() -> None:
    """Point jraph's utils module at a ``jax`` view that has ``tree_map``.

    Idempotent; a no-op when jraph no longer needs it.
    """
    from jraph._src import utils as jraph_utils

    if isinstance(jraph_utils.jax, _JaxWithTreeMap):
        return
    if jraph_needs_tree_map_shim():
        jraph_utils.jax = _JaxWithTreeMap()
