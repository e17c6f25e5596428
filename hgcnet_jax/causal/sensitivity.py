"""Sensitivity of the natural indirect effect to mediator–outcome confounding.

The NIE is identified only if nothing unobserved drives both the mediator and the
outcome (sequential ignorability; the treatment itself is randomised in a sweep).
Imai, Keele & Yamamoto (2010, "Identification, inference and sensitivity analysis for
causal mediation effects", *Statistical Science* 25(1), Theorem 2; and Imai, Keele &
Tingley 2010, *Psychological Methods*) measure a violation by ``ρ``, the correlation of
the errors of the mediator and outcome equations

.. math::

    Y &= α_1 + β_1 T + ξ_1ᵀ X + ε_1            \\\\
    M &= α_2 + β_2 T + ξ_2ᵀ X + ε_2            \\\\
    Y &= α_3 + β_3 T + γ M + ξ_3ᵀ X + ε_3,\\qquad ρ = \\operatorname{corr}(ε_2, ε_3),

and show that the average causal mediation effect (per unit of ``T``) is

.. math::

    \\mathrm{ACME}(ρ) = \\frac{β_2 σ_1}{σ_2}\\Big(\\tilde ρ − ρ \\sqrt{(1 − \\tilde ρ^2)/(1 − ρ^2)}\\Big),

with ``σ_j`` the standard deviation of ``ε_j`` and ``ρ̃ = corr(ε_1, ε_2)``; at ``ρ = 0`` it
is the product of coefficients ``β_2 γ``. :func:`nie_sensitivity` applies this to a
fitted graph whose indirect paths all pass through one *gate* mediator (a parent of the
outcome; ``C`` in the paper's graph, where ``B → N → S → C → G``): ``T``, ``M``, ``Y`` are
the model-scale (transformed, standardised) values of the treatment, the gate and the
outcome, ``X`` the covariates; the treatment's contrast ``a`` vs ``b`` scales the ACME.
The interval at each ``ρ`` is a percentile bootstrap over runs (the three regressions
refitted per resample). The summary is ``ρ̃``, where the point estimate crosses 0, and
the ``ρ`` of smallest magnitude at which the interval first contains 0: a confounder
whose induced error correlation is below that leaves the sign of the NIE established.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pandas as pd

from hgcnet_jax._keys import check_key as _check_key

from .data import Scaling, prepare
from .effects import _check_fit, _check_prob
from .fit import Fit
from .hypergraph import Hypergraph

__all__ = ["Sensitivity", "nie_sensitivity"]


@dataclasses.dataclass(frozen=True)
class Sensitivity:
    """The NIE as a function of the mediator–outcome error correlation ``ρ``.

    Attributes:
        treatment, mediator, outcome: The variables (``mediator`` is the gate).
        a, b: The contrast (raw treatment units).
        units: ``"raw"`` (the outcome's own units) or the outcome's transform name
            when the outcome is modelled on a transformed scale (e.g. ``"logit"``).
        nie: Point estimate at ``ρ = 0`` (the product of coefficients).
        lower, upper: Its bootstrap interval at ``prob``.
        rho_zero: ``ρ̃``: the ``ρ`` at which the point estimate is 0.
        rho_interval: The ``ρ`` nearest 0 at which the interval contains 0 (0.0 when
            it already does at ``ρ = 0``; NaN when it never does on the grid).
        prob: The interval level.
        table: One row per grid value: ``rho, nie, lower, upper, covers_zero``.
    """

    treatment: str
    mediator: str
    outcome: str
    a: float
    b: float
    units: str
    nie: float
    lower: float
    upper: float
    rho_zero: float
    rho_interval: float
    prob: float
    table: pd.DataFrame = dataclasses.field(repr=False)


def _gate(fit: Fit, treatment: str, outcome: str, mediator: str | None) -> str:
    g = fit.graph
    med = [m for m in g.parents(outcome) if m in g.descendants(treatment)]
    if mediator is None:
        if len(med) != 1:
            raise ValueError(
                f"nie_sensitivity needs one gate mediator (a parent of {outcome!r} that {treatment!r} reaches); "
                f"found {med}: pass mediator= (the sensitivity then concerns the indirect effect through it)"
            )
        mediator = med[0]
    if mediator not in med:
        raise ValueError(f"mediator {mediator!r} must be a parent of {outcome!r} on a path from {treatment!r}; candidates: {med}")
    return mediator


def _design(fit: Fit, treatment: str) -> np.ndarray:
    n = fit.num_rows
    cols = [np.ones(n), np.asarray(fit.observed[treatment], dtype=np.float64)]
    for c in fit.graph.covariates:
        v = np.asarray(fit.inputs[c])
        if fit.graph.variable(c).categorical:
            cols += list(np.eye(len(fit.scaling.levels[c]))[v][:, 1:].T)
        else:
            cols.append(v.astype(np.float64))
    return np.stack(cols, axis=1)


def _params(x: np.ndarray, y: np.ndarray, m: np.ndarray):
    """β₂, σ₁, σ₂, ρ̃ for batches of resampled rows (leading axis)."""
    xtx = np.einsum("bni,bnj->bij", x, x)
    xty = np.einsum("bni,bnk->bik", x, np.stack([y, m], axis=-1))
    coef = np.linalg.solve(xtx + 1e-10 * np.eye(x.shape[-1]), xty)  # (b, p, 2)
    res = np.stack([y, m], axis=-1) - np.einsum("bnp,bpk->bnk", x, coef)
    dof = x.shape[1] - x.shape[2]
    s1 = np.sqrt((res[..., 0] ** 2).sum(-1) / dof)
    s2 = np.sqrt((res[..., 1] ** 2).sum(-1) / dof)
    rt = (res[..., 0] * res[..., 1]).sum(-1) / dof / (s1 * s2)
    return coef[:, 1, 1], s1, s2, np.clip(rt, -0.999999, 0.999999)


def _acme(beta2, s1, s2, rt, rho):
    """ACME(ρ) per unit of the treatment: ``(len(rho), batch)`` for a grid, ``(batch,)`` for a scalar ``ρ``."""
    rho = np.asarray(rho, dtype=np.float64)
    r = rho[..., None] if rho.ndim else rho
    return beta2 * s1 / s2 * (rt - r * np.sqrt((1 - rt**2) / (1 - r**2)))


@dataclasses.dataclass(frozen=True)
class _Prepared:
    """What the sensitivity analysis reads off a fit: its graph and model-scale table."""

    graph: Hypergraph
    inputs: dict
    observed: dict
    scaling: Scaling

    @property
    def num_rows(self) -> int:
        return int(self.inputs["rows"].shape[0])


def nie_sensitivity(
    fit: Fit | Hypergraph,
    a: float,
    b: float,
    *,
    key: jax.Array,
    table: pd.DataFrame | None = None,
    mediator: str | None = None,
    outcome: str | None = None,
    prob: float = 0.9,
    num_bootstrap: int = 2000,
    grid: int = 397,
) -> Sensitivity:
    """How strong a mediator–outcome confounder must be to explain the NIE away (see the module docstring).

    Args:
        fit: A fitted graph (its table and graph are used; not its posterior), or a
            :class:`Hypergraph` together with ``table``.
        a, b: Treatment level and reference, raw units (e.g. 16 and 512).
        key: PRNG key of the bootstrap.
        table: The runs table, when ``fit`` is a graph.
        mediator: The gate mediator (default: the outcome's only parent that the
            treatment reaches).
        outcome: Default: the graph's first outcome.
        prob: Interval level.
        num_bootstrap: Bootstrap resamples.
        grid: Number of ``ρ`` values on ``(−0.99, 0.99)``.

    Returns:
        A :class:`Sensitivity`.

    Raises:
        ValueError: without a unique gate mediator (pass ``mediator=``), or on bad arguments.
    """
    if isinstance(fit, Hypergraph):
        if table is None:
            raise ValueError("nie_sensitivity: pass table= with a Hypergraph (or pass a Fit)")
        inputs, observed, scaling = prepare(fit, table)
        fit = _Prepared(fit, inputs, observed, scaling)
    else:
        fit = _check_fit(fit)
        if table is not None:
            raise ValueError("nie_sensitivity: table= is only for a Hypergraph; a Fit carries its own table")
    key = _check_key(key, where="nie_sensitivity")
    prob = _check_prob(prob)
    if not isinstance(num_bootstrap, (int, np.integer)) or num_bootstrap < 10:
        raise ValueError(f"num_bootstrap must be an int >= 10, got {num_bootstrap!r}")
    if not isinstance(grid, (int, np.integer)) or grid < 3:
        raise ValueError(f"grid must be an int >= 3, got {grid!r}")
    g = fit.graph
    t = g.treatment
    if outcome is None:
        outcome = g.outcomes[0]
    elif outcome not in g.endogenous or outcome == t:
        raise ValueError(f"outcome {outcome!r} must be an endogenous variable of the graph other than {t!r}")
    mediator = _gate(fit, t, outcome, mediator)
    x = _design(fit, t)
    y = np.asarray(fit.observed[outcome], dtype=np.float64)
    m = np.asarray(fit.observed[mediator], dtype=np.float64)
    n = x.shape[0]
    try:
        za, zb = (float(fit.scaling.to_model(g, t, v)) for v in (a, b))
    except ValueError as e:
        raise ValueError(f"a, b: {e}") from None
    var = g.variable(outcome)
    scale = (za - zb) * fit.scaling.std[outcome]  # standardised → the transformed (raw if identity) scale
    units = "raw" if var.transform == "identity" else var.transform
    idx = np.asarray(jax.random.randint(key, (num_bootstrap, n), 0, n))
    point = _params(x[None], y[None], m[None])
    boot = _params(x[idx], y[idx], m[idx])
    rhos = np.linspace(-0.99, 0.99, grid)
    est = _acme(*point, rhos)[:, 0] * scale
    draws = _acme(*boot, rhos) * scale  # (grid, bootstrap)
    lo, hi = np.quantile(draws, [(1 - prob) / 2, (1 + prob) / 2], axis=1)
    covers = (lo <= 0) & (hi >= 0)
    table = pd.DataFrame({"rho": rhos, "nie": est, "lower": lo, "upper": hi, "covers_zero": covers})
    at0 = _acme(*boot, 0.0) * scale
    lo0, hi0 = np.quantile(at0, [(1 - prob) / 2, (1 + prob) / 2])
    if lo0 <= 0 <= hi0:
        rho_int = 0.0
    elif covers.any():
        rho_int = float(rhos[covers][np.argmin(np.abs(rhos[covers]))])
    else:
        rho_int = float("nan")
    return Sensitivity(
        treatment=t, mediator=mediator, outcome=outcome, a=float(a), b=float(b), units=units,
        nie=float(_acme(*point, 0.0)[0] * scale), lower=float(lo0), upper=float(hi0),
        rho_zero=float(point[3][0]), rho_interval=rho_int, prob=prob, table=table,
    )
