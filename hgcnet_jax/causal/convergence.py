"""MCMC convergence of a fit: one table of per-parameter statistics and one verdict.

:func:`summarise` turns a posterior (readable names, ``(chain, draw, ...)`` draws) into
one row per scalar parameter: mean, sd, rank-normalised split-R-hat and bulk and tail
effective sample sizes (ArviZ; Vehtari et al. 2021). A fit stores that table
(:attr:`hgcnet_jax.causal.Fit.diagnostics`, computed the same way whether the fit was
just made or rebuilt from its netCDF posterior), and :func:`diagnostics` reads the one
verdict off it, against the fit's own thresholds: the
:class:`ConvergenceWarning` of :func:`hgcnet_jax.causal.fit` and the study's MCMC
diagnostics are that verdict.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import arviz as az
import numpy as np
import pandas as pd

__all__ = ["ConvergenceWarning", "Diagnostics", "summarise", "extreme", "diagnostics"]


class ConvergenceWarning(UserWarning):
    """MCMC diagnostics look bad (r_hat, effective sample size or divergences)."""


class Diagnostics(NamedTuple):
    """The convergence verdict of a fit (see :func:`diagnostics`).

    Attributes:
        table: One row per scalar parameter (the fit's ``diagnostics`` table).
        max_r_hat: Worst rank-normalised split-R-hat (NaN with fewer than two chains).
        min_ess_bulk: Smallest bulk effective sample size.
        min_ess_tail: Smallest tail effective sample size.
        num_divergences: Divergent NUTS transitions after warm-up.
        num_chains: Chains in the posterior.
        r_hat_threshold: ``config.max_r_hat``.
        ess_threshold: ``config.min_ess_per_chain × config.num_chains``.
        problems: What is wrong, one phrase each (empty when nothing is).
        ok: NUTS and no problem (a fit by SVI has no MCMC diagnostics to pass).
    """

    table: pd.DataFrame
    max_r_hat: float
    min_ess_bulk: float
    min_ess_tail: float
    num_divergences: int
    num_chains: int
    r_hat_threshold: float
    ess_threshold: float
    problems: tuple[str, ...]
    ok: bool


def summarise(posterior: Mapping[str, Any]) -> pd.DataFrame:
    """One row per scalar parameter: ``site, mean, sd, r_hat, ess, ess_tail``.

    ``mean`` and ``sd`` (``ddof=1``) are over all draws; ``r_hat`` is ArviZ's
    rank-normalised split-R-hat (NaN with fewer than two chains: it compares chains),
    ``ess`` and ``ess_tail`` its bulk and tail effective sample sizes. Array-valued
    sites get one row per element, named ``site[i, j]``.

    Args:
        posterior: ``{name: (chain, draw, ...)}`` draws, e.g. an ArviZ posterior group.

    Returns:
        The table, one row per scalar parameter in the posterior's order.
    """
    post = {k: np.asarray(posterior[k]) for k in posterior}
    ds = az.convert_to_dataset(post)
    chains = int(ds.sizes.get("chain", 1))
    r_hat = az.rhat(ds) if chains >= 2 else None
    bulk = az.ess(ds, method="bulk")
    tail = az.ess(ds, method="tail")
    rows = []
    for name, value in post.items():
        flat = value.reshape((-1,) + value.shape[2:])
        mean, sd = flat.mean(axis=0), flat.std(axis=0, ddof=1)
        rh = np.full(mean.shape, np.nan) if r_hat is None else np.asarray(r_hat[name])
        eb, et = np.asarray(bulk[name]), np.asarray(tail[name])
        for i in range(mean.size):
            idx = "" if mean.ndim == 0 else str(list(np.unravel_index(i, mean.shape)))
            rows.append({"site": name + idx, "mean": float(mean.flat[i]), "sd": float(sd.flat[i]),
                         "r_hat": float(rh.flat[i]), "ess": float(eb.flat[i]), "ess_tail": float(et.flat[i])})
    return pd.DataFrame(rows, columns=["site", "mean", "sd", "r_hat", "ess", "ess_tail"])


def extreme(table: pd.DataFrame, column: str, worst: str) -> tuple[float, str | None]:
    """The worst finite value of a column of a diagnostics table and the site holding it.

    Args:
        table: A table from :func:`summarise`.
        column: ``"r_hat"``, ``"ess"`` or ``"ess_tail"``.
        worst: ``"max"`` or ``"min"``.

    Returns:
        ``(value, site)``; ``(nan, None)`` when the column is missing or has no finite value.
    """
    col = table.get(column)
    if col is None:
        return float("nan"), None
    vals = np.asarray(col, dtype=np.float64)
    finite = np.isfinite(vals)
    if not finite.any():
        return float("nan"), None
    i = int(np.flatnonzero(finite)[np.argmax(vals[finite]) if worst == "max" else np.argmin(vals[finite])])
    return float(vals[i]), str(table["site"].iloc[i])


def diagnostics(fit: Any) -> Diagnostics:
    """The convergence verdict of a :class:`~hgcnet_jax.causal.Fit`.

    Read off the fit's ``diagnostics`` table against its own thresholds: a problem is
    a split-R-hat above ``config.max_r_hat``, a bulk or tail effective sample size below
    ``config.min_ess_per_chain × config.num_chains``, or any divergent transition.
    This is the one verdict: :func:`hgcnet_jax.causal.fit` warns
    (:class:`ConvergenceWarning`) with exactly these problems, and the study reports it.

    Args:
        fit: A :class:`~hgcnet_jax.causal.Fit`.

    Returns:
        A :class:`Diagnostics`.
    """
    cfg, table = fit.config, fit.diagnostics
    chains = int(fit.idata.posterior.sizes.get("chain", 1))
    ess_min = cfg.min_ess_per_chain * cfg.num_chains
    max_r_hat, at_r_hat = extreme(table, "r_hat", "max")
    min_bulk, at_bulk = extreme(table, "ess", "min")
    min_tail, at_tail = extreme(table, "ess_tail", "min")
    problems = []
    if max_r_hat > cfg.max_r_hat:
        problems.append(f"max r_hat {max_r_hat:.3f} > {cfg.max_r_hat} (at {at_r_hat})")
    if min_bulk < ess_min:
        problems.append(f"min effective sample size {min_bulk:.0f} < {ess_min:.0f} (at {at_bulk})")
    if min_tail < ess_min:
        problems.append(f"min tail effective sample size {min_tail:.0f} < {ess_min:.0f} (at {at_tail})")
    if fit.num_divergences > 0:
        problems.append(f"{fit.num_divergences} divergent transition(s)")
    return Diagnostics(table=table, max_r_hat=max_r_hat, min_ess_bulk=min_bulk, min_ess_tail=min_tail,
                       num_divergences=int(fit.num_divergences), num_chains=chains,
                       r_hat_threshold=float(cfg.max_r_hat), ess_threshold=float(ess_min),
                       problems=tuple(problems), ok=cfg.method == "nuts" and not problems)
