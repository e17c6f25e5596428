"""Figures of a batch-size study, drawn with matplotlib's object API.

Every function takes plain numbers (arrays, mappings, a runs DataFrame) and
returns a :class:`matplotlib.figure.Figure` built without :mod:`matplotlib.pyplot`,
so no global figure state is touched and no display backend is needed.
:func:`save` writes a figure as PNG and SVG atomically.

The batch-size axis is logarithmic in base 2 (the interventions are 16, 32, …).
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from hgcnet_jax import _io

__all__ = [
    "Interval",
    "interventional",
    "ate",
    "effects",
    "mediators",
    "loo",
    "recommendation",
    "hypergraph",
    "save",
]

#: ``(mean, lower, upper)`` of a posterior quantity.
Interval = tuple[float, float, float]

_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


def _log2_axis(ax, batch_sizes: Sequence[int]) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(batch_sizes))
    ax.set_xticklabels([str(b) for b in batch_sizes])
    ax.minorticks_off()
    ax.set_xlabel("batch size B")


def _jitter(batch_sizes: np.ndarray, *, spread: float = 0.06, key: int = 0) -> np.ndarray:
    """Multiplicative jitter on a log2 axis, deterministic (seeded)."""
    rng = np.random.default_rng(key)
    return batch_sizes * 2.0 ** rng.uniform(-spread, spread, size=batch_sizes.shape)


def interventional(
    batch_sizes: Sequence[int],
    curves: Mapping[str, Mapping[str, Sequence[float]]],
    points: pd.DataFrame,
    *,
    outcome: str = "test accuracy",
    mass: float = 0.94,
) -> Figure:
    """E[G | do(B = b)] with credible bands, next to the raw per-seed outcomes.

    Args:
        batch_sizes: the interventions, ascending.
        curves: label (e.g. ``"hypergraph"``) → ``{"mean", "lo", "hi"}`` per batch size.
        points: one row per run with columns ``batch_size`` and ``value``.
        outcome: name of G for the axis label.
        mass: credible mass of the bands (for the legend).

    Returns:
        The figure.
    """
    b = np.asarray(batch_sizes, dtype=float)
    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.add_subplot()
    pb = points["batch_size"].to_numpy(dtype=float)
    ax.scatter(_jitter(pb), points["value"].to_numpy(dtype=float), s=14, color="0.45", alpha=0.7,
               label="runs (one per seed)", zorder=3)
    for i, (label, c) in enumerate(curves.items()):
        color = _COLORS[i % len(_COLORS)]
        mean, lo, hi = (np.asarray(c[k], dtype=float) for k in ("mean", "lo", "hi"))
        ax.fill_between(b, lo, hi, color=color, alpha=0.18, lw=0)
        ax.plot(b, mean, "-o", color=color, ms=4, label=f"E[G | do(B)] {label} ({mass:.0%} band)", zorder=4)
    _log2_axis(ax, batch_sizes)
    ax.set_ylabel(outcome)
    ax.set_title("Interventional outcome E[G | do(B = b)]")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return fig


def ate(
    draws: Sequence[float],
    *,
    b_small: int,
    b_large: int,
    interval: tuple[float, float],
    prob_positive: float,
    p_value: float | None,
    observed: float | None = None,
) -> Figure:
    """Posterior of ATE = E[G | do(B = b_small)] − E[G | do(B = b_large)].

    Args:
        draws: posterior draws of the ATE.
        b_small, b_large: the two interventions compared.
        interval: the credible interval ``(lo, hi)``.
        prob_positive: posterior probability that the ATE is > 0.
        p_value: frequentist permutation p-value over seeds (``None`` if not computed).
        observed: raw difference of per-seed means, drawn as a reference line.
    """
    d = np.asarray(draws, dtype=float)
    fig = Figure(figsize=(6.4, 3.8), layout="constrained")
    ax = fig.add_subplot()
    ax.hist(d, bins=min(60, max(10, d.size // 20)), color=_COLORS[0], alpha=0.75, density=True)
    lo, hi = interval
    ax.axvspan(lo, hi, color=_COLORS[0], alpha=0.12, label=f"credible interval [{lo:+.4f}, {hi:+.4f}]")
    ax.axvline(float(np.mean(d)), color=_COLORS[0], lw=2, label=f"posterior mean {np.mean(d):+.4f}")
    ax.axvline(0.0, color="k", lw=1, ls=":")
    if observed is not None:
        ax.axvline(observed, color=_COLORS[1], lw=1.5, ls="--", label=f"raw difference of means {observed:+.4f}")
    p_txt = "n/a" if p_value is None else f"{p_value:.3g}"
    ax.set_title(f"ATE of B={b_small} vs B={b_large}: P(ATE > 0) = {prob_positive:.3f}, permutation p = {p_txt}",
                 fontsize=10)
    ax.set_xlabel(f"E[G | do(B={b_small})] − E[G | do(B={b_large})]")
    ax.set_ylabel("posterior density")
    ax.legend(fontsize=8)
    return fig


def effects(rows: Mapping[str, Interval], *, title: str = "Total, direct and mediated effects") -> Figure:
    """Horizontal interval plot of effects (total, direct, through N, through S …).

    Args:
        rows: label → ``(mean, lo, hi)``.
    """
    labels = list(rows)
    fig = Figure(figsize=(6.4, 0.6 * len(labels) + 1.4), layout="constrained")
    ax = fig.add_subplot()
    y = np.arange(len(labels))[::-1]
    for yi, label, color in zip(y, labels, _COLORS * 3):
        mean, lo, hi = rows[label]
        ax.plot([lo, hi], [yi, yi], color=color, lw=3, alpha=0.6)
        ax.plot([mean], [yi], "o", color=color, ms=7)
        ax.annotate(f"{mean:+.4f}", (mean, yi), textcoords="offset points", xytext=(0, 8),
                    ha="center", fontsize=8)
    ax.axvline(0.0, color="k", lw=1, ls=":")
    ax.set_yticks(y)
    ax.set_yticklabels(labels)
    ax.set_xlabel("effect on G (posterior mean and credible interval)")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    return fig


def mediators(runs: pd.DataFrame, columns: Mapping[str, str], batch_sizes: Sequence[int]) -> Figure:
    """Each mediator (N, S, C) and the outcome against the batch size, per run and per-B median.

    Args:
        runs: the runs table (column ``batch_size`` plus the mediator columns).
        columns: panel title (e.g. ``"N: noise_b_simple"``) → column of ``runs``.
        batch_sizes: the interventions, ascending.
    """
    n = len(columns)
    fig = Figure(figsize=(3.2 * n, 3.3), layout="constrained")
    axes = fig.subplots(1, n, squeeze=False)[0]
    b = runs["batch_size"].to_numpy(dtype=float)
    for i, (ax, (title, col)) in enumerate(zip(axes, columns.items())):
        v = runs[col].to_numpy(dtype=float)
        ok = np.isfinite(v)
        ax.scatter(_jitter(b[ok], key=i), v[ok], s=12, color="0.45", alpha=0.7)
        med = runs.loc[ok].groupby("batch_size")[col].median()
        ax.plot(med.index.to_numpy(dtype=float), med.to_numpy(), "-o", color=_COLORS[i % len(_COLORS)], ms=4)
        _log2_axis(ax, batch_sizes)
        if np.all(v[ok] > 0) and ok.any() and v[ok].max() / max(v[ok].min(), 1e-300) > 30:
            ax.set_yscale("log")
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
    fig.suptitle("Mediators against the batch size (points: runs, line: median)", fontsize=10)
    return fig


def loo(table: Mapping[str, tuple[float, float]], *, preferred: str | None = None) -> Figure:
    """PSIS-LOO expected log predictive density of each causal graph, with standard errors.

    Args:
        table: model label → ``(elpd_loo, se)``.
        preferred: label of the preferred model (highlighted).
    """
    labels = list(table)
    fig = Figure(figsize=(5.6, 0.7 * len(labels) + 1.4), layout="constrained")
    ax = fig.add_subplot()
    y = np.arange(len(labels))[::-1]
    for yi, label, color in zip(y, labels, _COLORS):
        elpd, se = table[label]
        ax.errorbar([elpd], [yi], xerr=[se], fmt="o", color=color, capsize=4, ms=7,
                    mew=2 if label == preferred else 1)
    ax.set_yticks(y)
    ax.set_yticklabels([f"{lab} (preferred)" if lab == preferred else lab for lab in labels])
    ax.set_xlabel("elpd_loo (higher is better) ± SE")
    ax.set_title("Hypergraph against pairwise graph (PSIS-LOO)")
    ax.grid(axis="x", alpha=0.3)
    ax.margins(y=0.4)
    return fig


def recommendation(
    batch_sizes: Sequence[int],
    mean: Sequence[float],
    lo: Sequence[float],
    hi: Sequence[float],
    time_per_epoch: Sequence[float],
    *,
    best: int,
    current: int,
    prob_beats_current: float,
) -> Figure:
    """E[G | do(B)] against the time per epoch it costs, with the best and current batch size.

    Args:
        batch_sizes: the interventions, ascending.
        mean, lo, hi: E[G | do(B = b)] and its credible interval per batch size.
        time_per_epoch: measured seconds per epoch per batch size (median over seeds).
        best: the batch size maximising E[G | do(B)].
        current: the user's current batch size.
        prob_beats_current: P(E[G | do(best)] > E[G | do(current)]).
    """
    b = np.asarray(batch_sizes, dtype=float)
    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.add_subplot()
    ax.fill_between(b, lo, hi, color=_COLORS[0], alpha=0.18, lw=0)
    ax.plot(b, mean, "-o", color=_COLORS[0], ms=4, label="E[G | do(B)]")
    i_best = list(batch_sizes).index(best)
    i_cur = list(batch_sizes).index(current)
    ax.plot([b[i_best]], [mean[i_best]], "*", color=_COLORS[2], ms=16, label=f"best B = {best}", zorder=5)
    ax.plot([b[i_cur]], [mean[i_cur]], "s", color=_COLORS[1], ms=9, mfc="none", mew=2,
            label=f"current B = {current}", zorder=5)
    ax.set_ylabel("E[G | do(B)]", color=_COLORS[0])
    _log2_axis(ax, batch_sizes)
    ax2 = ax.twinx()
    ax2.plot(b, time_per_epoch, "--^", color=_COLORS[4], ms=5, label="time per epoch")
    ax2.set_ylabel("seconds per epoch", color=_COLORS[4])
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=8, loc="best")
    ax.set_title(f"Recommendation: B = {best} (the current batch size: keep it)" if best == current else
                 f"Recommendation: B = {best} (P(beats B = {current}) = {prob_beats_current:.3f})", fontsize=10)
    ax.grid(alpha=0.3)
    return fig


def hypergraph(graph, edges: Sequence[Mapping], *, title: str | None = None) -> Figure:
    """The causal hypergraph, drawn by :func:`hgcnet_jax.causal.draw`, labelled with effect sizes.

    Args:
        graph: the :class:`hgcnet_jax.causal.Hypergraph`.
        edges: ``{"tails": [...], "head": name, "effect": float | None}`` per edge or hyperedge
            (a hyperedge has two or more tails; its label goes next to its child).
        title: figure title.

    Returns:
        The figure.
    """
    from hgcnet_jax.causal import draw as _draw
    from hgcnet_jax.causal.draw import layout

    fig = Figure(figsize=(9.0, 3.8), layout="constrained")
    ax = fig.add_subplot()
    _draw(graph, ax=ax, title=title or "Causal hypergraph (labels: posterior mean coefficients, standardised)")
    pos = layout(graph)
    for e in edges:
        if e.get("effect") is None or e.get("main_effect"):
            continue
        tails, head = list(e["tails"]), e["head"]
        text = f"{e['effect']:+.2f}"
        if len(tails) == 1:
            p0, p1 = np.asarray(pos[tails[0]], float), np.asarray(pos[head], float)
            d = p1 - p0
            mid = (p0 + p1) / 2
            if abs(d[0]) > 1.5:  # causal.draw bends long edges (arc3, rad 0.35): the curve's midpoint
                mid = mid + 0.175 * np.array([d[1], -d[0]])
            normal = np.array([d[1], -d[0]]) / (np.linalg.norm(d) or 1.0)  # right of the direction of travel
            xy, offset, colour = tuple(mid), tuple(11 * normal), _COLORS[1]
        else:
            centre = np.mean([pos[t] for t in tails], axis=0)
            xy = tuple(centre + 0.45 * (np.asarray(pos[head]) - centre))
            text = f"{{{', '.join(tails)}}}: {text}"
            offset, colour = (34, -20), _COLORS[3]
        ax.annotate(text, xy, xytext=offset, textcoords="offset points", ha="center", fontsize=9, color=colour,
                    fontweight="bold", zorder=8, bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.8))
    return fig


def save(fig: Figure, folder: str | os.PathLike, name: str, *, dpi: int = 110) -> dict[str, Path]:
    """Write ``fig`` as ``folder/name.png`` and ``folder/name.svg`` (atomically).

    Returns:
        ``{"png": path, "svg": path}``.
    """
    folder = Path(folder)
    out = {}
    for fmt in ("png", "svg"):
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, dpi=dpi)
        out[fmt] = _io.write_bytes(folder / f"{name}.{fmt}", buf.getvalue())
    return out
