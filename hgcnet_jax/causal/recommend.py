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

__all__ = ["Recommendation", "recommend"]


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
