"""Mediators of the batch-size effect: gradient noise (N), sharpness (S), complexity (C).

:func:`measure` adds the ``noise_*``, ``sharp_*`` and ``complexity_*`` columns to a
sweep's runs table, all runs measured in one vmapped program. The formulas are
pure functions of pytrees, usable on their own.
"""

from hgcnet_jax.mediators.complexity import (
    distance_from_init,
    effective_parameters,
    l2_norm,
    log_spectral_norm_product_bound,
    pac_bayes_bound,
    spectral_norm,
    spectral_norm_product,
    weight_matrices,
)
from hgcnet_jax.mediators.measure import (
    COLUMNS,
    ERRORS,
    MEDIATORS,
    MeasureConfig,
    default_memory_budget,
    error_column,
    measure,
    measure_params,
    plan_groups,
)
from hgcnet_jax.mediators.noise import (
    GradientNoise,
    TrajectoryNoise,
    gradient_noise,
    per_example_gradients,
    sgd_temperature,
    trajectory_noise,
    two_batch_estimates,
    two_batch_noise,
)
from hgcnet_jax.mediators.probe import Probe, ProbeState, probe, probe_table

__all__ = [
    "measure",
    "measure_params",
    "plan_groups",
    "probe",
    "Probe",
    "ProbeState",
    "probe_table",
    "default_memory_budget",
    "MeasureConfig",
    "MEDIATORS",
    "COLUMNS",
    "ERRORS",
    "error_column",
    "GradientNoise",
    "TrajectoryNoise",
    "trajectory_noise",
    "per_example_gradients",
    "gradient_noise",
    "two_batch_estimates",
    "two_batch_noise",
    "sgd_temperature",
    "l2_norm",
    "distance_from_init",
    "weight_matrices",
    "spectral_norm",
    "spectral_norm_product",
    "log_spectral_norm_product_bound",
    "pac_bayes_bound",
    "effective_parameters",
]
