"""PRNG keys: the one validator of a key argument, and the named derivations of the random streams.

Every random stream is derived from the caller's key by ``jax.random.fold_in`` with
a fixed integer. The integers are named here, next to each other, so that no
module hides a magic number and a new stream can be seen not to reuse an old one.
The values are the ones the package has always used: the streams, and so every
result, are unchanged.

Derivations (``k`` is the key the function is given):

============================  ===========================================================
``train.sweep``               run key ``fold_in(key, seed)``; from it ``init``: 0,
                              ``permutation(epoch)``: ``fold_in(fold_in(k, 1), epoch)``,
                              ``dropout(step)``: 2, ``gradient noise(step)``: 3 (same form)
``prune.run_pruning``         pre-training 101, training after level ``i`` 1000 + i (the
                              dense reference is level −1), curvature 7, the pruning step
                              of level ``i`` by method ``m`` 5000 + 97 i + m, and in it the
                              random mask of seed ``s``: ``fold_in(step key, s)``
``prune.Trainer``             the batch order of replica ``r``: ``fold_in(split(key)[r], 1)``
``prune`` spectral density    10 000 (from the curvature key)
``causal`` queries            a query without a key: ``fold_in(fit.key, 1)``
``study``                     :class:`hgcnet_jax.study.keys.StudyKeys` (sweep ``key(seed)``,
                              mediators 1, fit ``i`` 10 + i, effects ``split(fold_in(·, 20))``)
============================  ===========================================================
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

__all__ = [
    "check_key",
    "typed_key",
    "sweep_init",
    "sweep_permutation",
    "sweep_dropout",
    "sweep_noise",
    "prune_pretrain",
    "prune_final",
    "prune_curvature",
    "prune_density",
    "prune_step",
    "prune_random",
    "prune_batches",
    "causal_query",
]


def check_key(key: Any, *, where: str | None = None) -> jax.Array:
    """Check that ``key`` is one PRNG key and return it unchanged.

    Accepted: a typed key (``jax.random.key(0)``) of shape ``()``, or a raw
    ``uint32`` key of shape ``(2,)`` (``jax.random.PRNGKey(0)``, also as a numpy array).

    Args:
        key: the argument to check.
        where: the function it was given to, prefixed to the message (e.g. ``"sweep"``).

    Returns:
        ``key`` itself (a raw key stays raw; see :func:`typed_key`).

    Raises:
        TypeError: ``key`` is not a PRNG key, or is a batch of keys.
    """
    at = f"{where}: " if where else ""
    if key is None or not hasattr(key, "dtype"):
        raise TypeError(f"{at}key must be a JAX PRNG key, e.g. key=jax.random.key(0); got {type(key).__name__}")
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.shape != ():
            raise TypeError(f"{at}key must be a single PRNG key, got a batch of shape {key.shape}")
        return key
    if key.shape != (2,) or key.dtype != jnp.uint32:
        raise TypeError(
            f"{at}key must be a JAX PRNG key (jax.random.key(0) or jax.random.PRNGKey(0)); "
            f"got an array of shape {key.shape} and dtype {key.dtype}"
        )
    return key


def typed_key(key: Any, *, where: str | None = None) -> jax.Array:
    """:func:`check_key`, with a raw ``uint32`` key wrapped into a typed one (``jax.random.wrap_key_data``)."""
    key = check_key(key, where=where)
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key
    return jax.random.wrap_key_data(jnp.asarray(key))


# ---------------------------------------------------------------------------- train.sweep
_SWEEP_INIT, _SWEEP_PERMUTATION, _SWEEP_DROPOUT, _SWEEP_NOISE = 0, 1, 2, 3


def sweep_init(run_key: jax.Array) -> jax.Array:
    """Key of a run's initial parameters (and batch-norm state)."""
    return jax.random.fold_in(run_key, _SWEEP_INIT)


def sweep_permutation(run_key: jax.Array, epoch: jax.Array | int) -> jax.Array:
    """Key of the permutation of the training set in ``epoch``."""
    return jax.random.fold_in(jax.random.fold_in(run_key, _SWEEP_PERMUTATION), epoch)


def sweep_dropout(run_key: jax.Array, step: jax.Array | int) -> jax.Array:
    """Key of the dropout masks of ``step``."""
    return jax.random.fold_in(jax.random.fold_in(run_key, _SWEEP_DROPOUT), step)


def sweep_noise(run_key: jax.Array, step: jax.Array | int) -> jax.Array:
    """Key of the injected gradient noise of ``step``."""
    return jax.random.fold_in(jax.random.fold_in(run_key, _SWEEP_NOISE), step)


# ---------------------------------------------------------------------------- prune.run_pruning
_PRUNE_PRETRAIN = 101
_PRUNE_FINAL = 1000
_PRUNE_CURVATURE = 7
_PRUNE_DENSITY = 10_000
_PRUNE_STEP, _PRUNE_STEP_PER_LEVEL = 5000, 97


def prune_pretrain(key: jax.Array) -> jax.Array:
    """Key of the dense pre-training of :func:`hgcnet_jax.prune.run_pruning`."""
    return jax.random.fold_in(key, _PRUNE_PRETRAIN)


def prune_final(key: jax.Array, level: int) -> jax.Array:
    """Key of the training after pruning level ``level`` (``-1``: the dense reference)."""
    return jax.random.fold_in(key, _PRUNE_FINAL + level)


def prune_curvature(key: jax.Array) -> jax.Array:
    """Key of the curvature measurements (λ_max per replica) after a level."""
    return jax.random.fold_in(key, _PRUNE_CURVATURE)


def prune_density(curvature_key: jax.Array) -> jax.Array:
    """Key of the spectral density of replica 0, from the curvature key."""
    return jax.random.fold_in(curvature_key, _PRUNE_DENSITY)


def prune_step(key: jax.Array, level: int, method_index: int) -> jax.Array:
    """Key of pruning level ``level`` by the method at ``method_index`` of ``prune.METHODS``."""
    return jax.random.fold_in(key, _PRUNE_STEP + _PRUNE_STEP_PER_LEVEL * level + method_index)


def prune_random(step_key: jax.Array, seed: int) -> jax.Array:
    """Key of the random mask of the replica with ``seed``, from its level's :func:`prune_step` key."""
    return jax.random.fold_in(step_key, seed)


_PRUNE_BATCHES = 1


def prune_batches(replica_key: jax.Array) -> jax.Array:
    """Key of the minibatch order of one replica trained or recorded by :class:`hgcnet_jax.prune.Trainer`."""
    return jax.random.fold_in(replica_key, _PRUNE_BATCHES)


# ---------------------------------------------------------------------------- causal queries
_CAUSAL_QUERY = 1


def causal_query(fit_key: jax.Array) -> jax.Array:
    """Key of a do-query on a fit when the caller gives none (common to every query of that fit)."""
    return jax.random.fold_in(fit_key, _CAUSAL_QUERY)
