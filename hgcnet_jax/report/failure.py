"""The page a study writes when a phase fails: which phase, why, what is kept, how to resume."""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["DESCRIPTIONS", "failure_page"]

#: What each kept file of a study folder holds.
DESCRIPTIONS = {
    "config.json": "the config and its fingerprint",
    "sweep.parquet": "the sweep: one row per run (losses, accuracies, diverged)",
    "runs.parquet": "the runs with the mediator columns N, S, C",
    "posterior_hypergraph.nc": "posterior of the hypergraph model (ArviZ netCDF)",
    "posterior_pairwise.nc": "posterior of the pairwise model (ArviZ netCDF)",
    "summary.json": "every number of the report",
    "phases.json": "when each phase ran, and this failure",
}


def failure_page(out: Path, config: Any, phase: str, reason: str, kept: Sequence[str]) -> str:
    """The ``report.html`` of a study that failed in ``phase``: why, what is kept, how to resume.

    Args:
        out: the study folder (its runs table, if any, is summarised).
        config: the study's :class:`~hgcnet_jax.config.StudyConfig`.
        phase: the phase that failed.
        reason: why.
        kept: the finished files in ``out`` (names relative to it).
    """
    esc = html.escape
    items = "".join(f"<li><code>{esc(n)}</code>: {esc(DESCRIPTIONS.get(n, 'the sweep checkpoints (resumable)'))}"
                    "</li>" for n in kept)
    table = ""
    for name in ("runs.parquet", "sweep.parquet"):
        if (out / name).exists():
            try:
                runs = pd.read_parquet(out / name)
                g = runs.groupby("batch_size")
                m = config.mediators.outcome
                df = pd.DataFrame({"runs": g.size(), "diverged": g["diverged"].sum().astype(int),
                                   "median train_loss": g["train_loss"].median(), f"mean {m}": g[m].mean()})
                table = f"<h2>The runs so far ({esc(name)})</h2>" + df.to_html(float_format=lambda x: f"{x:.4g}")
            except Exception:  # a table we cannot summarise is still listed above
                table = ""
            break
    title = f"Batch-size study: {config.model.name} on {config.data.name} (did not finish)"
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        '<meta name="hgcnet-study" content="failed">'
        f"<title>{esc(title)}</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;"
        "line-height:1.45}.fail{border-left:4px solid #b00020;padding:.5rem 1rem;background:#fdecea}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2rem .5rem;text-align:right}"
        "pre{background:#f4f4f4;padding:.5rem;overflow:auto}</style></head><body>"
        f"<h1>{esc(title)}</h1>"
        f'<div class="fail"><p><strong>The {esc(phase)} phase failed.</strong></p><p>{esc(reason)}</p></div>'
        f"<h2>What is finished and kept in this folder</h2><ul>{items}</ul>"
        "<p>Fix the cause and run the same command again: the finished phases are read back, not recomputed. "
        "A changed config is a new study (choose another <code>--out</code> or pass <code>--overwrite</code>).</p>"
        f"{table}<h2>Config</h2><pre>{esc(config.to_toml())}</pre></body></html>\n"
    )
