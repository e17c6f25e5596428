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
    ax.set_title(f"Recommendation: B = {best} (P(beats B = {current}) = {prob_beats_current:.3f})", fontsize=10)
    ax.grid(alpha=0.3)
    return fig


def hypergraph(
    nodes: Mapping[str, tuple[float, float]],
    edges: Sequence[tuple[Sequence[str], str, float | None]],
    *,
    labels: Mapping[str, str] | None = None,
    title: str = "Causal hypergraph with effect sizes",
) -> Figure:
    """Draw a causal hypergraph: nodes, pairwise arrows and hyperedges, labelled by effect size.

    A hyperedge (two or more tails into one head) is drawn as a shaded hub
    joining its tails, with one arrow from the hub to the head.

    Args:
        nodes: node name → (x, y) position.
        edges: ``(tails, head, effect)``; ``effect`` (or ``None``) is written on the edge.
        labels: optional longer node labels (name → text).
        title: figure title.
    """
    fig = Figure(figsize=(7.2, 3.2), layout="constrained")
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.set_aspect("equal")
    labels = dict(labels or {})
    for name, (x, y) in nodes.items():
        ax.annotate(labels.get(name, name), (x, y), ha="center", va="center", fontsize=10, zorder=5,
                    bbox=dict(boxstyle="circle,pad=0.4" if len(labels.get(name, name)) <= 2 else "round,pad=0.4",
                              fc="white", ec="0.2", lw=1.5))
    arrow = dict(arrowstyle="-|>", lw=1.6, color="0.15", shrinkA=14, shrinkB=14, mutation_scale=14)
    for tails, head, effect in edges:
        hx, hy = nodes[head]
        text = "" if effect is None else f"{effect:+.3g}"
        if len(tails) == 1:
            tx, ty = nodes[tails[0]]
            ax.annotate("", (hx, hy), (tx, ty), arrowprops=arrow)
            ax.annotate(text, ((tx + hx) / 2, (ty + hy) / 2), textcoords="offset points", xytext=(0, 7),
                        ha="center", fontsize=9, color=_COLORS[1])
        else:
            pts = np.array([nodes[t] for t in tails], dtype=float)
            hub = pts.mean(axis=0) * 0.5 + np.array([hx, hy]) * 0.5
            hub[1] -= 0.35
            for t in pts:
                ax.annotate("", hub, t, arrowprops=dict(arrowstyle="-", lw=2.5, color=_COLORS[3], alpha=0.6,
                                                        shrinkA=14, shrinkB=0))
            ax.plot([hub[0]], [hub[1]], "o", ms=10, color=_COLORS[3], alpha=0.6)
            ax.annotate("", (hx, hy), hub, arrowprops=dict(arrow, color=_COLORS[3], shrinkA=4))
            ax.annotate(f"{{{', '.join(tails)}}} {text}".strip(), hub, textcoords="offset points", xytext=(0, -16),
                        ha="center", fontsize=9, color=_COLORS[3])
    xs = np.array([p[0] for p in nodes.values()])
    ys = np.array([p[1] for p in nodes.values()])
    ax.set_xlim(xs.min() - 0.7, xs.max() + 0.7)
    ax.set_ylim(ys.min() - 1.0, ys.max() + 0.8)
    ax.set_title(title, fontsize=10)
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
