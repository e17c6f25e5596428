"""Model criticism: does the fitted graph agree with the runs it was fitted on?

A posterior answers every query, right or wrong; criticism asks whether the data
contradict the graph and its equations before any answer is read off it (issue #14:
a linear-Gaussian fit of the paper's graph put ``E[G | do(B = 512)]`` at 1.06, an
accuracy above 1, while the arm's own mean was 0.73). :func:`criticize` runs five
checks on one :class:`~hgcnet_jax.causal.Fit` and returns a :class:`Criticism`:

* **arms** — the batch size is *randomised* in a sweep, so each arm's mean outcome
  estimates ``E[G | do(B = b)]`` without any model. The fitted interventional mean
  (:func:`~hgcnet_jax.causal.interventional_mean`) and its credible interval at
  ``prob`` are set beside the arm mean and its bootstrap interval (runs of the arm
  resampled with replacement; Hesterberg's 2015 *expanded* percentile interval, which
  corrects the plain percentile interval's under-coverage with ten or so seeds per
  arm). An arm is a *miss* when the two intervals are disjoint **and** the arm's mean is
  implausible under the posterior predictive distribution of a mean of its ``n_b`` runs
  (Holm-adjusted over the arms, ``p < alpha``; the predictive check below): ten runs near an accuracy ceiling
  seldom include the rare low run that pulls the population mean down, so a skewed,
  saturating arm's own interval can exclude the true mean (a 9-standard-error gap on one
  synthetic sweep) while the model, which knows the tail, expects exactly such a sample.
* **independences** — every statement of the graph's local Markov basis, each
  variable independent of its non-descendants given its parents (one statement per
  pair), tested on the model scale (transformed values) by the partial correlation
  of the two variables after a quadratic regression on the conditioning set
  (intercept, linear, squared and pairwise product terms), with Fisher's z and
  ``n − p − 2`` degrees of freedom for ``p`` regressors; p-values Holm-adjusted over
  the statements.
* **falsification** — the permutation test of Eulig et al. (2023, "Toward
  falsifying causal graphs using a permutation-based test", DoWhy's
  ``gcm.falsify_graph``): the graph's structure is kept and its node labels permuted;
  the p-value is the share of permutations (the identity counted once, relabellings
  that imply the very same statements left out: no test can tell those from the
  graph) whose implied local Markov statements are violated no more often than the
  given graph's, a statement counting as violated when its Holm-adjusted p-value
  (over that graph's statements) is below ``alpha``. (Unadjusted counts, as in DoWhy,
  let one chance rejection among a handful of statements tie a true graph with its
  relabellings: at 0.05, one in five true five-node graphs on 60 runs was "falsified"
  that way.) The test *rejects* a graph that violates at least one of its statements
  while ``p_value > alpha``; a graph that violates none is not contradicted by the
  data, and a large ``p_value`` then only says that the data cannot tell it from its
  relabellings (``informative`` is false).
* **predictive** — posterior predictive checks (Gelman, Meng & Stern 1996; Gelman et
  al., *BDA3* ch. 6): replicated tables from the posterior predictive with every
  run's treatment as observed; per endogenous variable and arm, the observed mean and
  standard deviation (raw units) against their replicated distribution, with the
  two-sided tail probability ``2 min(P(T_rep ≥ T_obs), P(T_rep ≤ T_obs))``.
* **lobo** (optional, ``lobo=True``: one refit per arm, NUTS) — leave one batch size
  out: the graph is refitted without arm ``b`` (:func:`~hgcnet_jax.causal.fit_many`,
  the fit's settings) and ``E[G | do(B = b)]`` is predicted there (extrapolated at the
  grid's ends) and set against the arm's mean; a disjoint pair of intervals is a miss.

``Criticism.ok`` is the verdict, true when **all** of: no arm misses; no independence
statement is rejected (Holm-adjusted ``p < alpha``); the falsification test is not
rejected; no predictive check has ``p < alpha / (number of checks)`` (Bonferroni:
posterior predictive p-values are conservative, so this flags only gross misfit); and,
when run, no leave-one-out arm misses; and every mediator is identified (its measurement
error below its spread across arms, :mod:`~hgcnet_jax.causal.identify`; the others are
:attr:`Criticism.not_identified`). :attr:`Criticism.reasons` names each failure.

:func:`holdout_check` is a refuter in the same spirit: fit on some seeds, predict the
held-out seeds' arm means.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import warnings
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
import pandas as pd
from scipy import stats

from hgcnet_jax._keys import check_key as _check_key

from .effects import _check_fit, _check_prob, interventional_mean, simulate
from .fit import Fit, FitConfig
from .hypergraph import Hypergraph
from .identify import identification, not_identified_message
from .inference import fit_many

__all__ = [
    "Criticism",
    "Falsification",
    "HoldoutCheck",
    "criticize",
    "holdout_check",
    "local_markov",
    "holm",
]


# ------------------------------------------------------------------ results
@dataclasses.dataclass(frozen=True)
class Falsification:
    """The node-permutation test of a whole graph (Eulig et al. 2023).

    Attributes:
        p_value: ``(1 + #{π: v(π) ≤ v(G)}) / (1 + #π)`` over the relabellings ``π`` whose
            local Markov statements differ from the graph's, ``v`` the violations.
        violations: Violated statements of the given graph (Holm-adjusted ``p < alpha``).
        num_statements: Statements of the local Markov basis.
        num_permutations: Permutations evaluated (all of them when there are at most
            ``max_permutations``; otherwise a random sample plus the identity).
        p_same: Share of permutations that imply the very same statements (the
            test cannot tell those apart from the graph; near 1: not falsifiable).
        informative: ``p_value <= alpha``: the graph's independences are better
            supported than those of its relabellings.
        rejected: ``violations > 0`` and ``p_value > alpha``: the graph violates its
            own statements and is no better than a relabelling.
    """

    p_value: float
    violations: int
    num_statements: int
    num_permutations: int
    p_same: float
    informative: bool
    rejected: bool


@dataclasses.dataclass(frozen=True)
class Criticism:
    """What :func:`criticize` found (see the module docstring for each check).

    Attributes:
        graph: The criticised graph's name.
        treatment, outcome: The variables.
        arms: One row per treatment level: ``batch_size, n_runs, arm_mean, arm_lo,
            arm_hi, model_mean, model_lo, model_hi, p_value`` (posterior predictive
            tail probability of the arm's mean), ``p_adjusted`` (Holm), ``miss``.
        independences: One row per local Markov statement: ``statement, x, y,
            given, statistic, p_value, p_adjusted, rejected``.
        falsification: The :class:`Falsification` test.
        predictive: One row per (variable, arm, statistic): ``variable, batch_size,
            stat, observed, rep_mean, rep_lo, rep_hi, p_value, flagged``.
        lobo: Leave-one-batch-size-out rows (``batch_size, arm_mean, arm_lo, arm_hi,
            pred_mean, pred_lo, pred_hi, error, miss``), or ``None`` when not run.
        prob: Interval level of the arm and leave-one-out comparisons.
        alpha: Significance level of the tests.
        ok: The verdict (module docstring).
        reasons: One sentence per failed check (empty when ``ok``).
        not_identified: The columns of the mediators whose measurement error is as large
            as their spread across arms (:func:`~hgcnet_jax.causal.identify.identification`):
            each is a reason, and no effect through them is a finding.
        identification: The identification table behind ``not_identified``.
    """

    graph: str
    treatment: str
    outcome: str
    arms: pd.DataFrame
    independences: pd.DataFrame
    falsification: Falsification
    predictive: pd.DataFrame
    lobo: pd.DataFrame | None
    prob: float
    alpha: float
    ok: bool
    reasons: tuple[str, ...]
    not_identified: tuple[str, ...] = ()
    identification: pd.DataFrame | None = None

    def summary(self) -> str:
        """A few lines for logs and reports."""
        lines = [f"criticism of {self.graph!r}: {'ok' if self.ok else 'FAILED'}"]
        lines += [f"  - {r}" for r in self.reasons]
        return "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class HoldoutCheck:
    """What :func:`holdout_check` found.

    Attributes:
        graph: The graph's name.
        heldout_seeds: The seeds left out of the fit.
        table: One row per arm: ``batch_size, n_heldout, heldout_mean, pred_mean,
            pred_lo, pred_hi`` (the interval at ``prob`` of ``μ_b`` widened by the arm's
            sampling noise), ``statistic, p_value, p_adjusted, rejected``.
        passed: No arm rejected (Holm-adjusted ``p < alpha``).
    """

    graph: str
    heldout_seeds: tuple
    table: pd.DataFrame
    passed: bool


# ------------------------------------------------------------------ helpers
def holm(p: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (NaN entries stay NaN and do not count)."""
    p = np.asarray(p, dtype=np.float64)
    out = np.full_like(p, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    if ok.size == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    m = order.size
    adj = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out[order] = np.minimum(adj, 1.0)
    return out


def local_markov(graph: Hypergraph) -> list[tuple[str, str, tuple[str, ...]]]:
    """The local Markov basis: ``(x, y, parents(x))`` for every non-descendant ``y`` of ``x``.

    Categorical covariates are never tested (they may condition). ``y`` ranges over
    the non-descendants of ``x`` that are not its parents, in topological order.
    """
    categorical = {v.name for v in graph.variables if v.categorical}
    order = [n for n in graph.topological_order() if n not in categorical]
    out = []
    for x in order:
        desc = set(graph.descendants(x))
        pa = graph.parents(x)
        for y in order:
            if y != x and y not in desc and y not in pa:
                out.append((x, y, tuple(pa)))
    return out


def _basis(cols: list[np.ndarray], n: int) -> np.ndarray:
    """Intercept, linear, squared and pairwise-product terms of the conditioning columns."""
    parts = [np.ones((n, 1))]
    cont = [c for c in cols if c.ndim == 1]
    parts += [c for c in cols if c.ndim == 2]  # one-hot blocks
    if cont:
        z = np.stack(cont, axis=1)
        parts += [z, z**2]
        parts += [(z[:, i] * z[:, j])[:, None] for i, j in itertools.combinations(range(z.shape[1]), 2)]
    return np.concatenate(parts, axis=1)


class _CITester:
    """Partial-correlation tests on a fit's model-scale values, cached by statement."""

    def __init__(self, fit: Fit):
        inputs, observed = fit.inputs, fit.observed
        cut = np.zeros(fit.num_rows, dtype=bool)
        for k, v in inputs.items():
            if k.startswith("cut:"):
                cut |= np.asarray(v, dtype=bool)
        keep = ~cut  # runs where an experiment set a mediator break its independences
        self.values: dict[str, np.ndarray] = {}
        for v in fit.graph.variables:
            if v.name in observed:
                self.values[v.name] = np.asarray(observed[v.name], dtype=np.float64)[keep]
            elif v.categorical:
                codes = np.asarray(inputs[v.name])[keep]
                k = len(fit.scaling.levels[v.name])
                self.values[v.name] = np.eye(k)[codes][:, 1:]
            else:
                self.values[v.name] = np.asarray(inputs[v.name], dtype=np.float64)[keep]
        self.n = int(keep.sum())
        self._cache: dict = {}

    def __call__(self, x: str, y: str, given: tuple[str, ...]) -> tuple[float, float]:
        key = (frozenset((x, y)), frozenset(given))
        if key not in self._cache:
            self._cache[key] = self._test(x, y, tuple(sorted(given)))
        return self._cache[key]

    def _test(self, x: str, y: str, given: tuple[str, ...]) -> tuple[float, float]:
        d = _basis([self.values[g] for g in given], self.n)
        dof = self.n - d.shape[1] - 2
        if dof < 1:
            return float("nan"), float("nan")
        proj = d @ np.linalg.lstsq(d, np.stack([self.values[x], self.values[y]], axis=1), rcond=None)[0]
        rx, ry = (np.stack([self.values[x], self.values[y]], axis=1) - proj).T
        denom = np.sqrt((rx @ rx) * (ry @ ry))
        r = float(np.clip(rx @ ry / denom, -0.999999, 0.999999)) if denom > 0 else 0.0
        z = math.atanh(r) * math.sqrt(dof)
        return z, float(2 * stats.norm.sf(abs(z)))


def _check_table(fit: Fit, table: Any) -> None:
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"table must be a pandas DataFrame (the runs the fit was fitted on), got {type(table).__name__}")
    g = fit.graph
    col = g.variable(g.treatment).column
    if col not in table.columns:
        raise ValueError(
            f"table has no column {col!r} for the treatment {g.treatment!r}; columns: {list(map(str, table.columns))}"
        )
    levels = pd.unique(table[col])
    if len(levels) < 2:
        raise ValueError(
            f"treatment column {col!r} has a single arm ({list(levels)}); criticism compares arms: "
            "sweep two or more levels"
        )
    if len(table) != len(fit.data):
        raise ValueError(
            f"table has {len(table)} rows but the fit was fitted on {len(fit.data)}: criticise a fit against its own table"
        )
    for v in g.variables:
        if v.column not in table.columns:
            raise ValueError(f"table has no column {v.column!r} for variable {v.name!r}: not the fit's table")
        a, b = table[v.column].to_numpy(), fit.data[v.column].to_numpy()
        same = np.array_equal(a, b) if v.categorical else np.allclose(np.asarray(a, float), np.asarray(b, float), equal_nan=True)
        if not same:
            bad = int(np.flatnonzero(a != b)[0]) if a.shape == b.shape and (a != b).any() else 0
            raise ValueError(
                f"table column {v.column!r} (variable {v.name}) differs from the fit's data (first at row {bad}): "
                "the fit was made on another table; fit this table or pass the fit's own table"
            )


def _arms(fit: Fit, table: pd.DataFrame) -> tuple[str, np.ndarray, list]:
    col = fit.graph.variable(fit.graph.treatment).column
    values = table[col].to_numpy()
    return col, values, sorted(pd.unique(values).tolist())


def _bootstrap_mean(key: jax.Array, y: np.ndarray, num: int, prob: float) -> tuple[float, float]:
    if y.size < 2:
        return float(y.mean()), float(y.mean())
    n = y.size
    idx = np.asarray(jax.random.randint(key, (num, n), 0, n))
    m = y[idx].mean(axis=1)
    # expanded percentile interval (Hesterberg 2015): the plain percentile interval of a
    # mean of n runs covers like a z-interval with the biased sd; widening its tail mass
    # to Φ(−sqrt(n / (n − 1)) t_{n−1}) makes it cover like the t-interval
    tail = float(stats.norm.cdf(-math.sqrt(n / (n - 1)) * stats.t.ppf((1 + prob) / 2, n - 1)))
    lo, hi = np.quantile(m, [tail, 1 - tail])
    return float(lo), float(hi)


def _tail(rep: np.ndarray, obs: float) -> float:
    return float(min(1.0, 2 * min(np.mean(rep >= obs), np.mean(rep <= obs))))


def _disjoint(lo1, hi1, lo2, hi2) -> bool:
    return bool(hi1 < lo2 or hi2 < lo1)


# ------------------------------------------------------------------ criticize
def criticize(
    fit: Fit,
    table: pd.DataFrame,
    *,
    key: jax.Array,
    outcome: str | None = None,
    prob: float = 0.95,
    alpha: float = 0.05,
    num_bootstrap: int = 2000,
    max_permutations: int = 1000,
    lobo: bool = False,
    lobo_config: FitConfig | None = None,
) -> Criticism:
    """Criticise a fitted graph against the runs it was fitted on (see the module docstring).

    Args:
        fit: A :class:`~hgcnet_jax.causal.Fit`.
        table: The runs table ``fit`` was fitted on (checked column by column).
        key: PRNG key (bootstrap, predictive replicates, permutations, refits).
        outcome: The outcome compared across arms (default: the graph's first).
        prob: Level of the arm and model intervals (0.95: under a correct model two
            such intervals are disjoint at one arm with probability ≈ 0.01 or less).
        alpha: Significance level of the independence, falsification and predictive tests.
        num_bootstrap: Bootstrap resamples per arm.
        max_permutations: Node permutations evaluated by the falsification test (all
            of them when the graph has few enough nodes).
        lobo: Also refit without each arm and predict it (one NUTS fit per arm).
        lobo_config: Settings of those refits (default: the fit's).

    Returns:
        A :class:`Criticism` (frozen); ``.ok`` is the verdict.

    Raises:
        TypeError: if ``fit`` is not a Fit or ``table`` not a DataFrame.
        ValueError: if ``table`` lacks the treatment column, has a single arm, is not
            the table ``fit`` was fitted on, or on a bad ``prob``, ``alpha`` or count.
    """
    fit = _check_fit(fit)
    key = _check_key(key, where="criticize")
    _check_table(fit, table)
    prob = _check_prob(prob)
    if not 0.0 < float(alpha) < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    for name, val in (("num_bootstrap", num_bootstrap), ("max_permutations", max_permutations)):
        if not isinstance(val, (int, np.integer)) or isinstance(val, bool) or val < 1:
            raise ValueError(f"{name} must be a positive int, got {val!r}")
    g = fit.graph
    t = g.treatment
    outcome = g.outcomes[0] if outcome is None else outcome
    if outcome not in g.endogenous or outcome == t:
        raise ValueError(f"outcome {outcome!r} must be an endogenous variable other than the treatment; "
                         f"choose one of {[v for v in g.endogenous if v != t]}")
    col, tvals, levels = _arms(fit, table)
    k_boot, k_model, k_ppc, k_perm, k_lobo = jax.random.split(key, 5)
    ycol = g.variable(outcome).column
    y = table[ycol].to_numpy(dtype=np.float64)

    # posterior predictive checks (their replicated arm means also judge the arms)
    predictive = _predictive(fit, tvals, levels, k_ppc, alpha)
    ppc_mean = predictive[(predictive["variable"] == outcome) & (predictive["stat"] == "mean")]
    ppc_mean = dict(zip(ppc_mean["batch_size"], ppc_mean["p_value"], strict=True))

    # arms
    rows = []
    for i, b in enumerate(levels):
        yb = y[tvals == b]
        lo, hi = _bootstrap_mean(jax.random.fold_in(k_boot, i), yb, num_bootstrap, prob)
        m = interventional_mean(fit, outcome, {t: b}, key=k_model, prob=prob, extrapolate=True)
        rows.append(dict(batch_size=b, n_runs=int(yb.size), arm_mean=float(yb.mean()), arm_lo=lo, arm_hi=hi,
                         model_mean=m.mean, model_lo=m.lower, model_hi=m.upper, p_value=float(ppc_mean[b]),
                         disjoint=_disjoint(lo, hi, m.lower, m.upper)))
    arms = pd.DataFrame(rows)
    arms["p_adjusted"] = holm(arms["p_value"].to_numpy())
    arms["miss"] = arms.pop("disjoint") & (arms["p_adjusted"] < alpha)

    # independences and falsification
    tester = _CITester(fit)
    basis = local_markov(g)
    ind = []
    for x, yv, given in basis:
        z, p = tester(x, yv, given)
        cond = f" | {', '.join(given)}" if given else ""
        ind.append(dict(statement=f"{x} ⊥ {yv}{cond}", x=x, y=yv, given=given, statistic=z, p_value=p))
    independences = pd.DataFrame(ind, columns=["statement", "x", "y", "given", "statistic", "p_value"])
    independences["p_adjusted"] = holm(independences["p_value"].to_numpy()) if ind else []
    independences["rejected"] = (independences["p_adjusted"] < alpha).astype(bool)
    falsification = _falsify(g, basis, tester, alpha, max_permutations, k_perm)


    # leave one batch size out
    lobo_table = _lobo(fit, table, col, tvals, levels, y, outcome, k_lobo, prob, num_bootstrap, lobo_config) if lobo else None

    reasons = []
    for r in arms.itertuples():
        if r.miss:
            reasons.append(f"arm {col}={r.batch_size}: observed mean {outcome} {r.arm_mean:.4g} "
                           f"[{r.arm_lo:.4g}, {r.arm_hi:.4g}], the model's E[{outcome} | do({t}={r.batch_size})] "
                           f"{r.model_mean:.4g} [{r.model_lo:.4g}, {r.model_hi:.4g}]")
    for r in independences.itertuples():
        if r.rejected:
            reasons.append(f"the graph implies {r.statement}; rejected (Holm-adjusted p = {r.p_adjusted:.2g})")
    if falsification.rejected:
        reasons.append(f"falsification: the graph violates {falsification.violations} of its "
                       f"{falsification.num_statements} statements and a share {falsification.p_value:.2f} of its node "
                       f"relabellings do no worse (> alpha = {alpha})")
    for r in predictive.itertuples():
        if r.flagged:
            reasons.append(f"posterior predictive: {r.stat} of {r.variable} at {col}={r.batch_size} is "
                           f"{r.observed:.4g}, replicated {r.rep_mean:.4g} [{r.rep_lo:.4g}, {r.rep_hi:.4g}] "
                           f"(p = {r.p_value:.2g})")
    if lobo_table is not None:
        for r in lobo_table.itertuples():
            if r.miss:
                reasons.append(f"leave-one-out: refitted without {col}={r.batch_size}, the model predicts "
                               f"{r.pred_mean:.4g} [{r.pred_lo:.4g}, {r.pred_hi:.4g}] against the arm's "
                               f"{r.arm_mean:.4g} [{r.arm_lo:.4g}, {r.arm_hi:.4g}]")
    ident = fit.identification if fit.identification is not None else identification(g, table)
    bad = ident[~ident["identified"]]
    reasons += [not_identified_message(r, col) for r in bad.itertuples()]
    return Criticism(
        graph=g.name, treatment=t, outcome=outcome, arms=arms, independences=independences,
        falsification=falsification, predictive=predictive, lobo=lobo_table, prob=prob, alpha=float(alpha),
        ok=not reasons, reasons=tuple(reasons), not_identified=tuple(bad["column"]), identification=ident,
    )


def _falsify(graph, basis, tester, alpha, max_permutations, key) -> Falsification:
    categorical = {v.name for v in graph.variables if v.categorical}
    nodes = [n for n in graph.topological_order() if n not in categorical]
    n_perm = math.factorial(len(nodes))
    if n_perm <= max_permutations:
        perms = list(itertools.permutations(range(len(nodes))))
    else:
        rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel().tolist())
        perms = [tuple(range(len(nodes)))] + [tuple(rng.permutation(len(nodes))) for _ in range(max_permutations - 1)]

    def violations(perm):
        m = {nodes[i]: nodes[j] for i, j in enumerate(perm)}
        m.update({c: c for c in categorical})
        ps, statements = [], set()
        for x, y, given in basis:
            px, py, pg = m[x], m[y], tuple(m[g] for g in given)
            statements.add((frozenset((px, py)), frozenset(pg)))
            ps.append(tester(px, py, pg)[1])
        return int(np.sum(holm(ps) < alpha)), frozenset(statements)

    identity = tuple(range(len(nodes)))
    base, base_set = violations(identity)
    counts, same = [], 0
    for perm in perms:
        c, s = violations(perm)
        same += s == base_set
        if s != base_set:
            counts.append(c)
    # the identity counts once; relabellings that imply the very same statements are
    # indistinguishable from the graph by construction and are left out
    p = float((1 + np.sum(np.asarray(counts) <= base)) / (1 + len(counts)))
    return Falsification(p_value=p, violations=int(base), num_statements=len(basis), num_permutations=len(perms),
                         p_same=same / len(perms), informative=bool(p <= alpha),
                         rejected=bool(base > 0 and p > alpha))


def _predictive(fit: Fit, tvals, levels, key, alpha) -> pd.DataFrame:
    g = fit.graph
    t = g.treatment
    sim = simulate(fit, {t: fit.observed[t]}, key=key, noise="sampled", observe=True)
    rows = []
    for v in g.endogenous:
        if v == t:
            continue
        rep = fit.scaling.to_raw(g, v, np.asarray(sim[v]))
        obs = fit.scaling.to_raw(g, v, np.asarray(fit.observed[v]))
        for b in levels:
            mask = tvals == b
            for stat, fn in (("mean", lambda a: a.mean(axis=-1)), ("sd", lambda a: a.std(axis=-1, ddof=1))):
                if stat == "sd" and mask.sum() < 2:
                    continue
                r, o = fn(rep[:, mask]), float(fn(obs[mask]))
                lo, hi = np.quantile(r, [0.025, 0.975])
                rows.append(dict(variable=v, batch_size=b, stat=stat, observed=o, rep_mean=float(r.mean()),
                                 rep_lo=float(lo), rep_hi=float(hi), p_value=_tail(r, o)))
    out = pd.DataFrame(rows)
    out["flagged"] = out["p_value"] < alpha / max(len(out), 1)
    return out


def _lobo(fit, table, col, tvals, levels, y, outcome, key, prob, num_bootstrap, config) -> pd.DataFrame:
    t = fit.graph.treatment
    tables = [table.loc[tvals != b].reset_index(drop=True) for b in levels]
    k_fit, k_q, k_b = jax.random.split(key, 3)
    fits = fit_many(fit.graph, tables, key=k_fit, config=config or fit.config)
    rows = []
    for i, (b, f) in enumerate(zip(levels, fits, strict=True)):
        yb = y[tvals == b]
        lo, hi = _bootstrap_mean(jax.random.fold_in(k_b, i), yb, num_bootstrap, prob)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the end arms are extrapolations by design
            m = interventional_mean(f, outcome, {t: b}, key=k_q, prob=prob, extrapolate=True)
        rows.append(dict(batch_size=b, arm_mean=float(yb.mean()), arm_lo=lo, arm_hi=hi, pred_mean=m.mean,
                         pred_lo=m.lower, pred_hi=m.upper, error=m.mean - float(yb.mean()),
                         miss=_disjoint(lo, hi, m.lower, m.upper)))
    return pd.DataFrame(rows)


# ------------------------------------------------------------------ holdout refuter
def holdout_check(
    graph: Hypergraph,
    table: pd.DataFrame | Sequence[pd.DataFrame],
    *,
    key: jax.Array,
    seed_column: str = "seed",
    heldout: Sequence[Any] | None = None,
    fraction: float = 0.3,
    outcome: str | None = None,
    prob: float = 0.95,
    alpha: float = 0.05,
    config: FitConfig | None = None,
    **overrides: Any,
) -> HoldoutCheck | list[HoldoutCheck]:
    """Refute a graph on held-out seeds: fit on the other seeds, predict each arm's held-out mean.

    Because the treatment is randomised, an arm's mean over fresh seeds is an unbiased
    estimate of ``E[G | do(B = b)]``; a graph whose interventional means are wrong fails
    here even when it fits its own runs. For each arm the held-out mean ``m_b`` of
    ``n_b`` runs is compared with the refitted model's ``E[G | do(B = b)]`` (posterior
    mean ``μ_b`` and variance ``v_b``) by ``z = (m_b − μ_b) / sqrt(v_b + s² / n_b)``, ``s``
    the pooled within-arm standard deviation of the outcome over the *training* runs
    (the data's own run-to-run noise, not the model's, so that a misfitting noise model
    does not widen the check); two-sided normal p-values, Holm-adjusted over the arms,
    any ``p < alpha`` fails the graph.

    Args:
        graph: The graph to refute.
        table: The runs table, with ``seed_column``; or a list of tables (one compiled
            NUTS program fits them all, :func:`~hgcnet_jax.causal.fit_many`).
        key: PRNG key (which seeds, the fits, the predictive draws).
        seed_column: The column that names a run's seed.
        heldout: The seeds to hold out (default: a random ``fraction`` of them, at least one).
        fraction: Share of the seeds held out when ``heldout`` is not given.
        outcome: The outcome (default: the graph's first).
        prob: Level of the reported predictive intervals.
        alpha: Significance level.
        config, **overrides: Settings of the fits, as for :func:`~hgcnet_jax.causal.fit`.

    Returns:
        A :class:`HoldoutCheck` (a list of them for a list of tables).

    Raises:
        ValueError: on a missing seed or treatment column, fewer than two seeds, or
            held-out seeds that are not in the table.
    """
    key = _check_key(key, where="holdout_check")
    if not isinstance(graph, Hypergraph):
        raise TypeError(f"graph must be a Hypergraph, got {type(graph).__name__}")
    single = isinstance(table, pd.DataFrame)
    tables = [table] if single else list(table)
    for tb in tables:
        if not isinstance(tb, pd.DataFrame):
            raise TypeError(f"table must be a pandas DataFrame or a list of them, got {type(tb).__name__}")
    prob = _check_prob(prob)
    if not 0.0 < float(alpha) < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    if heldout is None and not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction!r}")
    t = graph.treatment
    outcome = graph.outcomes[0] if outcome is None else outcome
    col, ycol = graph.variable(t).column, graph.variable(outcome).column
    k_sel, k_fit, k_sim = jax.random.split(key, 3)
    splits = []
    for j, tb in enumerate(tables):
        for c, what in ((seed_column, "seed_column"), (col, "treatment")):
            if c not in tb.columns:
                raise ValueError(f"table has no column {c!r} ({what}); columns: {list(map(str, tb.columns))}")
        seeds = sorted(pd.unique(tb[seed_column]).tolist())
        if len(seeds) < 2:
            raise ValueError(f"seed column {seed_column!r} has {len(seeds)} seed(s); holding some out needs at least 2")
        held = heldout
        if held is None:
            m = min(max(1, int(round(fraction * len(seeds)))), len(seeds) - 1)
            perm = np.asarray(jax.random.permutation(jax.random.fold_in(k_sel, j), len(seeds)))
            held = [seeds[i] for i in np.sort(perm[:m])]
        held = tuple(held)
        if any(x not in seeds for x in held) or not held or len(held) >= len(seeds):
            raise ValueError(f"heldout must be a non-empty proper subset of the seeds {seeds}, got {list(held)}")
        mask = tb[seed_column].isin(held).to_numpy()
        splits.append((held, tb.loc[~mask].reset_index(drop=True), tb.loc[mask].reset_index(drop=True)))
    fits = fit_many(graph, [tr for _, tr, _ in splits], key=k_fit, config=config, **overrides)
    out = []
    for j, ((held, train, test), f) in enumerate(zip(splits, fits, strict=True)):
        resid = train[ycol] - train.groupby(col)[ycol].transform("mean")
        dof = len(train) - train[col].nunique()
        s2 = float((resid**2).sum() / max(dof, 1))
        zq = float(stats.norm.ppf((1 + prob) / 2))
        rows = []
        for i, b in enumerate(sorted(pd.unique(test[col]).tolist())):
            yb = test.loc[test[col] == b, ycol].to_numpy(dtype=np.float64)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a held-out end arm may lie outside the training range
                m = interventional_mean(f, outcome, {t: b}, key=jax.random.fold_in(k_sim, j), extrapolate=True)
            sd = math.sqrt(m.sd**2 + s2 / yb.size)
            z = (float(yb.mean()) - m.mean) / sd
            rows.append(dict(batch_size=b, n_heldout=int(yb.size), heldout_mean=float(yb.mean()),
                             pred_mean=m.mean, pred_lo=m.mean - zq * sd, pred_hi=m.mean + zq * sd,
                             statistic=z, p_value=float(2 * stats.norm.sf(abs(z)))))
        res = pd.DataFrame(rows)
        res["p_adjusted"] = holm(res["p_value"].to_numpy())
        res["rejected"] = res["p_adjusted"] < alpha
        out.append(HoldoutCheck(graph=graph.name, heldout_seeds=held, table=res, passed=not bool(res["rejected"].any())))
    return out[0] if single else out
