"""From a study summary and its runs table to ``plots/*.png|svg`` and ``report.html``.

The summary (the dict :mod:`hgcnet_jax.study` writes to ``summary.json``) holds every
number a figure needs, so a report can be rebuilt from the output folder alone,
without refitting anything.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from hgcnet_jax.report import html, plots

__all__ = ["figures", "build"]

def figures(summary: Mapping[str, Any], runs: pd.DataFrame, graph=None) -> dict[str, Figure]:
    """Draw every figure of the report.

    Args:
        summary: the study summary (see :mod:`hgcnet_jax.study`).
        runs: the runs table (one row per run, with ``batch_size``, the outcome and mediator columns).
        graph: the fitted :class:`hgcnet_jax.causal.Hypergraph`; without it the drawing is left out.

    Returns:
        Figure name (a key of :data:`hgcnet_jax.report.html.FIGURES`) → figure.
    """
    s = summary
    iv = s["interventional"]
    bs = list(iv["batch_sizes"])
    outcome = s["outcome"]
    points = pd.DataFrame({"batch_size": runs["batch_size"], "value": runs[outcome]})
    figs: dict[str, Figure] = {}
    mass = s["ate"]["mass"]
    figs["interventional"] = plots.interventional(bs, iv["curves"], points, outcome=outcome, mass=mass)
    a = s["ate"]
    figs["ate"] = plots.ate(
        a["draws"], b_small=a["b_small"], b_large=a["b_large"], interval=(a["lo"], a["hi"]),
        prob_positive=a["prob_positive"], p_value=a["p_value"], observed=a["observed"],
    )
    figs["effects"] = plots.effects({k: (v["mean"], v["lo"], v["hi"]) for k, v in s["effects"]["rows"].items()})
    cols = {f"{k}: {c}": c for k, c in s["mediator_columns"].items()}
    cols[f"G: {outcome}"] = outcome
    figs["mediators"] = plots.mediators(runs, cols, bs)
    if graph is not None:
        figs["hypergraph"] = plots.hypergraph(graph, s["hypergraph_edges"])
    lo = s["loo"]
    figs["loo"] = plots.loo({m: (r["elpd"], r["se"]) for m, r in lo["models"].items()}, preferred=lo["preferred"])
    r = s["recommendation"]
    if "mean_by_batch_size" in r:  # the numbers the recommendation came from (a model's, or the arms')
        curve = {k: [r[f"{k}_by_batch_size"][str(b)] for b in bs] for k in ("mean", "lo", "hi")}
    else:
        curve = iv["curves"]["hypergraph"]
    tpe = r["time_per_epoch_s"]
    figs["recommendation"] = plots.recommendation(
        bs, curve["mean"], curve["lo"], curve["hi"], [tpe[str(b)] for b in bs],
        best=r["best_batch_size"], current=r["current_batch_size"], prob_beats_current=r["prob_beats_current"],
    )
    return figs


def build(
    summary: Mapping[str, Any],
    runs: pd.DataFrame,
    folder: str | os.PathLike,
    *,
    graph=None,
    extra: Mapping[str, Figure] | None = None,
) -> Path:
    """Write ``folder/plots/<name>.png|svg`` for every figure and ``folder/report.html``.

    Args:
        summary: the study summary.
        runs: the runs table.
        folder: the study's output folder.
        graph: the fitted hypergraph, for the drawing (see :func:`figures`).
        extra: figures that replace or add to the ones drawn from the summary.

    Returns:
        The path of ``report.html`` (written last, atomically: it exists only when complete).
    """
    folder = Path(folder)
    figs = figures(summary, runs, graph)
    figs.update(extra or {})
    saved = {}
    for name in html.FIGURES:
        if name in figs:
            saved[name] = plots.save(figs[name], folder / "plots", name)
    for name, fig in figs.items():
        if name not in saved:
            saved[name] = plots.save(fig, folder / "plots", name)
    return html.write(folder / "report.html", summary, saved)
