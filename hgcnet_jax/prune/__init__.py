"""Granger-causal pruning (Shah et al. 2024) with magnitude and random baselines.

* :mod:`~hgcnet_jax.prune.solvers` — the Lasso with scikit-learn's objective and a
  duality-gap certificate on every fit (working sets + Gap Safe screening, covariance
  coordinate descent, FISTA, the authors' truncated-gradient SGD), paths, and α by
  target sparsity.
* :mod:`~hgcnet_jax.prune.record` — masked training vmapped over seeds and the
  recorder of loss changes and parameter updates, full or streamed into sufficient
  statistics (:class:`GrangerStats`, with its memory bound).
* :mod:`~hgcnet_jax.prune.granger` — the Granger regression and keep rules, magnitude
  and random baselines; :mod:`~hgcnet_jax.prune.structured` — the group-Lasso variant
  that removes whole output units (method ``"granger_structured"``).
* :mod:`~hgcnet_jax.prune.procedure` — the iterative procedure (pre-train, prune,
  reset, retrain) for every method under one budget; :mod:`~hgcnet_jax.prune.analysis`
  — curves, phase-shift points, paired tests, plots; :mod:`~hgcnet_jax.prune.oracle` — the
  oracle of importance (the loss increase when a weight or a unit is removed);
  :mod:`~hgcnet_jax.prune.cli` — ``hgcnet prune``.
"""

from hgcnet_jax.prune.analysis import (
    PairedComparison,
    PhaseShift,
    hinge_fit,
    paired_comparison,
    phase_shift,
    plot_curves,
    plot_spectra,
    summarize,
)
from hgcnet_jax.prune.granger import (
    GrangerFit,
    granger_fit,
    granger_fit_gram,
    granger_keep,
    granger_keep_stats,
    granger_keep_stats_batch,
    magnitude_keep,
    random_keep,
)
from hgcnet_jax.prune.masks import (
    apply_mask,
    cubic_schedule,
    geometric_schedule,
    keep_top,
    masked,
    ones_mask,
    prunable,
    sparsity,
)
from hgcnet_jax.prune.procedure import DEFAULT_METHODS, METHODS, PruneConfig, PruneResult, run_pruning
from hgcnet_jax.prune.oracle import rank_agreement, removal_oracle, sample_weights, unit_removal_oracle
from hgcnet_jax.prune.record import EarlyStopped, GrangerStats, Recording, Trainer
from hgcnet_jax.prune.solvers import (
    STATUSES,
    CoordinateDescent,
    Fista,
    LassoConvergenceWarning,
    LassoPath,
    LassoPrecisionWarning,
    LassoResult,
    TruncatedSGD,
    WorkingSet,
    alpha_for_sparsity,
    alpha_max,
    lasso,
    lasso_batch,
    lasso_duality_gap,
    lasso_gram,
    lasso_objective,
    lasso_path,
    soft_threshold,
)
from hgcnet_jax.prune.structured import (
    group_alpha_max,
    group_lasso,
    group_lasso_gram,
    output_groups,
    structured_granger_keep,
    structured_granger_keep_stats,
)

__all__ = [
    # Lasso
    "LassoConvergenceWarning",
    "LassoPath",
    "LassoPrecisionWarning",
    "LassoResult",
    "STATUSES",
    "WorkingSet",
    "CoordinateDescent",
    "Fista",
    "TruncatedSGD",
    "alpha_for_sparsity",
    "alpha_max",
    "lasso",
    "lasso_batch",
    "lasso_duality_gap",
    "lasso_gram",
    "lasso_objective",
    "lasso_path",
    "soft_threshold",
    "group_lasso",
    "group_lasso_gram",
    "group_alpha_max",
    # masks
    "prunable",
    "ones_mask",
    "apply_mask",
    "masked",
    "sparsity",
    "keep_top",
    "cubic_schedule",
    "geometric_schedule",
    # recording and scoring
    "Recording",
    "GrangerStats",
    "Trainer",
    "EarlyStopped",
    "GrangerFit",
    "granger_fit",
    "granger_fit_gram",
    "granger_keep",
    "granger_keep_stats",
    "granger_keep_stats_batch",
    "magnitude_keep",
    "random_keep",
    "output_groups",
    "structured_granger_keep",
    "structured_granger_keep_stats",
    # procedure and analysis
    "METHODS",
    "DEFAULT_METHODS",
    "PruneConfig",
    "PruneResult",
    "run_pruning",
    "PhaseShift",
    "hinge_fit",
    "phase_shift",
    "summarize",
    "plot_curves",
    "plot_spectra",
    "PairedComparison",
    "paired_comparison",
    # the oracle of importance
    "removal_oracle",
    "unit_removal_oracle",
    "sample_weights",
    "rank_agreement",
]
