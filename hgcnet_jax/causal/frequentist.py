"""A frequentist companion: permutation test and bootstrap interval for a mean difference.

For claims such as "batch 16 beats batch 512, p < 0.01 over 10 seeds": the runs at
two treatment levels (typically one per seed) are compared by the difference of their
mean outcomes, with

* an exact-in-distribution Monte Carlo permutation test of "no difference"
  (labels shuffled ``num_permutations`` times; the p-value counts the observed
  statistic itself, ``p = (1 + #{|T*| ≥ |T|}) / (1 + R)``, Phipson & Smyth 2010), and
* a percentile bootstrap interval (each group resampled with replacement).

Everything is vectorised with :mod:`jax.random` (no Python loop per resample).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

__all__ = ["PermutationResult", "permutation_test"]


@dataclasses.dataclass(frozen=True)
class PermutationResult:
    """Result of :func:`permutation_test`.

    Attributes:
        diff: ``mean(outcome | treatment=a) − mean(outcome | treatment=b)``.
        p_value: Permutation p-value for the chosen alternative.
        lower, upper: Percentile bootstrap interval of ``diff`` at level ``prob``.
        prob: Interval level.
        n_a, n_b: Runs in each group.
        num_permutations, num_bootstrap: Resamples used.
        alternative: ``"two-sided"``, ``"greater"`` (a > b) or ``"less"``.
    """

    diff: float
    p_value: float
    lower: float
    upper: float
    prob: float
    n_a: int
    n_b: int
    num_permutations: int
    num_bootstrap: int
    alternative: str


def permutation_test(
    data: pd.DataFrame,
    treatment: str,
    a: Any,
    b: Any,
    outcome: str,
    *,
    key: jax.Array,
    num_permutations: int = 10_000,
    num_bootstrap: int = 10_000,
    prob: float = 0.95,
    alternative: Literal["two-sided", "greater", "less"] = "two-sided",
) -> PermutationResult:
    """Permutation test and bootstrap interval for the difference in mean outcome.

    Args:
        data: Runs table.
        treatment: Column with the treatment level (e.g. ``"batch_size"``).
        a, b: The two levels compared (rows with other levels are ignored).
        outcome: Column with the outcome (e.g. ``"test_acc"``).
        key: PRNG key.
        num_permutations: Label shuffles.
        num_bootstrap: Bootstrap resamples.
        prob: Bootstrap interval level.
        alternative: ``"two-sided"``, ``"greater"`` (``a`` has the larger mean) or ``"less"``.

    Returns:
        A :class:`PermutationResult`.

    Raises:
        ValueError: on missing columns, non-finite outcomes, or fewer than 2 runs per group.
    """
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    for name, col in (("treatment", treatment), ("outcome", outcome)):
        if col not in data.columns:
            raise ValueError(f"{name} column {col!r} not in data; columns: {list(map(str, data.columns))}")
    if alternative not in ("two-sided", "greater", "less"):
        raise ValueError(f"alternative must be 'two-sided', 'greater' or 'less', got {alternative!r}")
    for name, val in (("num_permutations", num_permutations), ("num_bootstrap", num_bootstrap)):
        if not isinstance(val, (int, np.integer)) or val < 1:
            raise ValueError(f"{name} must be a positive int, got {val!r}")
    if not 0 < prob < 1:
        raise ValueError(f"prob must be in (0, 1), got {prob!r}")
    t = data[treatment].to_numpy()
    y = pd.to_numeric(data[outcome], errors="coerce").to_numpy(dtype=np.float64)
    ya, yb = y[t == a], y[t == b]
    for lev, ys in ((a, ya), (b, yb)):
        if ys.size < 2:
            raise ValueError(f"need at least 2 runs with {treatment} == {lev!r}, found {ys.size}")
        if not np.all(np.isfinite(ys)):
            raise ValueError(f"outcome {outcome!r} has non-finite values among runs with {treatment} == {lev!r}")
    na, nb = ya.size, yb.size
    centre = float(np.concatenate([ya, yb]).mean())  # centring keeps float32 accurate
    pooled = jnp.asarray(np.concatenate([ya, yb]) - centre, dtype=jnp.float32)
    stats, boot = _resample(key, pooled, na, int(num_permutations), int(num_bootstrap))
    stats = np.asarray(stats, dtype=np.float64)
    boot = np.asarray(boot, dtype=np.float64)
    obs = float(ya.mean() - yb.mean())
    tol = 1e-6 * max(1.0, abs(obs))
    if alternative == "two-sided":
        extreme = np.abs(stats) >= abs(obs) - tol
    elif alternative == "greater":
        extreme = stats >= obs - tol
    else:
        extreme = stats <= obs + tol
    p = (1.0 + extreme.sum()) / (1.0 + num_permutations)
    lo, hi = np.quantile(boot, [(1 - prob) / 2, (1 + prob) / 2])
    return PermutationResult(
        diff=obs,
        p_value=float(p),
        lower=float(lo),
        upper=float(hi),
        prob=float(prob),
        n_a=int(na),
        n_b=int(nb),
        num_permutations=int(num_permutations),
        num_bootstrap=int(num_bootstrap),
        alternative=alternative,
    )


@functools.partial(jax.jit, static_argnames=("n_a", "num_permutations", "num_bootstrap"))
def _resample(key: jax.Array, pooled: jax.Array, n_a: int, num_permutations: int, num_bootstrap: int):
    """Permutation statistics and bootstrap differences, vectorised over resamples."""
    kp, ka, kb = jax.random.split(key, 3)
    n_b = pooled.shape[0] - n_a
    order = jnp.argsort(jax.random.uniform(kp, (num_permutations, pooled.shape[0])), axis=1)
    perms = pooled[order]  # uniformly random permutations (ties have probability 0)
    stats = perms[:, :n_a].mean(axis=1) - perms[:, n_a:].mean(axis=1)
    ya, yb = pooled[:n_a], pooled[n_a:]
    ia = jax.random.randint(ka, (num_bootstrap, n_a), 0, n_a)
    ib = jax.random.randint(kb, (num_bootstrap, n_b), 0, n_b)
    boot = ya[ia].mean(axis=1) - yb[ib].mean(axis=1)
    return stats, boot
