"""Refutations in the style of DoWhy (Sharma & Kiciman 2020): re-estimate under
changes that should (placebo) or should not (common cause, subset) move the estimate.

* **placebo treatment** — the treatment column is randomly permuted, cutting any
  real effect: the re-estimated ATE should be near 0 (its interval should cover 0);
* **random common cause** — an independent standard-Normal covariate is added as a
  parent of the treatment and of the outcome: the estimate should not move;
* **data subset** — the model is refitted on a random fraction of the runs: the
  estimate should stay inside the original interval (it gets wider, not different).

Each refutation refits the model with the original fit's settings (or overrides) and
reports the new estimate side by side with the original.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np
import pandas as pd

from .effects import Effect, ate
from .fit import Fit
from .hypergraph import Edge, Variable
from .inference import fit as _fit

__all__ = ["REFUTERS", "refute"]

REFUTERS = ("placebo_treatment", "random_common_cause", "data_subset")


def _perm(key: jax.Array, n: int) -> np.ndarray:
    return np.asarray(jax.random.permutation(key, n))


def refute(
    fit: Fit,
    treatment: str,
    a: Any,
    b: Any,
    outcome: str,
    *,
    key: jax.Array,
    refuters: tuple[str, ...] = REFUTERS,
    subset_fraction: float = 0.8,
    prob: float = 0.9,
    **fit_overrides: Any,
) -> pd.DataFrame:
    """Run refutations of the ATE ``E[outcome | do(a)] − E[outcome | do(b)]``.

    Args:
        fit: The fit whose estimate is refuted.
        treatment, a, b, outcome: The contrast, as for :func:`~hgcnet_jax.causal.ate`.
        key: PRNG key (permutation, random covariate, subset and refits).
        refuters: Which of :data:`REFUTERS` to run.
        subset_fraction: Fraction of runs kept by ``"data_subset"``.
        prob: Credible-interval level.
        **fit_overrides: :class:`~hgcnet_jax.causal.FitConfig` fields for the refits
            (default: the original fit's settings).

    Returns:
        One row per refuter: ``refuter, estimate, estimate_lower, estimate_upper,
        new_estimate, new_lower, new_upper, passed, criterion``.

    Raises:
        ValueError: on an unknown refuter or a bad ``subset_fraction``.
    """
    if not isinstance(fit, Fit):
        raise TypeError(f"fit must be a hgcnet_jax.causal.Fit, got {type(fit).__name__}")
    unknown = [r for r in refuters if r not in REFUTERS]
    if unknown:
        raise ValueError(f"unknown refuter(s) {unknown}; choose from {REFUTERS}")
    if not 0.0 < subset_fraction < 1.0:
        raise ValueError(f"subset_fraction must be in (0, 1), got {subset_fraction!r}")
    if treatment != fit.graph.treatment:
        raise ValueError(f"treatment {treatment!r} must be the graph's treatment {fit.graph.treatment!r}")
    base = ate(fit, treatment, a, b, outcome, prob=prob)
    config = dataclasses.replace(fit.config, **fit_overrides) if fit_overrides else fit.config
    graph, data = fit.graph, fit.data
    col = graph.variable(treatment).column
    keys = dict(zip(REFUTERS, jax.random.split(key, len(REFUTERS)), strict=True))
    rows = []
    for name in refuters:
        k_data, k_fit = jax.random.split(keys[name])
        if name == "placebo_treatment":
            table = data.copy()
            table[col] = data[col].to_numpy()[_perm(k_data, len(data))]
            g = graph
        elif name == "random_common_cause":
            cc = "_random_common_cause"
            while cc in data.columns or cc in graph.names:
                cc = "_" + cc
            table = data.copy()
            table[cc] = np.asarray(jax.random.normal(k_data, (len(data),)), dtype=np.float64)
            g = graph.replace(
                variables=(*graph.variables, Variable(cc, "covariate")),
                edges=(*graph.edges, Edge(cc, treatment), Edge(cc, outcome)),
            )
        else:
            m = max(int(round(subset_fraction * len(data))), 2)
            table = data.iloc[np.sort(_perm(k_data, len(data))[:m])].reset_index(drop=True)
            g = graph
        new = ate(_fit(g, table, key=k_fit, config=config), treatment, a, b, outcome, prob=prob)
        passed, criterion = _judge(name, base, new)
        rows.append(
            {
                "refuter": name,
                "estimate": base.mean,
                "estimate_lower": base.lower,
                "estimate_upper": base.upper,
                "new_estimate": new.mean,
                "new_lower": new.lower,
                "new_upper": new.upper,
                "passed": passed,
                "criterion": criterion,
            }
        )
    return pd.DataFrame(rows)


def _judge(name: str, base: Effect, new: Effect) -> tuple[bool, str]:
    if name == "placebo_treatment":
        return new.covers(0.0), "new interval covers 0"
    return base.covers(new.mean), "new estimate inside the original interval"
