"""Candidate graphs: build the plausible alternatives to the paper's graph, fit, criticise and rank them.

The paper's graph ``B → N → S → C → G`` says the batch size acts on everything through
the gradient noise. A sweep at equal epochs breaks that: a small batch takes many more
optimiser steps, so complexity depends on ``B`` through the step count, and sharpness
moves with ``B`` beyond what the noise carries (issue #14). :func:`candidate_graphs`
spells out the alternatives — the paper's graph, its pairwise twin, budget paths
``B → S`` and ``B → C``, and the recorded ``steps`` as a mediator (``B → steps → C``) or a
covariate — and :func:`search_graphs` fits each one
(:func:`~hgcnet_jax.causal.fit_many`: one compiled program per candidate, however many
tables), criticises it (:func:`~hgcnet_jax.causal.criticize`) and ranks by PSIS-LOO.

**The rule.** Among the candidates whose criticism passes, the one with the largest
expected log predictive density is chosen; when none passes, none is (``chosen is
None``): no answer is better than one from a graph the data reject. The ELPD is that of
the *variables every candidate models* (each run's log density summed over their
structural equations): a candidate that adds the ``steps`` node also predicts
``steps``, which the others do not, so the joint densities of different variable sets
are not comparable.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import arviz as az
import jax
import numpy as np
import pandas as pd
import xarray as xr

from hgcnet_jax._keys import check_key as _check_key

from .criticize import Criticism, criticize
from .effects import ate
from .fit import Fit, FitConfig
from .hypergraph import Edge, EdgeForm, Hypergraph, HypergraphError, Variable
from .inference import fit_many

__all__ = ["GraphSearch", "candidate_graphs", "search_graphs", "common_elpd"]


def candidate_graphs(
    graph: Hypergraph,
    *,
    steps: str | Variable | None = None,
    table: pd.DataFrame | None = None,
    sharpness: str = "S",
    complexity: str = "C",
    edge_form: EdgeForm = "linear",
) -> dict[str, Hypergraph]:
    """The candidate set around ``graph`` (usually :meth:`Hypergraph.paper` over a study's columns).

    Names and graphs (``T`` the treatment, ``S`` and ``C`` the named nodes):

    * ``paper``: ``graph`` itself; ``pairwise``: its pairwise twin;
    * ``T->S``, ``T->C``, ``T->S,T->C``: budget paths added;
    * with ``steps``: ``steps-mediator`` (``T → steps → C``), ``steps-mediator,T->S``, and
      ``steps-covariate,T->S`` (``steps → C`` with ``steps`` exogenous: the effect at a fixed
      step count, not the equal-epoch effect).

    Args:
        graph: The base graph.
        steps: The step-count column (a name: a mediator on a log2 scale, or a
            :class:`Variable` named ``"steps"``), or ``None`` for no steps variants.
        table: The runs table; with it, the steps variants are left out (with a
            warning) when ``log2(steps)`` is a function of the treatment (an
            equal-epoch sweep without early stopping): ``steps`` then carries nothing
            that ``T->C`` does not, and its equation would have no noise to fit.
        sharpness, complexity: The nodes that play ``S`` and ``C``.
        edge_form: Form of the added edges.

    Returns:
        ``{name: Hypergraph}``, each graph named ``"<graph.name>:<name>"``.

    Raises:
        HypergraphError: if ``sharpness`` or ``complexity`` is not a mediator of ``graph``,
            or ``graph`` already has a variable named ``steps``.
    """
    if not isinstance(graph, Hypergraph):
        raise TypeError(f"graph must be a Hypergraph, got {type(graph).__name__}")
    for name in (sharpness, complexity):
        if name not in graph.mediators:
            raise HypergraphError(f"candidate_graphs: {name!r} must be a mediator of the graph; mediators: {list(graph.mediators)}")
    t = graph.treatment

    def add(g: Hypergraph, *pairs) -> Hypergraph:
        have = {e.label for e in g.edges}
        new = tuple(Edge(p, c, edge_form) for p, c in pairs if f"{p}->{c}" not in have)
        return g.replace(edges=(*g.edges, *new))

    out = {
        "paper": graph,
        "pairwise": graph.pairwise(),
        f"{t}->{sharpness}": add(graph, (t, sharpness)),
        f"{t}->{complexity}": add(graph, (t, complexity)),
        f"{t}->{sharpness},{t}->{complexity}": add(graph, (t, sharpness), (t, complexity)),
    }
    if steps is not None:
        var = steps if isinstance(steps, Variable) else Variable("steps", "mediator", column=steps, transform="log2")
        if var.name in graph.names:
            raise HypergraphError(f"candidate_graphs: the graph already has a variable {var.name!r}")
        if _steps_determined(graph, var, table):
            warnings.warn(
                f"candidate_graphs: log2({var.column}) is a function of {t} in this table (equal epochs, no early "
                f"stopping): the steps variants are left out; {t}->{complexity} carries the budget path",
                UserWarning,
                stacklevel=2,
            )
        else:
            med = var if var.role == "mediator" else dataclasses.replace(var, role="mediator")
            cov = dataclasses.replace(var, role="covariate")
            m = graph.replace(variables=(*graph.variables, med))
            out["steps-mediator"] = add(m, (t, med.name), (med.name, complexity))
            out[f"steps-mediator,{t}->{sharpness}"] = add(m, (t, med.name), (med.name, complexity), (t, sharpness))
            c = graph.replace(variables=(*graph.variables, cov))
            out[f"steps-covariate,{t}->{sharpness}"] = add(c, (cov.name, complexity), (t, sharpness))
    return {k: g.replace(name=f"{graph.name}:{k}") for k, g in out.items()}


def _steps_determined(graph: Hypergraph, var: Variable, table: pd.DataFrame | None) -> bool:
    if table is None:
        return False
    tcol = graph.variable(graph.treatment).column
    if var.column not in table.columns or tcol not in table.columns:
        raise ValueError(f"candidate_graphs: table lacks column {var.column!r} or {tcol!r}")
    z = var.forward(table[var.column].to_numpy(dtype=np.float64))
    within = pd.Series(z).groupby(table[tcol].to_numpy()).std(ddof=0).fillna(0.0)
    return bool(within.max() <= 1e-6 * max(float(np.std(z)), 1e-12))


def common_elpd(fit: Fit, variables: Sequence[str]) -> tuple[float, float, float]:
    """PSIS-LOO ELPD of ``variables``' summed per-run log densities: ``(elpd, se, max Pareto k)``.

    The densities are put in the variables' raw units (the log-Jacobian of each
    transform and of the standardisation is added), so candidates that model the same
    variable on different scales (``G`` identity against logit) are compared fairly.
    """
    ll = fit.idata.log_likelihood
    missing = [v for v in variables if v not in ll]
    if missing:
        raise ValueError(f"the fit of {fit.graph.name!r} has no log likelihood of {missing}")
    total = 0
    for v in variables:
        var = fit.graph.variable(v)
        raw = fit.data[var.column].to_numpy(dtype=np.float64)
        jac = var.log_forward_slope(raw) - np.log(fit.scaling.std[v])
        cut = fit.inputs.get(f"cut:{v}")
        if cut is not None:
            jac = np.where(np.asarray(cut), 0.0, jac)
        total = total + ll[v] + xr.DataArray(jac, dims=ll[v].dims[-1:])
    idata = az.InferenceData(posterior=fit.idata.posterior, log_likelihood=xr.Dataset({"common": total}))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Pareto.*")
        warnings.filterwarnings("ignore", message=".*shape parameter.*")
        res = az.loo(idata, var_name="common", pointwise=True)
    return float(res.elpd_loo), float(res.se), float(np.max(res.pareto_k))


@dataclasses.dataclass(frozen=True)
class GraphSearch:
    """What :func:`search_graphs` found on one table.

    Attributes:
        table: One row per candidate, best ELPD first: ``candidate, graph, elpd, se,
            d_elpd`` (to the best), ``max_pareto_k, ok`` (criticism), ``n_reasons,
            arm_misses, rejected_independences, falsification_p, ate_mean, ate_lower,
            ate_upper, chosen``.
        chosen: The chosen candidate's name, or ``None`` when none passes its criticism.
        graphs, fits, criticisms: By candidate name.
        contrast: The ``(a, b)`` of the ATE columns.
    """

    table: pd.DataFrame
    chosen: str | None
    graphs: Mapping[str, Hypergraph] = dataclasses.field(repr=False)
    fits: Mapping[str, Fit] = dataclasses.field(repr=False)
    criticisms: Mapping[str, Criticism] = dataclasses.field(repr=False)
    contrast: tuple

    @property
    def graph(self) -> Hypergraph | None:
        """The chosen graph (``None`` when none passes)."""
        return None if self.chosen is None else self.graphs[self.chosen]

    @property
    def fit(self) -> Fit | None:
        """The chosen graph's fit (``None`` when none passes)."""
        return None if self.chosen is None else self.fits[self.chosen]


def search_graphs(
    candidates: Mapping[str, Hypergraph],
    tables: pd.DataFrame | Sequence[pd.DataFrame],
    *,
    key: jax.Array,
    contrast: tuple | None = None,
    prob: float = 0.9,
    criticism: Mapping[str, Any] | None = None,
    fits: Mapping[str, Fit | Sequence[Fit]] | None = None,
    config: FitConfig | None = None,
    **overrides: Any,
) -> GraphSearch | list[GraphSearch]:
    """Fit, criticise and rank candidate graphs on one table or several (see the module docstring).

    Args:
        candidates: ``{name: graph}``, e.g. :func:`candidate_graphs`; all with the same treatment.
        tables: One runs table, or a list (a simulation study: one compiled NUTS program
            per candidate serves every table).
        key: PRNG key.
        contrast: ``(a, b)`` of the reported ATE (default: the smallest and the largest
            treatment level of each table).
        prob: Level of the ATE intervals.
        criticism: Keyword arguments for :func:`~hgcnet_jax.causal.criticize`.
        fits: Fits already made, ``{name: fit}`` (or a list, one per table), e.g. a
            study's fits of the paper's graph and its pairwise twin; only the other
            candidates are fitted. Each must be a fit of that candidate's graph (names aside) on that table.
        config, **overrides: Fit settings, as for :func:`~hgcnet_jax.causal.fit`.

    Returns:
        A :class:`GraphSearch` (a list of them for a list of tables).

    Raises:
        ValueError: on an empty candidate set or candidates with different treatments.
    """
    key = _check_key(key, where="search_graphs")
    if not isinstance(candidates, Mapping) or not candidates:
        raise ValueError("candidates must be a non-empty mapping {name: Hypergraph}")
    for name, g in candidates.items():
        if not isinstance(g, Hypergraph):
            raise TypeError(f"candidates[{name!r}] must be a Hypergraph, got {type(g).__name__}")
    treatments = {g.treatment for g in candidates.values()}
    if len(treatments) != 1:
        raise ValueError(f"candidates must share one treatment, got {sorted(treatments)}")
    single = isinstance(tables, pd.DataFrame)
    tables = [tables] if single else list(tables)
    common = [v for v in next(iter(candidates.values())).endogenous if all(v in g.endogenous for g in candidates.values())]
    names = list(candidates)
    given = dict(fits or {})
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise ValueError(f"fits: unknown candidate(s) {unknown}; candidates: {names}")
    k_fit, k_crit = jax.random.split(key)
    fits = {}
    for i, n in enumerate(names):
        if n in given:
            fs = [given[n]] if isinstance(given[n], Fit) else list(given[n])
            if len(fs) != len(tables) or any(f.graph.replace(name=candidates[n].name) != candidates[n] for f in fs):
                raise ValueError(f"fits[{n!r}] must hold one fit of candidate {n!r}'s graph per table ({len(tables)})")
            fits[n] = fs
        else:
            fits[n] = fit_many(candidates[n], tables, key=jax.random.fold_in(k_fit, i), config=config, **overrides)
    out = []
    for j, table in enumerate(tables):
        g0 = candidates[names[0]]
        levels = sorted(pd.unique(table[g0.variable(g0.treatment).column]).tolist())
        a, b = (levels[0], levels[-1]) if contrast is None else contrast
        rows, crits, tfits = [], {}, {}
        for i, n in enumerate(names):
            f = fits[n][j]
            tfits[n] = f
            crit = criticize(f, table, key=jax.random.fold_in(jax.random.fold_in(k_crit, j), i), **dict(criticism or {}))
            crits[n] = crit
            elpd, se, k = common_elpd(f, common)
            e = ate(f, f.graph.treatment, a, b, f.graph.outcomes[0], prob=prob)
            rows.append(dict(candidate=n, graph=f.graph.name, elpd=elpd, se=se, max_pareto_k=k, ok=crit.ok,
                             n_reasons=len(crit.reasons), arm_misses=int(crit.arms["miss"].sum()),
                             rejected_independences=int(crit.independences["rejected"].sum()),
                             falsification_p=crit.falsification.p_value,
                             ate_mean=e.mean, ate_lower=e.lower, ate_upper=e.upper))
        tab = pd.DataFrame(rows).sort_values("elpd", ascending=False, kind="stable").reset_index(drop=True)
        tab["d_elpd"] = tab["elpd"] - tab["elpd"].iloc[0]
        passing = tab[tab["ok"]]
        chosen = None if passing.empty else str(passing["candidate"].iloc[0])
        tab["chosen"] = tab["candidate"] == chosen
        out.append(GraphSearch(table=tab, chosen=chosen, graphs=dict(candidates), fits=tfits, criticisms=crits,
                               contrast=(a, b)))
    return out[0] if single else out
