"""A runs table checked against a :class:`Hypergraph` and put on the model's standardised scale.

:func:`prepare` runs every check on the table before any inference, each error naming
the column or variable and what to do; :class:`Scaling` maps values between raw units
and the standardised scale the generated model (:mod:`hgcnet_jax.causal.model`) works on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp
import numpy as np
import pandas as pd

from .hypergraph import Hypergraph

__all__ = ["MIN_ROWS", "Inputs", "DataError", "Scaling", "prepare"]

#: Fewest rows :func:`prepare` (and so :func:`hgcnet_jax.causal.fit`) accepts.
MIN_ROWS = 10

#: What the generated model takes: covariates, cut masks (``"cut:<var>"``) and ``"rows"``.
Inputs = dict[str, Any]


class DataError(ValueError):
    """A runs table that cannot be fitted (missing column, non-finite value …)."""


@dataclasses.dataclass(frozen=True)
class Scaling:
    """How raw columns map to the model's standardised scale, per variable.

    ``model = (transform(raw) − mean) / std``. Categorical covariates store their
    ``levels`` instead (codes are positions in that tuple).
    """

    mean: Mapping[str, float]
    std: Mapping[str, float]
    levels: Mapping[str, tuple]

    def to_model(self, graph: Hypergraph, name: str, raw: Any) -> np.ndarray:
        """Raw values of variable ``name`` → standardised model scale.

        Raises:
            ValueError: if a value is outside the variable's transform domain.
        """
        var = graph.variable(name)
        raw = np.asarray(raw, dtype=np.float64)
        if not np.all(np.isfinite(raw)):
            raise ValueError(f"value for {name!r} must be finite, got {raw}")
        if not np.all(var.in_domain(raw)):
            raise ValueError(f"value for {name!r} must be {var.domain_text} (transform {var.transform!r}), got {raw}")
        return (var.forward(raw) - self.mean[name]) / self.std[name]

    def to_raw(self, graph: Hypergraph, name: str, z: Any) -> np.ndarray:
        """Standardised model scale → raw units of variable ``name``."""
        var = graph.variable(name)
        return var.inverse(np.asarray(z, dtype=np.float64) * self.std[name] + self.mean[name])


def _which_runs(data: pd.DataFrame, rows: np.ndarray) -> str:
    """``"run_id 3, 7"`` (or ``"row 3, 7"`` without a ``run_id`` column) for row positions ``rows``."""
    ids = data["run_id"].to_numpy()[rows] if "run_id" in data.columns else rows
    return ("run_id " if "run_id" in data.columns else "row ") + ", ".join(map(str, ids.tolist()))


def prepare(graph: Hypergraph, data: pd.DataFrame, *, min_rows: int = MIN_ROWS) -> tuple[Inputs, dict, Scaling]:
    """Validate a runs table against ``graph`` and standardise it.

    Every check runs here, before any inference: each error names the column or
    variable and what to do.

    Args:
        graph: The hypergraph.
        data: One row per run.
        min_rows: Fewest rows accepted.

    Returns:
        ``(inputs, observed, scaling)``: ``inputs`` holds the covariates (float32
        standardised, or int32 codes for categorical ones) and the cut masks
        (``"cut:<var>"``, bool); ``observed`` maps every endogenous variable to its
        standardised float32 values; ``scaling`` maps back to raw units.

    Raises:
        TypeError: if ``data`` is not a DataFrame.
        DataError: on missing columns, too few rows, non-finite values, values
            outside a transform's domain, a constant treatment (or any constant
            endogenous column), or a cut column that is not boolean.
    """
    if not isinstance(graph, Hypergraph):
        raise TypeError(f"graph must be a Hypergraph, got {type(graph).__name__}")
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame (one row per run), got {type(data).__name__}")
    needed = [(v.name, v.column) for v in graph.variables] + [
        (v.name, v.cut_column) for v in graph.variables if v.cut_column
    ]
    missing = [f"{col!r} (for {name})" for name, col in needed if col not in data.columns]
    if missing:
        raise DataError(
            f"data is missing column(s) {', '.join(missing)}; available: {list(map(str, data.columns))}. "
            "Rename the columns or pass the column names to the Variable/Hypergraph.paper(columns=...)."
        )
    n = len(data)
    if n < min_rows:
        raise DataError(f"data has {n} rows; at least {min_rows} runs are needed to fit the model")
    inputs: Inputs = {}
    observed: dict[str, jnp.ndarray] = {}
    mean: dict[str, float] = {}
    std: dict[str, float] = {}
    levels: dict[str, tuple] = {}
    for v in graph.variables:
        col = data[v.column]
        if v.categorical:
            if col.isna().any():
                bad = int(np.flatnonzero(col.isna().to_numpy())[0])
                raise DataError(f"column {v.column!r} (covariate {v.name}) has missing labels, e.g. at row {bad}")
            codes, uniques = pd.factorize(col, sort=True)
            levels[v.name] = tuple(uniques.tolist())
            inputs[v.name] = jnp.asarray(codes, dtype=jnp.int32)
            continue
        try:
            raw = pd.to_numeric(col, errors="raise").to_numpy(dtype=np.float64)
        except (TypeError, ValueError):
            hint = "; mark it categorical=True if it holds labels" if v.role == "covariate" else ""
            raise DataError(f"column {v.column!r} (variable {v.name}) must be numeric{hint}") from None
        bad = np.flatnonzero(~np.isfinite(raw))
        if bad.size:
            which = _which_runs(data, bad)
            raise DataError(
                f"column {v.column!r} (variable {v.name}) has {bad.size} non-finite value(s) (NaN/inf) at "
                f"{which}: a mediator is NaN where its estimate is undefined (see mediators.measure); "
                "choose another column or drop or impute those runs explicitly before fitting"
            )
        out = np.flatnonzero(~v.in_domain(raw))
        if out.size:
            raise DataError(
                f"column {v.column!r} (variable {v.name}) has {out.size} value(s) outside the domain of its "
                f"{v.transform!r} transform ({v.domain_text}), first at row {int(out[0])}: {raw[out[0]]!r}; "
                f"runs: {_which_runs(data, out)}"
            )
        z = v.forward(raw)
        s = float(np.std(z))
        if not s > 1e-12 * max(1.0, float(np.abs(z).max())):
            what = "treatment" if v.role == "treatment" else f"{v.role}"
            raise DataError(
                f"column {v.column!r} ({what} {v.name}) is constant ({raw[0]!r}); "
                + (
                    "a causal effect of a treatment that never varies cannot be estimated"
                    if v.role == "treatment"
                    else "it cannot be standardised or carry any effect; drop it from the graph"
                )
            )
        mean[v.name], std[v.name] = float(np.mean(z)), s
        zs = jnp.asarray((z - mean[v.name]) / s, dtype=jnp.float32)
        if v.role == "covariate":
            inputs[v.name] = zs
        else:
            observed[v.name] = zs
    for v in graph.variables:
        if v.cut_column is None:
            continue
        cut = data[v.cut_column]
        vals = set(pd.unique(cut.dropna()))
        if cut.isna().any() or not vals <= {True, False, 0, 1}:
            raise DataError(
                f"cut column {v.cut_column!r} (marks runs where {v.name} was set by an experiment) must be "
                f"boolean (True/False or 0/1) without missing values; got values {sorted(map(str, vals))[:5]}"
            )
        inputs[f"cut:{v.name}"] = jnp.asarray(cut.to_numpy().astype(bool))
    for v in graph.variables:
        if v.error_column is None:
            continue
        if v.error_column not in data.columns:
            raise DataError(f"error column {v.error_column!r} (standard errors of {v.name}) is not in the data; "
                            f"available: {list(map(str, data.columns))}")
        try:
            se = pd.to_numeric(data[v.error_column], errors="raise").to_numpy(dtype=np.float64)
        except (TypeError, ValueError):
            raise DataError(f"error column {v.error_column!r} (standard errors of {v.name}) must be numeric") from None
        bad = np.flatnonzero(~np.isfinite(se) | (se < 0))
        if bad.size:
            raise DataError(
                f"error column {v.error_column!r} (standard errors of {v.name}) has {bad.size} value(s) that are "
                f"negative, NaN or inf, first {se[bad[0]]!r} at {_which_runs(data, bad)}; a standard error must "
                "be finite and >= 0 (leave error_column unset to fit without measurement error)"
            )
        raw = data[v.column].to_numpy(dtype=np.float64)
        inputs[f"se:{v.name}"] = jnp.asarray(se * np.exp(v.log_forward_slope(raw)) / std[v.name], dtype=jnp.float32)
    inputs["rows"] = jnp.arange(n, dtype=jnp.int32)
    return inputs, observed, Scaling(mean, std, levels)
