"""Draw a causal hypergraph with matplotlib (for reports).

Nodes are placed in topological layers from left to right (covariates in a row
below). Ordinary edges are thin grey arrows; each hyperedge is drawn as a shaded
hull around its members joined at a junction (a filled diamond) from which one
thick coloured arrow leads to the child, so joint effects are visibly different
from additive ones.
"""

from __future__ import annotations

import matplotlib

matplotlib.use(matplotlib.get_backend())  # keep the user's backend; never force one
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import FancyArrowPatch, Polygon  # noqa: E402

from .hypergraph import Hypergraph  # noqa: E402

__all__ = ["layout", "draw"]

_ROLE_COLOURS = {"treatment": "#4C72B0", "mediator": "#DD8452", "outcome": "#55A868", "covariate": "#8C8C8C"}
_HYPER_COLOURS = ("#C44E52", "#8172B3", "#937860", "#DA8BC3")


def layout(graph: Hypergraph) -> dict[str, tuple[float, float]]:
    """Node positions: x = longest-path depth from the roots, y spread within a layer."""
    depth: dict[str, int] = {}
    for v in graph.topological_order():
        ps = [p for p in graph.parents(v) if graph.variable(p).role != "covariate"]
        depth[v] = 1 + max((depth[p] for p in ps), default=-1)
    pos: dict[str, tuple[float, float]] = {}
    layers: dict[int, list[str]] = {}
    covs = [v for v in graph.names if graph.variable(v).role == "covariate"]
    for v in graph.topological_order():
        if v not in covs:
            layers.setdefault(depth[v], []).append(v)
    for d, vs in layers.items():
        for i, v in enumerate(vs):
            pos[v] = (float(d), (i - (len(vs) - 1) / 2) * 1.2 + (0.35 if d % 2 else 0.0))
    xmax = max(layers) if layers else 0
    for i, c in enumerate(covs):
        pos[c] = ((i + 0.5) * xmax / max(len(covs), 1), -1.6)
    return pos


def draw(graph: Hypergraph, *, ax: plt.Axes | None = None, title: str | None = None) -> Figure:
    """Draw ``graph`` and return the matplotlib :class:`~matplotlib.figure.Figure`.

    Args:
        graph: The hypergraph.
        ax: Axes to draw into (a new figure is created when ``None``).
        title: Axes title (defaults to the graph's name).

    Returns:
        The figure holding the drawing (``fig.savefig(...)`` for reports).
    """
    if not isinstance(graph, Hypergraph):
        raise TypeError(f"graph must be a Hypergraph, got {type(graph).__name__}")
    if ax is None:
        fig, ax = plt.subplots(figsize=(1.8 + 1.6 * max(len(graph.names), 3), 3.6))
    else:
        fig = ax.figure
    pos = layout(graph)
    r = 0.22
    for i, h in enumerate(graph.hyperedges):
        colour = _HYPER_COLOURS[i % len(_HYPER_COLOURS)]
        pts = np.array([pos[p] for p in h.parents])
        centre = pts.mean(axis=0)
        hull = _padded_hull(pts, pad=0.38)
        ax.add_patch(Polygon(hull, closed=True, facecolor=colour, alpha=0.15, edgecolor=colour, lw=1.5, ls="--", zorder=1, label=f"hyperedge {h.label}"))
        cx, cy = pos[h.child]
        junction = centre + 0.45 * (np.array([cx, cy]) - centre)
        for p in pts:
            ax.plot([p[0], junction[0]], [p[1], junction[1]], color=colour, lw=2.5, zorder=2, solid_capstyle="round")
        ax.plot(*junction, marker="D", ms=10, color=colour, zorder=4)
        ax.add_patch(_arrow(tuple(junction), (cx, cy), r, colour, lw=3.2))
        ax.annotate(h.form, junction, xytext=(0, 9), textcoords="offset points", ha="center", fontsize=8, color=colour)
    for e in graph.edges:
        ax.add_patch(_arrow(pos[e.parent], pos[e.child], r, "#555555", lw=1.4, curved=graph.variable(e.parent).role != "covariate" and abs(pos[e.parent][0] - pos[e.child][0]) > 1.5))
        if e.form != "linear":
            mid = (np.array(pos[e.parent]) + np.array(pos[e.child])) / 2
            ax.annotate(e.form, mid, xytext=(0, 5), textcoords="offset points", ha="center", fontsize=7, color="#555555")
    for v in graph.variables:
        x, y = pos[v.name]
        ax.add_patch(plt.Circle((x, y), r, facecolor=_ROLE_COLOURS[v.role], edgecolor="black", lw=1, zorder=5))
        ax.text(x, y, v.name, ha="center", va="center", color="white", fontsize=11 if len(v.name) <= 2 else max(5, 16 - 2 * len(v.name)), fontweight="bold", zorder=6)
        if v.column != v.name:
            ax.text(x, y - r - 0.12, v.column, ha="center", va="top", fontsize=7, color="#333333", zorder=6)
    xs = np.array([p[0] for p in pos.values()])
    ys = np.array([p[1] for p in pos.values()])
    ax.set_xlim(xs.min() - 0.7, xs.max() + 0.7)
    ax.set_ylim(ys.min() - 0.8, ys.max() + 0.8)
    ax.set_aspect("equal")
    ax.axis("off")
    handles = [plt.Line2D([], [], marker="o", ls="", color=c, label=role) for role, c in _ROLE_COLOURS.items() if any(v.role == role for v in graph.variables)]
    handles.append(plt.Line2D([], [], color="#555555", lw=1.4, label="edge (additive)"))
    if graph.hyperedges:
        handles.append(plt.Line2D([], [], color=_HYPER_COLOURS[0], lw=3, marker="D", label="hyperedge (joint)"))
    ax.legend(handles=handles, loc="upper left", fontsize=7, frameon=False, bbox_to_anchor=(1.0, 1.0))
    ax.set_title(graph.name if title is None else title)
    return fig


def _arrow(a, b, r, colour, lw, curved=False) -> FancyArrowPatch:
    a, b = np.asarray(a, float), np.asarray(b, float)
    d = b - a
    n = np.linalg.norm(d) or 1.0
    start, end = a + d / n * (r if n > r else 0), b - d / n * r
    style = "arc3,rad=0.35" if curved else "arc3,rad=0.0"
    return FancyArrowPatch(tuple(start), tuple(end), arrowstyle="-|>", mutation_scale=14, color=colour, lw=lw, connectionstyle=style, zorder=3)


def _padded_hull(pts: np.ndarray, pad: float) -> np.ndarray:
    """A rounded polygon enclosing ``pts`` (circles of radius ``pad`` around each)."""
    ang = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    cloud = (pts[:, None, :] + pad * np.stack([np.cos(ang), np.sin(ang)], -1)[None]).reshape(-1, 2)
    # monotone-chain convex hull
    p = cloud[np.lexsort((cloud[:, 1], cloud[:, 0]))]

    def half(points):
        out: list = []
        for q in points:
            while len(out) >= 2 and _cross(out[-1] - out[-2], q - out[-2]) <= 0:
                out.pop()
            out.append(q)
        return out

    lower, upper = half(p), half(p[::-1])
    return np.array(lower[:-1] + upper[:-1])


def _cross(u: np.ndarray, v: np.ndarray) -> float:
    return float(u[0] * v[1] - u[1] * v[0])
