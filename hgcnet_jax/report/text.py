"""The sentences of a study's report: verdicts, notes and warnings, written from numbers.

:mod:`hgcnet_jax.study.summary` computes; these functions turn its numbers into the
words that ``summary.json`` carries and ``report.html`` shows, so the prose of a report
is produced by code in one place and a re-run reproduces it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["TIME_NOTE", "compile_note", "effects_note", "loo_verdict", "pareto_warning", "refutation_warning", "mcmc_warning",
           "title", "subtitle"]

#: How the report's seconds per epoch are measured.
TIME_NOTE = ("seconds per epoch = the sweep's warm wall time of the batch size's vectorised bucket (its one-off "
             "XLA compilation excluded), divided by its runs and epochs (median over seeds)")


def compile_note(seconds: Mapping[str, float]) -> str:
    """The one-off XLA compilation of each batch size's bucket, on its own line."""
    parts = ", ".join(f"B = {b}: {s:.1f} s" for b, s in seconds.items())
    return f"XLA compilation, once per batch size's bucket and not in the time per epoch: {parts}"


def title(model: str, dataset: str) -> str:
    return f"Batch-size study: {model} on {dataset}"


def subtitle(config: Any, num_runs: int, num_fitted: int) -> str:
    """One line: the grid, the training, the columns and the rows fitted."""
    t, m = config.train, config.mediators
    return (f"{num_runs} runs: batch sizes {list(t.batch_sizes)} × {t.seeds} seeds, {t.epochs} epochs, "
            f"{t.optimizer} (lr {t.lr}); G = {m.outcome}, N = {m.noise}, "
            f"S = {m.sharpness}, C = {m.complexity}; {num_fitted} runs in the causal fit.")


def effects_note(b_small: int, b_large: int, outcome: str, noise: str, direct_edge: bool) -> str:
    """What the mediation table's contrast and rows mean."""
    return (
        f"Contrast do(B={b_small}) against do(B={b_large}) on {outcome}, hypergraph model, noise abducted per run "
        f"({noise}). Total = direct + indirect; a path-specific effect through a mediator covers every path "
        "through it, so those overlap and need not add up to the total."
        + ("" if direct_edge else " The graph has no direct edge B → G, so the direct effect is 0 "
           "by construction."))


def loo_verdict(prefers_hypergraph: bool, diff: float, se_diff: float, z: float, ate_pairwise: Mapping[str, float],
                ate_hypergraph: float) -> str:
    """The PSIS-LOO comparison of the two graphs in words (|z| >= 2 is a preference)."""
    if prefers_hypergraph:
        verdict = f"The hypergraph predicts held-out runs better: Δelpd = {diff:+.2f} ± {se_diff:.2f} (z = {z:.1f})."
    elif diff < -2 * se_diff:
        verdict = f"The pairwise graph predicts held-out runs better: Δelpd = {diff:+.2f} ± {se_diff:.2f} (z = {z:.1f})."
    else:
        verdict = (f"No clear preference: Δelpd (hypergraph − pairwise) = {diff:+.2f} ± {se_diff:.2f} "
                   f"(|z| = {abs(z):.1f} < 2).")
    return verdict + (f" ATE under the pairwise graph: {ate_pairwise['mean']:+.4f} [{ate_pairwise['lo']:+.4f}, "
                      f"{ate_pairwise['hi']:+.4f}] (hypergraph {ate_hypergraph:+.4f}).")


def pareto_warning(max_k: float) -> str:
    return f"PSIS-LOO is unreliable for some runs (max Pareto k = {max_k:.2f} > 0.7)."


def refutation_warning(refuter: str, criterion: str) -> str:
    return f"Refutation '{refuter.replace('_', ' ')}' failed: {criterion} does not hold."


def mcmc_warning(name: str, d: Mapping[str, Any]) -> str:
    """A fit whose diagnostics fail its own thresholds, and what to change."""
    return (f"MCMC diagnostics are poor for the {name} model: max R-hat {d['max_rhat']:.3f} "
            f"(threshold {d['rhat_max']}), min bulk ESS {d['min_ess_bulk']:.0f} / tail ESS {d['min_ess_tail']:.0f} "
            f"(threshold {d['ess_min']:.0f}), {d['divergences']} divergent transitions. "
            "Increase causal.num_warmup / causal.num_samples.")
