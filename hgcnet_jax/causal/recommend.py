"""Recommend a treatment value: which candidate maximises ``E[outcome | do(treatment=b)]``?"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Literal

import jax
import numpy as np
import pandas as pd

from .effects import _check_fit, _check_prob, _check_var, _query_key, _raw_mean, _treat, abduct, simulate
from .fit import Fit

__all__ = ["Recommendation", "recommend", "recommend_from_arms"]


@dataclasses.dataclass(frozen=True)
class Recommendation:
    """Result of :func:`recommend`.

    Attributes:
        treatment, outcome: The variables.
        best: The candidate with the largest posterior mean of ``E[outcome | do(b)]``.
        table: One row per candidate: ``value, mean, sd, lower, upper, p_best``
            (posterior probability that this candidate has the largest interventional
            mean), sorted by ``mean`` descending.
        current: The user's current value (``None`` if not given).
        p_beats_current: Posterior probability that ``best`` gives a larger
            interventional mean than ``current`` (``None`` without ``current``). When
            ``best`` *is* ``current`` it is 0.0 (a value cannot beat itself): check
            :attr:`best_is_current` before reading it as evidence against ``best``.
        gain: Posterior mean of ``E[outcome | do(best)] − E[outcome | do(current)]``
            (0.0 when ``best`` is ``current``).
        draws: ``(candidates, draws)`` interventional means, in candidate order.
    """

    treatment: str
    outcome: str
    best: Any
    table: pd.DataFrame
    current: Any
    p_beats_current: float | None
    gain: float | None
    draws: np.ndarray = dataclasses.field(repr=False)

    @property
    def best_is_current(self) -> bool:
        """Whether the recommended value is the current one (keep it)."""
        return self.current is not None and self.best == self.current


def recommend(
    fit: Fit,
    candidates: Sequence[Any],
    *,
    current: Any = None,
    treatment: str | None = None,
    outcome: str | None = None,
    key: jax.Array | None = None,
    noise: Literal["sampled", "abducted"] = "sampled",
    prob: float = 0.9,
    extrapolate: bool = False,
) -> Recommendation:
    """Choose the treatment value that maximises the interventional mean of the outcome.

    All candidates are simulated with the same noise (common random numbers), so the
    posterior probabilities compare candidates draw by draw.

    Args:
        fit: A fitted model.
        candidates: Treatment values in raw units (e.g. batch sizes ``[16, 32, …, 512]``).
        current: The user's current value; adds ``p_beats_current`` and ``gain``.
        treatment: Defaults to the graph's treatment.
        outcome: Defaults to the graph's (first) outcome.
        key: PRNG key for the noise (default: derived from the fit's key).
        noise: ``"sampled"`` or ``"abducted"``.
        prob: Credible-interval level.
        extrapolate: Accept candidates outside the range of the fitted data without a
            warning (by default each emits an ``ExtrapolationWarning``: the model has not
            seen them, see :func:`hgcnet_jax.causal.ate`).

    Returns:
        A :class:`Recommendation`.
    """
    fit = _check_fit(fit)
    treatment = fit.graph.treatment if treatment is None else _check_var(fit, treatment, "treatment")
    outcome = fit.graph.outcomes[0] if outcome is None else _check_var(fit, outcome, "outcome")
    cands = list(candidates)
    if not cands:
        raise ValueError("candidates must contain at least one treatment value")
    if len(set(map(repr, cands))) != len(cands):
        raise ValueError(f"candidates contains duplicates: {cands}")
    prob = _check_prob(prob)
    values = cands + ([current] if current is not None else [])
    zs = [_treat(fit, treatment, v, extrapolate=extrapolate) for v in values]
    k = _query_key(fit, key)
    res = abduct(fit) if noise == "abducted" else None
    means = np.stack(
        [
            _raw_mean(fit, outcome, simulate(fit, {treatment: z}, key=k, noise=noise, residuals=res)[outcome])
            for z in zs
        ]
    )
    cand_means = means[: len(cands)]
    winner = np.argmax(cand_means, axis=0)
    rows = []
    for i, v in enumerate(cands):
        d = cand_means[i]
        lo, hi = np.quantile(d, [(1 - prob) / 2, (1 + prob) / 2])
        rows.append(
            {"value": v, "mean": d.mean(), "sd": d.std(ddof=1), "lower": lo, "upper": hi, "p_best": np.mean(winner == i)}
        )
    table = pd.DataFrame(rows).sort_values("mean", ascending=False, kind="stable").reset_index(drop=True)
    best_i = int(np.argmax(cand_means.mean(axis=1)))
    p_beats = gain = None
    if current is not None:
        delta = cand_means[best_i] - means[-1]
        p_beats, gain = float(np.mean(delta > 0)), float(delta.mean())
    return Recommendation(treatment, outcome, cands[best_i], table, current, p_beats, gain, cand_means)


def recommend_from_arms(
    table: pd.DataFrame,
    treatment: str,
    outcome: str,
    *,
    key: jax.Array,
    current: Any = None,
    prob: float = 0.9,
    num_bootstrap: int = 2000,
) -> Recommendation:
    """The design-based recommendation: the treatment value whose arm has the largest mean outcome.

    When the treatment is randomised (a sweep sets the batch size of every run), each
    arm's mean estimates ``E[outcome | do(treatment = b)]`` without any model, so this is
    the answer to fall back on when no causal model fits the runs. The uncertainty is
    the bootstrap over runs, resampled within each arm (``num_bootstrap`` resamples): the
    table's ``lower``/``upper`` are percentile intervals of the arm means at ``prob`` and
    ``p_best`` is the share of resamples in which the arm has the largest mean (a
    bootstrap probability, not a posterior one). Every value is an arm mean, so it lies
    in the outcome's range.

    Args:
        table: The runs, one row each.
        treatment, outcome: Column names.
        key: PRNG key of the bootstrap.
        current: The current treatment value (one of the arms), for ``p_beats_current``
            and ``gain``.
        prob: Interval level.
        num_bootstrap: Bootstrap resamples (at least 100).

    Returns:
        A :class:`Recommendation` whose ``draws`` are the bootstrap arm means.

    Raises:
        ValueError: a missing column, fewer than two arms, an arm with a single run, or
            ``current`` not an arm.
    """
    from hgcnet_jax._keys import check_key

    key = check_key(key, where="recommend_from_arms")
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"table must be a pandas DataFrame, got {type(table).__name__}")
    for c in (treatment, outcome):
        if c not in table.columns:
            raise ValueError(f"table has no column {c!r}; columns: {list(map(str, table.columns))}")
    prob = _check_prob(prob)
    if isinstance(num_bootstrap, bool) or not isinstance(num_bootstrap, (int, np.integer)) or num_bootstrap < 100:
        raise ValueError(f"num_bootstrap must be an int >= 100, got {num_bootstrap!r}")
    levels = sorted(pd.unique(table[treatment]).tolist())
    if len(levels) < 2:
        raise ValueError(f"recommend_from_arms needs at least two arms of {treatment!r}, got {levels}")
    if current is not None and current not in levels:
        raise ValueError(f"current {current!r} is not an arm of {treatment!r}: {levels}")
    draws = []
    for i, b in enumerate(levels):
        y = table.loc[table[treatment] == b, outcome].to_numpy(dtype=np.float64)
        if y.size < 2:
            raise ValueError(f"arm {treatment}={b} has {y.size} run; the bootstrap needs at least 2")
        idx = np.asarray(jax.random.randint(jax.random.fold_in(key, i), (num_bootstrap, y.size), 0, y.size))
        draws.append(y[idx].mean(axis=1))
    draws = np.stack(draws)
    winner = np.argmax(draws, axis=0)
    rows = []
    for i, v in enumerate(levels):
        y = table.loc[table[treatment] == v, outcome].to_numpy(dtype=np.float64)
        lo, hi = np.quantile(draws[i], [(1 - prob) / 2, (1 + prob) / 2])
        rows.append({"value": v, "mean": float(y.mean()), "sd": float(draws[i].std(ddof=1)), "lower": float(lo),
                     "upper": float(hi), "p_best": float(np.mean(winner == i))})
    out = pd.DataFrame(rows).sort_values("mean", ascending=False, kind="stable").reset_index(drop=True)
    best = out["value"].iloc[0]
    best_i = levels.index(best)
    p_beats = gain = None
    if current is not None:
        delta = draws[best_i] - draws[levels.index(current)]
        p_beats, gain = float(np.mean(delta > 0)), float(out["mean"].iloc[0] - out.set_index("value").loc[current, "mean"])
    return Recommendation(treatment, outcome, best, out, current, p_beats, gain, draws)
