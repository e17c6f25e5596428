"""Interventional and counterfactual queries on a fitted SCM, all through effect handlers.

Every query wraps the *same* generated model (:func:`hgcnet_jax.causal.make_model`)
in NumPyro handlers and vectorises over posterior draws with :func:`jax.vmap`:

* ``substitute(model, data=draw)`` fixes the parameters of one posterior draw;
* ``do(model, data={"B": b})`` cuts the treatment's equation and sets its value;
* ``seed(model, key)`` draws the exogenous noise (``noise="sampled"``), with the
  *same* key in every arm of a contrast (common random numbers), or
* ``substitute(model, substitute_fn=replay)`` replays noise inferred from the data
  (``noise="abducted"``): abduction ``u = (x − f(parents)) / σ(parents)`` per run and draw, read off
  ``trace(substitute(condition(model, observed), draw))``, then action (``do``) and
  prediction (run the model forward with the same ``u``) — Pearl's three steps
  (Pearl 2009, *Causality*, §7.1).

With abducted noise the population of runs is the fitted table itself (its covariates
and its inferred noise); with sampled noise it is the table's covariates with fresh
noise from the fitted noise model. All effects are reported in the outcome's raw units
(un-standardised and back-transformed per run before averaging).

Conventions (Pearl 2001, "Direct and indirect effects", UAI), for a treatment
contrast ``a`` against the reference ``b`` and mediators ``M`` (all variables on a
directed path from the treatment to the outcome):

* ``ATE = E[G(a)] − E[G(b)]``
* ``NDE = E[G(a, M(b))] − E[G(b, M(b))]`` — the treatment changes, mediators keep
  the values they would have had under the reference;
* ``NIE = E[G(a, M(a))] − E[G(a, M(b))]`` — so that ``ATE = NDE + NIE`` exactly;
* path-specific effect through a mediator ``m`` (Avin, Shpitser & Pearl 2005):
  ``PSE_m = E[G(b, m = m(a))] − E[G(b)]``: the effect carried by every directed path
  that passes through ``m`` (``m`` takes its value under ``a``, everything not
  downstream of ``m`` stays at the reference). Path-specific effects of different
  mediators overlap when paths share them and need not sum to the ATE.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from numpyro import handlers

from hgcnet_jax import _keys

from .fit import Fit

__all__ = [
    "ExtrapolationWarning",
    "Effect",
    "Mediation",
    "interventional_mean",
    "ate",
    "mediation",
    "conditional_ate",
    "abduct",
    "simulate",
]

Noise = Literal["sampled", "abducted"]


class ExtrapolationWarning(UserWarning):
    """A do-value lies outside the values the model was fitted on (pass ``extrapolate=True`` to accept)."""


@dataclasses.dataclass(frozen=True)
class Effect:
    """Posterior summary of a scalar causal quantity, in the outcome's raw units.

    Attributes:
        name: ``"ATE"``, ``"NDE"``, ``"NIE"``, ``"PSE[N]"``, ``"E[G | do(B=16)]"`` …
        outcome: The outcome variable.
        mean: Posterior mean.
        sd: Posterior standard deviation.
        lower, upper: Equal-tailed credible interval at level ``prob``.
        prob: The interval's level.
        p_positive: Posterior probability that the quantity is > 0.
        p_sign: Posterior probability of the sign of ``mean``: ``P(effect > 0)`` when
            ``mean > 0``, ``P(effect < 0)`` when ``mean < 0`` (0.5 when ``mean == 0``).
        draws: One value per posterior draw.
        query: The interventions that define it, e.g. ``{"B": (16, 512)}``.
    """

    name: str
    outcome: str
    mean: float
    sd: float
    lower: float
    upper: float
    prob: float
    p_positive: float
    p_sign: float
    draws: np.ndarray = dataclasses.field(repr=False)
    query: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_draws(cls, name: str, outcome: str, draws: Any, prob: float, query: Mapping | None = None) -> Effect:
        d = np.asarray(draws, dtype=np.float64).ravel()
        lo, hi = np.quantile(d, [(1 - prob) / 2, (1 + prob) / 2])
        mean = float(d.mean())
        p_pos = float(np.mean(d > 0))
        return cls(
            name=name,
            outcome=outcome,
            mean=mean,
            sd=float(d.std(ddof=1)) if d.size > 1 else 0.0,
            lower=float(lo),
            upper=float(hi),
            prob=prob,
            p_positive=p_pos,
            p_sign=p_pos if mean > 0 else float(np.mean(d < 0)) if mean < 0 else 0.5,
            draws=d,
            query=dict(query or {}),
        )

    def covers(self, value: float) -> bool:
        """Whether ``value`` lies inside the credible interval."""
        return bool(self.lower <= value <= self.upper)

    def as_dict(self) -> dict:
        """The summary without the draws (one row of a report table)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("draws", "query")}


@dataclasses.dataclass(frozen=True)
class Mediation:
    """Total, natural direct/indirect and path-specific effects of one contrast.

    Attributes:
        treatment, a, b, outcome: The contrast ``do(treatment=a)`` vs ``do(treatment=b)``.
        mediators: The variables on directed paths from treatment to outcome.
        total, nde, nie: :class:`Effect` objects (``total = nde + nie`` draw by draw).
        pse: Path-specific effect through each mediator.
        noise: ``"abducted"`` or ``"sampled"``.
    """

    treatment: str
    a: Any
    b: Any
    outcome: str
    mediators: tuple[str, ...]
    total: Effect
    nde: Effect
    nie: Effect
    pse: Mapping[str, Effect]
    noise: str

    def table(self) -> pd.DataFrame:
        """One row per effect: name, mean, sd, interval, sign probabilities."""
        rows = [self.total.as_dict(), self.nde.as_dict(), self.nie.as_dict()]
        rows += [e.as_dict() for e in self.pse.values()]
        return pd.DataFrame(rows)


# ------------------------------------------------------------------ the engine
def _base(fn: Any) -> Any:
    while not hasattr(fn, "loc") and hasattr(fn, "base_dist"):
        fn = fn.base_dist
    return fn


def _loc(fn: Any) -> jnp.ndarray:
    """Location of a (possibly masked / expanded) Normal or Student-t site."""
    return _base(fn).loc


def _scale(fn: Any) -> jnp.ndarray:
    """Scale of a (possibly masked / expanded) Normal or Student-t site (per run when heteroscedastic)."""
    return _base(fn).scale


def _check_fit(fit: Any) -> Fit:
    if not isinstance(fit, Fit):
        raise TypeError(f"fit must be a hgcnet_jax.causal.Fit (from causal.fit), got {type(fit).__name__}")
    return fit


def _check_var(fit: Fit, name: Any, what: str, *, endogenous: bool = True) -> str:
    names = fit.graph.names
    if name not in names:
        raise ValueError(f"{what} {name!r} is not a variable of the graph; variables: {list(names)}")
    if endogenous and name not in fit.graph.endogenous:
        raise ValueError(f"{what} {name!r} is a covariate (exogenous); choose one of {list(fit.graph.endogenous)}")
    return name


def _check_prob(prob: float) -> float:
    if not 0.0 < float(prob) < 1.0:
        raise ValueError(f"prob must be in (0, 1), got {prob!r}")
    return float(prob)


def _rows(fit: Fit, rows: Any) -> np.ndarray:
    n = fit.num_rows
    if rows is None:
        return np.arange(n)
    r = np.asarray(rows)
    if r.dtype == bool:
        if r.shape != (n,):
            raise ValueError(f"rows: a boolean mask must have shape ({n},), got {r.shape}")
        r = np.flatnonzero(r)
    if r.size == 0:
        raise ValueError("rows selects no runs")
    if r.min() < 0 or r.max() >= n:
        raise ValueError(f"rows: indices must be in [0, {n}), got range [{r.min()}, {r.max()}]")
    return r.astype(np.int64)


def _structural(inputs: Mapping[str, Any]) -> dict:
    """``inputs`` without the measurement errors (``"se:<name>"``): the structural equations alone."""
    return {k: v for k, v in inputs.items() if not k.startswith("se:")}


def _subset_inputs(fit: Fit, rows: np.ndarray, *, observe: bool = False) -> dict:
    out = {k: v[rows] for k, v in (fit.inputs if observe else _structural(fit.inputs)).items() if k != "rows"}
    out["rows"] = jnp.arange(rows.size, dtype=jnp.int32)
    return out


def abduct(fit: Fit) -> dict[str, jnp.ndarray]:
    """Abduction: standardised exogenous noise ``u = (x − f(parents)) / σ(parents)`` per draw and run.

    Computed with ``trace(substitute(condition(model, observed), draw))`` vectorised
    over posterior draws; location-scale noise makes this exact for Gaussian and
    Student-t equations alike, with constant or parent-dependent (heteroscedastic)
    scales: :func:`simulate` replays ``f(parents') + σ(parents') u`` under an intervention.

    Returns:
        ``{variable: (draws, runs)}`` in units of each equation's noise scale.
    """
    fit = _check_fit(fit)
    conditioned = handlers.condition(fit.model, data=fit.observed)
    inputs = _structural(fit.inputs)

    def one(params):
        tr = handlers.trace(handlers.substitute(conditioned, data=params)).get_trace(inputs)
        return {v: (fit.observed[v] - _loc(tr[v]["fn"])) / _scale(tr[v]["fn"]) for v in fit.observed}

    return jax.vmap(one)(fit.samples)


def simulate(
    fit: Fit,
    do: Mapping[str, Any] | None = None,
    *,
    key: jax.Array,
    noise: Noise = "sampled",
    rows: Any = None,
    residuals: Mapping[str, jnp.ndarray] | None = None,
    observe: bool = False,
) -> dict[str, jnp.ndarray]:
    """Run the fitted model forward under ``do``, once per posterior draw.

    Args:
        fit: A :class:`~hgcnet_jax.causal.Fit`.
        do: Interventions on the standardised scale: a scalar, a ``(runs,)`` array
            or a ``(draws, runs)`` array per variable.
        key: PRNG key; the same key gives the same noise draws (common random numbers).
        noise: ``"sampled"`` (fresh noise) or ``"abducted"`` (replay ``residuals``).
        rows: Indices or a boolean mask of the runs whose covariates (and noise)
            define the population; all runs by default.
        residuals: Output of :func:`abduct` (computed when needed and not given).
        observe: Add each variable's measurement error (its
            :attr:`~hgcnet_jax.causal.Variable.error_column`), as the observed table has
            it: replicated *observations* for posterior-predictive checks. Off for
            causal queries, which act on the structural equations.

    Returns:
        ``{variable: (draws, runs)}`` standardised values of every endogenous variable.
    """
    fit = _check_fit(fit)
    if noise not in ("sampled", "abducted"):
        raise ValueError(f"noise must be 'sampled' or 'abducted', got {noise!r}")
    idx = _rows(fit, rows)
    inputs = _subset_inputs(fit, idx, observe=observe)
    s = fit.num_draws
    m = idx.size
    do_vals = {}
    for name, val in (do or {}).items():
        val = jnp.asarray(val, dtype=jnp.float32)
        if val.ndim == 2:
            if val.shape[0] != s:
                raise ValueError(f"do[{name!r}]: leading axis must have one entry per draw ({s}), got {val.shape}")
            val = val if val.shape[1] == m else val[:, idx]
        do_vals[name] = jnp.broadcast_to(val, (s, m))
    u = None
    if noise == "abducted":
        res = abduct(fit) if residuals is None else residuals
        u = {v: jnp.asarray(r)[:, idx] for v, r in res.items()}

    def one(params, dv, uu, k):
        model = fit.model
        if dv:
            model = handlers.do(model, data=dv)
        if uu is not None:
            model = handlers.substitute(
                model,
                substitute_fn=lambda site: (
                    _loc(site["fn"]) + _scale(site["fn"]) * uu[site["name"]] if site["name"] in uu else None
                ),
            )
        model = handlers.substitute(model, data=params)
        return handlers.seed(model, k)(inputs)

    keys = jax.random.split(key, s)
    return jax.vmap(one)(fit.samples, do_vals, u, keys)


def _raw_mean(fit: Fit, outcome: str, z: jnp.ndarray) -> np.ndarray:
    """Per-draw population mean of the outcome in raw units."""
    return fit.scaling.to_raw(fit.graph, outcome, np.asarray(z)).mean(axis=-1)


def _treat(fit: Fit, name: str, value: Any, *, extrapolate: bool = False) -> float:
    try:
        z = fit.scaling.to_model(fit.graph, name, value)
    except ValueError as e:
        raise ValueError(f"do[{name!r}]: {e}") from None
    if np.ndim(z) != 0:
        raise ValueError(f"do[{name!r}] must be a scalar in raw units, got shape {np.shape(z)}")
    if not extrapolate:  # a valid value: is it one the model has seen?
        _check_range(fit, name, value)
    return float(z)


def _check_range(fit: Fit, name: str, value: Any) -> None:
    """Warn (:class:`ExtrapolationWarning`) when a raw do-value lies outside the fitted data's range of ``name``."""
    import warnings

    try:
        v = float(value)
        col = fit.graph.variable(name).column
        seen = np.asarray(fit.data[col], dtype=float)
    except (TypeError, ValueError, KeyError):
        return  # no such column in the fitted table: nothing to compare with
    seen = seen[np.isfinite(seen)]
    if seen.size == 0 or not np.isfinite(v):
        return
    lo, hi = float(seen.min()), float(seen.max())
    tol = 1e-9 * max(abs(lo), abs(hi), 1.0)
    if lo - tol <= v <= hi + tol:
        return
    warnings.warn(
        f"do({name}={v:g}) lies outside the range the model was fitted on ({name} = {col} in "
        f"[{lo:g}, {hi:g}] over {seen.size} runs): the fitted equations are extrapolated there and the result "
        "is not supported by data. Query inside that range, or pass extrapolate=True to accept it",
        ExtrapolationWarning,
        stacklevel=4,
    )


def _query_key(fit: Fit, key: jax.Array | None) -> jax.Array:
    return _keys.causal_query(fit.key) if key is None else key


# -------------------------------------------------------------------- queries
def interventional_mean(
    fit: Fit,
    outcome: str,
    do: Mapping[str, Any],
    *,
    key: jax.Array | None = None,
    noise: Noise = "sampled",
    rows: Any = None,
    prob: float = 0.9,
    extrapolate: bool = False,
) -> Effect:
    """Posterior of ``E[outcome | do(...)]`` in the outcome's raw units.

    Args:
        fit: A fitted model.
        outcome: Endogenous variable whose mean is wanted.
        do: Interventions in *raw* units, e.g. ``{"B": 16}`` (transformed and
            standardised internally). Any endogenous variable may be set.
        key: PRNG key for the noise (defaults to one derived from the fit's key).
        noise: ``"sampled"`` or ``"abducted"`` (see the module docstring).
        rows: Restrict the population to these runs (indices or boolean mask).
        prob: Credible-interval level.
        extrapolate: Accept do-values outside the range of the fitted data without a
            warning. By default such a value emits an :class:`ExtrapolationWarning`
            (``warnings.simplefilter("error", ExtrapolationWarning)`` makes it an error).

    Returns:
        An :class:`Effect` named ``"E[G | do(B=16)]"``.
    """
    fit = _check_fit(fit)
    _check_var(fit, outcome, "outcome")
    if not isinstance(do, Mapping) or not do:
        raise ValueError("do must be a non-empty mapping {variable: raw value}, e.g. {'B': 16}")
    if outcome in do:  # before any value is checked against the fitted range
        raise ValueError(f"outcome {outcome!r} cannot also be intervened on")
    zs = {_check_var(fit, k, "do variable"): _treat(fit, k, v, extrapolate=extrapolate) for k, v in do.items()}
    sim = simulate(fit, zs, key=_query_key(fit, key), noise=noise, rows=rows)
    label = ", ".join(f"{k}={v}" for k, v in do.items())
    return Effect.from_draws(
        f"E[{outcome} | do({label})]", outcome, _raw_mean(fit, outcome, sim[outcome]), _check_prob(prob), dict(do)
    )


def ate(
    fit: Fit,
    treatment: str,
    a: Any,
    b: Any,
    outcome: str,
    *,
    key: jax.Array | None = None,
    noise: Noise = "sampled",
    rows: Any = None,
    prob: float = 0.9,
    extrapolate: bool = False,
) -> Effect:
    """Average treatment effect ``E[outcome | do(treatment=a)] − E[outcome | do(treatment=b)]``.

    Both arms use the same noise (common random numbers), so the contrast's Monte
    Carlo error is small; the interval reflects posterior uncertainty.

    Args:
        fit: A fitted model.
        treatment: Variable to intervene on (usually the graph's treatment).
        a: Treatment level, raw units (e.g. batch size 16).
        b: Reference level, raw units (e.g. 512).
        outcome: Outcome variable.
        key, noise, rows, prob, extrapolate: As for :func:`interventional_mean` (a level
            outside the fitted range of ``treatment`` warns unless ``extrapolate=True``).

    Returns:
        An :class:`Effect` named ``"ATE"`` with mean, interval and sign probability.
    """
    fit = _check_fit(fit)
    _check_var(fit, treatment, "treatment")
    _check_var(fit, outcome, "outcome")
    if treatment == outcome:
        raise ValueError("treatment and outcome must differ")
    za, zb = _treat(fit, treatment, a, extrapolate=extrapolate), _treat(fit, treatment, b, extrapolate=extrapolate)
    k = _query_key(fit, key)
    res = abduct(fit) if noise == "abducted" else None
    ga = simulate(fit, {treatment: za}, key=k, noise=noise, rows=rows, residuals=res)[outcome]
    gb = simulate(fit, {treatment: zb}, key=k, noise=noise, rows=rows, residuals=res)[outcome]
    d = _raw_mean(fit, outcome, ga) - _raw_mean(fit, outcome, gb)
    return Effect.from_draws("ATE", outcome, d, _check_prob(prob), {treatment: (a, b)})


def mediation(
    fit: Fit,
    treatment: str,
    a: Any,
    b: Any,
    outcome: str,
    *,
    key: jax.Array | None = None,
    noise: Noise = "abducted",
    rows: Any = None,
    prob: float = 0.9,
    paths: Sequence[str] | None = None,
    extrapolate: bool = False,
) -> Mediation:
    """Natural direct / indirect and path-specific effects by abduction–action–prediction.

    See the module docstring for the definitions (Pearl 2001; Avin, Shpitser & Pearl
    2005). Cross-world quantities such as ``G(a, M(b))`` are computed per run with the
    same exogenous noise in both worlds: first ``M(b)`` under ``do(treatment=b)``, then
    ``G`` under ``do(treatment=a, M=M(b))``.

    Args:
        fit: A fitted model.
        treatment, a, b, outcome: The contrast (raw units), as for :func:`ate`.
        key: PRNG key (used for ``noise="sampled"``).
        noise: ``"abducted"`` (default: replay the noise inferred from each run) or
            ``"sampled"``.
        rows: Restrict the population to these runs.
        prob: Credible-interval level.
        paths: Mediators for path-specific effects (default: all mediators).
        extrapolate: As for :func:`interventional_mean`.

    Returns:
        A :class:`Mediation`.

    Raises:
        ValueError: if no directed path leads from ``treatment`` to ``outcome``.
    """
    fit = _check_fit(fit)
    g = fit.graph
    _check_var(fit, treatment, "treatment")
    _check_var(fit, outcome, "outcome")
    if not g.has_path(treatment, outcome):
        raise ValueError(f"no directed path from {treatment!r} to {outcome!r}: nothing to decompose")
    mediators = tuple(v for v in g.descendants(treatment) if v != outcome and g.has_path(v, outcome))
    if paths is None:
        paths = mediators
    for p in paths:
        if p not in mediators:
            raise ValueError(f"paths: {p!r} is not a mediator between {treatment!r} and {outcome!r}; mediators: {list(mediators)}")
    prob = _check_prob(prob)
    za, zb = _treat(fit, treatment, a, extrapolate=extrapolate), _treat(fit, treatment, b, extrapolate=extrapolate)
    k = _query_key(fit, key)
    res = abduct(fit) if noise == "abducted" else None

    def run(do):
        return simulate(fit, do, key=k, noise=noise, rows=rows, residuals=res)

    world_a = run({treatment: za})
    world_b = run({treatment: zb})
    cross = run({treatment: za, **{m: world_b[m] for m in mediators}})  # G(a, M(b))
    mean = lambda z: _raw_mean(fit, outcome, z)  # noqa: E731
    ya, yb, yab = mean(world_a[outcome]), mean(world_b[outcome]), mean(cross[outcome])
    q = {treatment: (a, b)}
    pse = {}
    for m in paths:
        y_m = mean(run({treatment: zb, m: world_a[m]})[outcome])
        pse[m] = Effect.from_draws(f"PSE[{m}]", outcome, y_m - yb, prob, q)
    return Mediation(
        treatment=treatment,
        a=a,
        b=b,
        outcome=outcome,
        mediators=mediators,
        total=Effect.from_draws("ATE", outcome, ya - yb, prob, q),
        nde=Effect.from_draws("NDE", outcome, yab - yb, prob, q),
        nie=Effect.from_draws("NIE", outcome, ya - yab, prob, q),
        pse=pse,
        noise=noise,
    )


def conditional_ate(
    fit: Fit,
    treatment: str,
    a: Any,
    b: Any,
    outcome: str,
    *,
    by: str,
    key: jax.Array | None = None,
    noise: Noise = "sampled",
    prob: float = 0.9,
    extrapolate: bool = False,
) -> pd.DataFrame:
    """ATE within each subgroup of runs (e.g. per dataset or model).

    The population of each subgroup is its own runs (their covariates and, with
    ``noise="abducted"``, their inferred noise); effects differ between groups
    through covariate-dependent equations and the model's non-linear terms.

    Args:
        fit: A fitted model.
        treatment, a, b, outcome: The contrast, as for :func:`ate`.
        by: A column of ``fit.data`` that defines the groups.
        key, noise, prob, extrapolate: As for :func:`ate` (the range is the whole fitted table's).

    Returns:
        One row per group: ``by``, ``n_runs`` and the :class:`Effect` summary fields.
    """
    fit = _check_fit(fit)
    if by not in fit.data.columns:
        raise ValueError(f"by: column {by!r} is not in the fitted table; columns: {list(map(str, fit.data.columns))}")
    labels = fit.data[by].to_numpy()
    rows = []
    for level in pd.unique(labels):
        mask = labels == level
        e = ate(fit, treatment, a, b, outcome, key=key, noise=noise, rows=mask, prob=prob, extrapolate=extrapolate)
        rows.append({by: level, "n_runs": int(mask.sum()), **e.as_dict()})
    return pd.DataFrame(rows)
