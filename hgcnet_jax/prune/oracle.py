r"""The oracle of importance: what removing a weight (or a whole unit) does to the loss.

A pruning score is meant to rank weights by how much the network needs them. The most
direct measure of that need is the *removal effect*

.. math:: \Delta_j = L(\theta \odot (1 - e_j)) - L(\theta),

the increase of the loss on a fixed sample when weight :math:`j` alone is set to zero
(for a unit: all the weights of one output neuron or filter at once). It is exact on the
sample, not a Taylor approximation, and costs one forward pass per weight, so it is
measured on a sample of weights (:func:`sample_weights`) and compared with a method's
scores by rank correlation (:func:`rank_agreement`).

Every function takes stacked parameters (replicas on axis 0) and measures every replica in one program.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from hgcnet_jax.prune.masks import flatten_prunable, unflatten_prunable
from hgcnet_jax.prune.structured import output_groups

__all__ = ["removal_oracle", "unit_removal_oracle", "sample_weights", "rank_agreement"]

PyTree = Any


def _removal(loss_fn, params: PyTree, which: PyTree, ids: np.ndarray, items: np.ndarray, chunk: int) -> np.ndarray:
    r"""``L(θ with every weight of id == item zeroed) - L(θ)`` for every replica and item.

    ``ids`` is ``(P,)``: an id per flat prunable weight (``-1``: never removed). One
    compiled program, vmapped over the replicas and over ``chunk`` items at a time.
    """
    unstacked = jax.tree.map(lambda x: x[0], params)
    sizes = [int(np.size(x)) for x in flatten_prunable(unstacked, which)]
    splits = np.cumsum(sizes)[:-1]
    ids = jnp.asarray(ids)

    def one(p, it):
        flat = jnp.concatenate([jnp.ravel(x) for x in flatten_prunable(p, which)])

        def removed(i):
            w = jnp.where(ids == i, jnp.zeros((), flat.dtype), flat)
            return loss_fn(unflatten_prunable(jnp.split(w, splits), p, which, fill=p))

        return jax.vmap(removed)(it) - loss_fn(p)

    fn = jax.jit(jax.vmap(one, in_axes=(0, None)))
    n = int(items.shape[0])
    S = int(jax.tree.leaves(params)[0].shape[0])
    out = np.empty((S, n), np.float64)
    for lo in range(0, n, chunk):
        part = items[lo: lo + chunk]
        pad = chunk - part.shape[0]
        if pad:                                  # one compiled shape for every call
            part = np.concatenate([part, np.repeat(part[-1:], pad)])
        out[:, lo: lo + chunk] = np.asarray(fn(params, jnp.asarray(part)), np.float64)[:, : chunk - pad]
    return out


def removal_oracle(loss_fn: Callable[[PyTree], jax.Array], params: PyTree, which: PyTree, indices, *,
                   chunk: int = 16) -> np.ndarray:
    r"""Loss increase :math:`\Delta_j` when each prunable weight ``indices[j]`` alone is zeroed, every replica.

    Args:
        loss_fn: ``params -> scalar`` on a fixed sample (eval mode, no randomness), so
            that every removal is measured on the same examples.
        params: stacked ``(S, ...)`` parameters (replicas on axis 0).
        which: :func:`~hgcnet_jax.prune.prunable` flags of one replica's parameters.
        indices: ``(K,)`` positions in the flat prunable vector (the order of
            :func:`~hgcnet_jax.prune.masks.flatten_prunable`).
        chunk: removals per vmapped call (memory: ``S·chunk`` forward passes at once).

    Returns:
        ``(S, K)`` float64 loss increases (0, to float rounding, for a weight that is already zero).
    """
    P = sum(int(np.size(x)) for x in flatten_prunable(jax.tree.map(lambda x: x[0], params), which))
    idx = np.asarray(indices, np.int64).reshape(-1)
    if idx.size and (idx.min() < 0 or idx.max() >= P):
        raise ValueError(f"removal_oracle: indices must lie in [0, {P}), got [{idx.min()}, {idx.max()}]")
    if chunk < 1:
        raise ValueError(f"removal_oracle: chunk must be >= 1, got {chunk}")
    return _removal(loss_fn, params, which, np.arange(P), idx, int(chunk))


def unit_removal_oracle(loss_fn: Callable[[PyTree], jax.Array], params: PyTree, which: PyTree,
                        layer_slices: dict[str, slice], layer_shapes: dict[str, tuple], *,
                        layers=None, chunk: int = 16) -> dict[str, np.ndarray]:
    """Loss increase when each output unit (the last axis of a kernel) of a layer is removed, every replica.

    Args:
        loss_fn, params, which, chunk: as in :func:`removal_oracle`.
        layer_slices, layer_shapes: name → slice of the flat prunable vector, and the
            kernel's shape (its last axis indexes the units).
        layers: the layers to measure (default: all).

    Returns:
        ``{layer: (S, units) float64}``.
    """
    layers = list(layer_slices) if layers is None else list(layers)
    unknown = [n for n in layers if n not in layer_slices]
    if unknown:
        raise ValueError(f"unit_removal_oracle: unknown layers {unknown}; layers: {list(layer_slices)}")
    P = max(sl.stop for sl in layer_slices.values())
    ids = np.full(P, -1, np.int64)
    first = {}
    nxt = 0
    for name in layers:
        sl, shape = layer_slices[name], tuple(layer_shapes[name])
        ids[sl] = nxt + output_groups(shape)
        first[name] = (nxt, shape[-1])
        nxt += shape[-1]
    res = _removal(loss_fn, params, which, ids, np.arange(nxt), int(chunk))
    return {name: res[:, a: a + n] for name, (a, n) in first.items()}


def sample_weights(layer_slices: dict[str, slice], per_layer: int, *, key: jax.Array) -> dict[str, np.ndarray]:
    """A uniform sample of ``per_layer`` flat indices of every layer (all of a smaller layer), sorted."""
    out = {}
    for i, (name, sl) in enumerate(layer_slices.items()):
        n = sl.stop - sl.start
        if n <= per_layer:
            out[name] = np.arange(sl.start, sl.stop)
        else:
            pick = np.asarray(jax.random.choice(jax.random.fold_in(key, i), n, (per_layer,), replace=False))
            out[name] = np.sort(pick + sl.start)
    return out


def rank_agreement(score: np.ndarray, oracle: np.ndarray) -> float:
    """Spearman rank correlation of a method's scores with the oracle (ties get mid-ranks).

    ``nan`` when either side is constant (e.g. every score tied), where no ranking exists.
    """
    from scipy.stats import spearmanr

    score = np.asarray(score, np.float64)
    oracle = np.asarray(oracle, np.float64)
    if score.shape != oracle.shape:
        raise ValueError(f"rank_agreement: score {score.shape} and oracle {oracle.shape} differ in shape")
    if score.size < 3 or np.ptp(score) == 0 or np.ptp(oracle) == 0:
        return float("nan")
    return float(spearmanr(score, oracle).statistic)
