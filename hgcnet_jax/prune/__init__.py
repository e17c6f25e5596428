"""Granger-causal pruning (Shah et al. 2024) with magnitude and random baselines.

The Lasso in :mod:`hgcnet_jax.prune.lasso` minimises scikit-learn's objective and
returns a duality-gap certificate with every fit.
"""

from hgcnet_jax.prune.solvers import (
    LassoConvergenceWarning,
    LassoPath,
    LassoResult,
    alpha_for_sparsity,
    alpha_max,
    lasso,
    lasso_duality_gap,
    lasso_gram,
    lasso_objective,
    lasso_path,
    soft_threshold,
)

__all__ = [
    "LassoConvergenceWarning",
    "LassoPath",
    "LassoResult",
    "alpha_for_sparsity",
    "alpha_max",
    "lasso",
    "lasso_duality_gap",
    "lasso_gram",
    "lasso_objective",
    "lasso_path",
    "soft_threshold",
]
