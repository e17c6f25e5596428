"""The sentences of a study's report: verdicts, notes and warnings, written from numbers.

:mod:`hgcnet_jax.study.summary` computes; these functions turn its numbers into the
words that ``summary.json`` carries and ``report.html`` shows, so the prose of a report
is produced by code in one place and a re-run reproduces it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["TIME_NOTE", "compile_note", "criticism_headline", "recommendation_label", "sensitivity_note",
           "holdout_detail", "effects_note", "loo_verdict", "pareto_warning", "refutation_warning", "mcmc_warning",
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


def criticism_headline(chosen: str | None, answered_by: str, num_candidates: int, num_arms: int,
                       reasons: Mapping[str, Any]) -> str:
    """The first-screen verdict of the causal model against the experiment (issue #14)."""
    if chosen is not None:
        return (f"The causal model fits the experiment: of {num_candidates} candidate graphs, '{chosen}' passes every "
                f"check of its criticism and predicts held-out runs best among those that do. Its E[G | do(B = b)] "
                f"agrees with the arm means at all {num_arms} batch sizes (the batch size was randomised, so each "
                "arm's mean estimates E[G | do(B = b)] without a model); the effects below are that graph's.")
    first = next(iter(reasons.get(answered_by, [])), "")
    return (f"MISFIT: none of the {num_candidates} candidate graphs passes its criticism: each contradicts the "
            "experiment's own arms, the independences it implies or its predictive checks (the table lists why). "
            f"The model-based effects below are those of '{answered_by}' (the best by PSIS-LOO) and are shown for "
            "inspection only: they drive nothing. The recommendation comes from the arm means, which the "
            "randomised batch size identifies directly."
            + (f" First reason for '{answered_by}': {first}." if first else ""))


def recommendation_label(source: str, graph: str | None) -> str:
    """Where the recommendation's numbers come from."""
    if source == "model":
        return (f"model-based: E[G | do(B)] of the graph '{graph}', which passes its criticism; probabilities are "
                "posterior probabilities")
    return ("design-based: the mean outcome of each batch size's runs (the batch size was randomised), with "
            "bootstrap intervals over runs; probabilities are bootstrap probabilities. No causal model passed its "
            "criticism, so none is used")


def sensitivity_note(s: Mapping[str, Any]) -> str:
    """The NIE's sensitivity to mediator-outcome confounding in words (Imai, Keele & Yamamoto 2010)."""
    if s.get("error"):
        return f"Sensitivity of the indirect effect not computed: {s['error']}."
    ri = s["rho_interval"]
    where = ("its interval already contains 0 at ρ = 0" if ri == 0.0 else
             "its interval never contains 0 on ρ ∈ (−0.99, 0.99)" if ri != ri else
             f"its {s['prob']:.0%} interval first contains 0 at ρ = {ri:+.2f}")
    return (f"Indirect effect through {s['mediator']} (product of coefficients on the {s['units']} scale, "
            f"B = {s['a']} against {s['b']}): {s['nie']:+.4g} [{s['lower']:+.4g}, {s['upper']:+.4g}] at ρ = 0; "
            f"{where}, and its point estimate is 0 at ρ = {s['rho_zero']:+.2f}. ρ is the correlation of the "
            f"errors of {s['mediator']} and G that an unmeasured common cause (the seed drives both) would induce.")


def holdout_detail(heldout: Any, num_arms: int, max_abs_z: float, rejected: int) -> str:
    """The held-out-seed refuter's criterion and result."""
    return (f"fit without seeds {list(heldout)}, predict their arm means at {num_arms} batch sizes: {rejected} arm(s) "
            f"rejected (Holm-adjusted p < alpha; largest |z| = {max_abs_z:.2f})")


def effects_note(b_small: int, b_large: int, outcome: str, noise: str, direct_edge: bool,
                 graph: str = "hypergraph") -> str:
    """What the mediation table's contrast and rows mean."""
    return (
        f"Contrast do(B={b_small}) against do(B={b_large}) on {outcome}, graph '{graph}', noise abducted per run "
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
