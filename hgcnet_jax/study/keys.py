"""Every PRNG key of a study, derived once from its seed.

A study's randomness is one seed (``StudyConfig.seed``); each phase draws from its own
stream, named here, so no module repeats another's key splits and a resumed study
rebuilds exactly the keys the first run used. The derivations are those the study has
always used (the same numbers), so results stay what they were.
"""

from __future__ import annotations

from typing import NamedTuple

import jax

__all__ = ["StudyKeys"]


class StudyKeys(NamedTuple):
    """The keys of one study.

    Attributes:
        sweep: the training sweep (``train.sweep``: each run folds in its seed).
        mediators: the mediator measurement (``mediators.measure``).
        fits: one key per candidate graph, in :data:`hgcnet_jax.config.CANDIDATES` order
            (``hypergraph`` and ``pairwise`` first, as they always were).
        permutation: the frequentist permutation test of the arms.
        refutations: the refuters (split once more, one per refuter).
        criticism: the criticism of every candidate (folded with its position in
            ``CANDIDATES``).
        sensitivity: the bootstrap of the NIE's sensitivity analysis.
        arms: the bootstrap of the design-based arm estimates.
    """

    sweep: jax.Array
    mediators: jax.Array
    fits: tuple
    permutation: jax.Array
    refutations: jax.Array
    criticism: jax.Array
    sensitivity: jax.Array
    arms: jax.Array

    @classmethod
    def of(cls, seed: int, num_graphs: int = 2) -> "StudyKeys":
        """The keys of the study with ``seed``."""
        root = jax.random.key(seed)
        permutation, refutations = jax.random.split(jax.random.fold_in(root, 20))
        return cls(
            sweep=root,
            mediators=jax.random.fold_in(root, 1),
            fits=tuple(jax.random.fold_in(root, 10 + i) for i in range(num_graphs)),
            permutation=permutation,
            refutations=refutations,
            criticism=jax.random.fold_in(root, 30),
            sensitivity=jax.random.fold_in(root, 31),
            arms=jax.random.fold_in(root, 32),
        )
