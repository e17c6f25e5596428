"""Figures and the self-contained HTML report of a batch-size study.

- :mod:`hgcnet_jax.report.plots`: matplotlib figures (object API, no pyplot state) and
  :func:`~hgcnet_jax.report.plots.save` (PNG + SVG, atomic).
- :mod:`hgcnet_jax.report.html`: :func:`~hgcnet_jax.report.html.render` /
  :func:`~hgcnet_jax.report.html.write` one HTML page with the figures inlined.
"""

from hgcnet_jax.report import html, plots
from hgcnet_jax.report.html import FIGURES, render, write

__all__ = ["plots", "html", "render", "write", "FIGURES"]
