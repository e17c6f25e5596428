"""Is a mediator signal or noise? The measurement error of each mediator against its spread across arms.

A mediator column of a runs table (from :func:`hgcnet_jax.mediators.measure` or
:func:`hgcnet_jax.mediators.probe_table`) carries its error column next to it:
``<column>_se`` (a standard error) or ``<column>_err`` (a deterministic bound). When
the typical run's error is as large as the spread of the column's arm means across
the treatment levels, the arms cannot be told apart by that measurement: any effect
of the treatment on it, or through it on the outcome, is fitted to noise. Such a
mediator is *not identified* (issue #19: on a user's 3-class MLP, ``noise_grad_norm_sq``
was negative in 6 of 12 runs, its bootstrap error larger than its range, and the paper's
graph was fitted to it without a word).

:func:`identification` makes the comparison; :func:`hgcnet_jax.causal.fit` warns
(:class:`MediatorNotIdentifiedWarning`) and records the table on the Fit
(``Fit.identification``), and :func:`hgcnet_jax.causal.criticize` fails the criticism
for each mediator that is not identified (``Criticism.not_identified``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .hypergraph import Hypergraph

__all__ = ["MediatorNotIdentifiedWarning", "identification", "error_column_of", "not_identified_message"]

#: The columns of :func:`identification`'s table.
COLUMNS = ("variable", "column", "error_column", "median_error", "spread", "ratio", "identified", "runs")


class MediatorNotIdentifiedWarning(UserWarning):
    """A mediator's measurement error is as large as its spread across the treatment's arms."""


def error_column_of(table: pd.DataFrame, column: str) -> str | None:
    """The error column next to ``column`` in ``table``: ``<column>_se``, else ``<column>_err``, else ``None``."""
    for suffix in ("_se", "_err"):
        if f"{column}{suffix}" in table.columns:
            return f"{column}{suffix}"
    return None


def identification(graph: Hypergraph, table: pd.DataFrame, *, max_ratio: float = 1.0) -> pd.DataFrame:
    """For every mediator of ``graph``: its measurement error, its spread across arms, and the verdict.

    With ``e_i`` the error column of run ``i`` (see :func:`error_column_of`) and ``m_b`` the
    mean of the mediator's column over the runs of treatment level ``b``:

    * ``median_error = median_i e_i`` (finite errors only),
    * ``spread = max_b m_b − min_b m_b`` (raw units, as the errors),
    * ``ratio = median_error / spread``; the mediator is *identified* unless
      ``ratio >= max_ratio``. A mediator without an error column, or whose errors are
      all missing, is not judged (``identified`` true, ``ratio`` NaN); a spread of 0 with
      a positive error gives ``ratio = inf``.

    Args:
        graph: The hypergraph (its treatment's column defines the arms).
        table: The runs table (one row per run).
        max_ratio: The error-to-spread ratio from which a mediator is not identified.

    Returns:
        One row per mediator: ``variable, column, error_column, median_error, spread,
        ratio, identified, runs`` (``runs``: the ``run_id`` values, else row positions,
        of the runs whose own error is at least the spread; empty when identified).

    Raises:
        TypeError: if ``graph`` is not a Hypergraph or ``table`` not a DataFrame.
        ValueError: for a non-positive ``max_ratio`` or a column missing from ``table``.
    """
    if not isinstance(graph, Hypergraph):
        raise TypeError(f"identification: graph must be a Hypergraph, got {type(graph).__name__}")
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"identification: table must be a pandas DataFrame (one row per run), got {type(table).__name__}")
    if not max_ratio > 0:
        raise ValueError(f"identification: max_ratio must be > 0, got {max_ratio!r}")
    tcol = graph.variable(graph.treatment).column
    if tcol not in table.columns:
        raise ValueError(f"identification: table has no column {tcol!r} for the treatment {graph.treatment!r}")
    arms = table[tcol].to_numpy()
    ids = table["run_id"].to_numpy() if "run_id" in table.columns else np.arange(len(table))
    rows = []
    for v in graph.variables:
        if v.role != "mediator":
            continue
        if v.column not in table.columns:
            raise ValueError(f"identification: table has no column {v.column!r} for mediator {v.name!r}")
        x = pd.to_numeric(table[v.column], errors="coerce").to_numpy(np.float64)
        means = [np.nanmean(x[arms == b]) for b in pd.unique(arms)]
        spread = float(np.nanmax(means) - np.nanmin(means)) if np.isfinite(means).any() else float("nan")
        ecol = error_column_of(table, v.column)
        med, ratio, ok, runs = float("nan"), float("nan"), True, ()
        if ecol is not None:
            e = np.abs(pd.to_numeric(table[ecol], errors="coerce").to_numpy(np.float64))
            if np.isfinite(e).any() and np.isfinite(spread):
                med = float(np.nanmedian(e))
                ratio = med / spread if spread > 0 else (float("inf") if med > 0 else float("nan"))
                ok = not ratio >= max_ratio
                if not ok:
                    runs = tuple(ids[np.isfinite(e) & (e >= spread)].tolist())
        rows.append(dict(variable=v.name, column=v.column, error_column=ecol, median_error=med, spread=spread,
                         ratio=ratio, identified=bool(ok), runs=runs))
    return pd.DataFrame(rows, columns=list(COLUMNS))


def not_identified_message(row, treatment_column: str) -> str:
    """One sentence naming a not-identified mediator's column, its errors and runs (warnings, criticism)."""
    runs = ", ".join(map(str, row.runs))
    return (f"mediator {row.variable} (column {row.column!r}) is not identified: its measurement error "
            f"(median {row.error_column} {row.median_error:.4g}) is {row.ratio:.3g} times the spread of its "
            f"arm means across {treatment_column} ({row.spread:.4g}); runs whose error exceeds that spread: "
            f"{runs or 'none'}; an effect through it is noise, not a finding: choose another column, "
            "measure more precisely (more examples, probes, bootstrap) or widen the sweep")
