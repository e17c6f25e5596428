r"""Masks over parameter pytrees: what may be pruned, masked optimisers, budgets.

A *mask* is a pytree with the structure of ``params`` whose leaves are float arrays of
0/1 (1 = kept). Only *prunable* leaves — the weight tensors of linear and
convolutional layers (flax ``kernel`` leaves with ``ndim >= 2``) — are ever set to 0;
biases and normalisation parameters keep a mask of ones (the authors never prune them).

Pruned weights stay exactly zero because the mask is applied **inside the optimiser**
(:func:`masked`): the update is multiplied by the mask after every other
transformation (momentum, Adam moments, weight decay), and the parameters start at
``params * mask``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, ArrayLike

__all__ = [
    "prunable",
    "ones_mask",
    "apply_mask",
    "masked",
    "sparsity",
    "layer_names",
    "flatten_prunable",
    "unflatten_prunable",
    "keep_top",
    "cubic_schedule",
    "geometric_schedule",
]

PyTree = Any


def _path_name(path) -> str:
    parts = []
    for k in path:
        parts.append(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))))
    return "/".join(parts)


def prunable(params: PyTree, *, predicate: Callable[[str, Array], bool] | None = None) -> PyTree:
    """A pytree of Python bools: True for the leaves that may be pruned.

    Args:
        params: the parameters (unstacked, or stacked with a leading replica axis —
            then ``ndim`` counts that axis too; use the unstacked params).
        predicate: ``(path, leaf) -> bool``; default: the leaf's name ends in ``kernel``
            (flax ``Dense`` / ``Conv``) and it has at least 2 dimensions.
    """
    if predicate is None:
        def predicate(path: str, leaf) -> bool:
            return path.split("/")[-1] in ("kernel", "w", "weight") and np.ndim(leaf) >= 2

    return jax.tree_util.tree_map_with_path(lambda p, x: bool(predicate(_path_name(p), x)), params)


def layer_names(params: PyTree, which: PyTree | None = None) -> list[str]:
    """The ``/``-joined paths of the prunable leaves, in ``jax.tree`` order."""
    which = prunable(params) if which is None else which
    flat, _ = jax.tree_util.tree_flatten_with_path(params)
    flags = jax.tree.leaves(which)
    return [_path_name(p) for (p, _), f in zip(flat, flags) if f]


def ones_mask(params: PyTree) -> PyTree:
    """A mask that keeps everything (float ones shaped like ``params``)."""
    return jax.tree.map(lambda x: jnp.ones(jnp.shape(x), jnp.result_type(x)), params)


def apply_mask(params: PyTree, mask: PyTree) -> PyTree:
    """``params * mask`` leafwise."""
    return jax.tree.map(lambda p, m: p * m.astype(p.dtype), params, mask)


def masked(inner: optax.GradientTransformation, mask: PyTree) -> optax.GradientTransformation:
    """``inner`` followed by multiplying the updates by ``mask`` (masked updates).

    Starting from ``params * mask``, every pruned weight stays exactly 0.0 for any
    ``inner`` (SGD, momentum, Adam, weight decay): its update is ``0 * u = 0``.
    ``mask`` may be a traced value (built inside a ``vmap`` over replicas).
    """

    def init_fn(params):
        return inner.init(params)

    def update_fn(updates, state, params=None):
        updates, state = inner.update(updates, state, params)
        return jax.tree.map(lambda u, m: u * m.astype(u.dtype), updates, mask), state

    return optax.GradientTransformation(init_fn, update_fn)


def sparsity(mask: PyTree, which: PyTree) -> Array:
    """Fraction of prunable weights that are pruned (mask 0), over all prunable leaves.

    Per replica; for a stacked mask use ``jax.vmap(lambda m: sparsity(m, which))``.

    Args:
        mask: a mask (unstacked).
        which: :func:`prunable` of the (unstacked) params.
    """
    leaves = [m for m, f in zip(jax.tree.leaves(mask), jax.tree.leaves(which)) if f]
    if not leaves:
        raise ValueError("sparsity: the mask has no prunable leaves")
    zeros = sum(jnp.sum(m == 0) for m in leaves)
    return zeros / sum(m.size for m in leaves)


def flatten_prunable(tree: PyTree, which: PyTree) -> list[Array]:
    """The prunable leaves of ``tree``, each flattened (per replica; vmap for stacked trees)."""
    return [jnp.ravel(x) for x, f in zip(jax.tree.leaves(tree), jax.tree.leaves(which)) if f]


def unflatten_prunable(flat: list[ArrayLike], like: PyTree, which: PyTree, fill: PyTree | None = None) -> PyTree:
    """Inverse of :func:`flatten_prunable`: put ``flat`` back; other leaves from ``fill`` (default ones)."""
    leaves, treedef = jax.tree.flatten(like)
    flags = jax.tree.leaves(which)
    fill_leaves = jax.tree.leaves(fill) if fill is not None else [None] * len(leaves)
    out, i = [], 0
    for x, f, g in zip(leaves, flags, fill_leaves):
        if f:
            out.append(jnp.reshape(jnp.asarray(flat[i], jnp.result_type(x)), jnp.shape(x)))
            i += 1
        else:
            out.append(jnp.ones(jnp.shape(x), jnp.result_type(x)) if g is None else g)
    return jax.tree.unflatten(treedef, out)


def keep_top(scores: np.ndarray, alive: np.ndarray, n_keep: int) -> np.ndarray:
    """Boolean keep-mask: the ``n_keep`` alive entries with the largest scores.

    Ties are broken by position (stable), dead entries are never revived.

    Args:
        scores: ``(P,)`` importance (larger = keep); may be a structured key (use
            :func:`numpy.lexsort` upstream and pass ranks).
        alive: ``(P,)`` bool, currently unpruned.
        n_keep: how many to keep (clipped to ``[0, alive.sum()]``).
    """
    scores = np.asarray(scores, np.float64)
    alive = np.asarray(alive, bool)
    n_keep = int(np.clip(n_keep, 0, alive.sum()))
    s = np.where(alive, scores, -np.inf)
    order = np.argsort(-s, kind="stable")
    keep = np.zeros_like(alive)
    keep[order[:n_keep]] = True
    return keep & alive


def cubic_schedule(final_sparsity: float, n_iterations: int) -> list[float]:
    r"""The cubic schedule :math:`s_i = s\,(1 - (1 - i/N)^3)`, :math:`i = 1..N` (Zhu & Gupta 2017)."""
    if not 0.0 <= final_sparsity < 1.0:
        raise ValueError(f"cubic_schedule: final_sparsity must be in [0, 1), got {final_sparsity}")
    if n_iterations < 1:
        raise ValueError(f"cubic_schedule: n_iterations must be >= 1, got {n_iterations}")
    return [final_sparsity * (1.0 - (1.0 - i / n_iterations) ** 3) for i in range(1, n_iterations + 1)]


def geometric_schedule(rate: float, n_iterations: int) -> list[float]:
    """Prune a fraction ``rate`` of the *remaining* weights per iteration: ``1 - (1-rate)^i``.

    The authors' magnitude baseline used rates of 10 %–27.5 %.
    """
    if not 0.0 < rate < 1.0:
        raise ValueError(f"geometric_schedule: rate must be in (0, 1), got {rate}")
    return [1.0 - (1.0 - rate) ** i for i in range(1, n_iterations + 1)]
