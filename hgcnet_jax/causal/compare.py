"""Model comparison by PSIS-LOO: does the hyperedge earn its keep?

The two graphs compared (a hypergraph and its pairwise twin) differ only in the
structural equation of the hyperedge's child, so the outcome's own likelihood
``p(G | C, …)`` cannot tell them apart. We therefore score each run by the *joint*
log density of all its endogenous variables, ``log p(B, N, S, C, G | θ)`` summed over
the variables' structural equations (cut equations excluded): the predictive density
of a whole run, which is what a causal structure claims to predict.
PSIS-LOO (Vehtari, Gelman & Gabry 2017) is computed by :func:`arviz.loo` and
:func:`arviz.compare` on the ``"joint"`` entry of each fit's ``log_likelihood`` group.
"""

from __future__ import annotations

import dataclasses
import warnings

import arviz as az
import numpy as np
import pandas as pd

from .fit import Fit

__all__ = ["LooComparison", "loo_compare"]


@dataclasses.dataclass(frozen=True)
class LooComparison:
    """PSIS-LOO comparison of two fits on the same runs.

    Attributes:
        name_a, name_b: Labels of the two fits (graph names by default).
        elpd_a, elpd_b: Their expected log pointwise predictive densities.
        se_a, se_b: Standard errors of those.
        diff: ``elpd_a − elpd_b`` (positive: ``a`` predicts held-out runs better).
        se_diff: Standard error of the difference, from the paired pointwise
            differences: ``sqrt(n · var(elpd_a,i − elpd_b,i))``.
        z: ``diff / se_diff``.
        max_pareto_k: Largest Pareto-k over both fits (> 0.7 makes LOO unreliable).
        table: :func:`arviz.compare`'s table (ranks, weights, warnings).
    """

    name_a: str
    name_b: str
    elpd_a: float
    elpd_b: float
    se_a: float
    se_b: float
    diff: float
    se_diff: float
    z: float
    max_pareto_k: float
    table: pd.DataFrame = dataclasses.field(repr=False)

    def prefers_a(self, threshold: float = 2.0) -> bool:
        """Whether ``a`` is better by more than ``threshold`` standard errors."""
        return self.diff > threshold * self.se_diff


def loo_compare(fit_a: Fit, fit_b: Fit, *, names: tuple[str, str] | None = None) -> LooComparison:
    """Compare two fits of the same table by PSIS-LOO on the joint per-run log density.

    Args:
        fit_a: Usually the hypergraph fit.
        fit_b: Usually the pairwise twin's fit (``graph.pairwise()``).
        names: Labels (default: the graphs' names, suffixed if equal).

    Returns:
        A :class:`LooComparison`; ``diff > 2 · se_diff`` is the usual threshold for a
        clear preference.

    Raises:
        TypeError: if either argument is not a :class:`Fit`.
        ValueError: if the fits were made on tables with different numbers of runs.
    """
    for nm, f in (("fit_a", fit_a), ("fit_b", fit_b)):
        if not isinstance(f, Fit):
            raise TypeError(f"{nm} must be a hgcnet_jax.causal.Fit, got {type(f).__name__}")
    if fit_a.num_rows != fit_b.num_rows:
        raise ValueError(
            f"fit_a and fit_b must be fitted on the same runs; got {fit_a.num_rows} and {fit_b.num_rows} rows"
        )
    if names is None:
        na, nb = fit_a.graph.name, fit_b.graph.name
        names = (na, nb) if na != nb else (f"{na}-a", f"{nb}-b")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Pareto.*")
        warnings.filterwarnings("ignore", message=".*shape parameter.*")
        loo_a = az.loo(fit_a.idata, pointwise=True, var_name="joint")
        loo_b = az.loo(fit_b.idata, pointwise=True, var_name="joint")
        table = az.compare({names[0]: fit_a.idata, names[1]: fit_b.idata}, var_name="joint")
    pa = np.asarray(loo_a.loo_i).ravel()
    pb = np.asarray(loo_b.loo_i).ravel()
    d = pa - pb
    diff = float(d.sum())
    se = float(np.sqrt(d.size * np.var(d)))
    k = max(float(np.max(loo_a.pareto_k)), float(np.max(loo_b.pareto_k)))
    return LooComparison(
        name_a=names[0],
        name_b=names[1],
        elpd_a=float(loo_a.elpd_loo),
        elpd_b=float(loo_b.elpd_loo),
        se_a=float(loo_a.se),
        se_b=float(loo_b.se),
        diff=diff,
        se_diff=se,
        z=diff / se if se > 0 else float("inf") * np.sign(diff),
        max_pareto_k=k,
        table=table,
    )
