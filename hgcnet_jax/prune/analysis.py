r"""Accuracy-against-sparsity curves, the phase-shift point, and plots.

**Phase shift.** The accuracy of a pruned network typically stays flat and then falls
once too many weights are gone. The phase-shift point is located by a *continuous
two-segment (hinge) linear fit* on the sparsity axis
:math:`u = -\log_{10}(1 - s)` (which spreads 90 %, 95 %, 98 % apart; 50 % → 0.30,
90 % → 1, 98 % → 1.70):

.. math:: \mathrm{acc} \approx a + b\,u + c\,\max(0, u - \tau),

with :math:`(a, b, c)` by least squares for every :math:`\tau` on a grid strictly inside
the observed range, and :math:`\hat\tau = \arg\min_\tau \mathrm{SSE}(\tau)`. Its uncertainty
comes from a case bootstrap: the (seed, level) points are resampled with replacement
(``n_boot`` times) and refitted; the standard deviation and the 5–95 % percentile
interval of :math:`\hat\tau` are reported, in sparsity units :math:`s = 1 - 10^{-\tau}`.
With few levels this is coarse; the interval says how coarse.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["PhaseShift", "PairedComparison", "hinge_fit", "phase_shift", "paired_comparison", "summarize", "plot_curves",
           "plot_spectra", "to_u", "from_u"]


def to_u(s):
    """Sparsity → :math:`-\\log_{10}(1 - s)`."""
    return -np.log10(1.0 - np.asarray(s, np.float64))


def from_u(u):
    """:math:`-\\log_{10}(1 - s)` → sparsity."""
    return 1.0 - 10.0 ** (-np.asarray(u, np.float64))


@dataclass(frozen=True)
class PhaseShift:
    """The phase-shift point of one method.

    Attributes:
        sparsity: :math:`1 - 10^{-\\hat\\tau}`.
        sd: bootstrap standard deviation (sparsity units).
        lo, hi: 5 % and 95 % bootstrap percentiles (sparsity units).
        slope_before, slope_after: accuracy per unit of :math:`u` on each side.
        n_points: points used.
    """

    sparsity: float
    sd: float
    lo: float
    hi: float
    slope_before: float
    slope_after: float
    n_points: int


def hinge_fit(u: np.ndarray, y: np.ndarray, *, grid: int = 200) -> tuple[float, np.ndarray, float]:
    """Least-squares continuous hinge fit; returns ``(tau, (a, b, c), sse)``.

    Raises:
        ValueError: fewer than 4 points or fewer than 3 distinct ``u``.
    """
    u = np.asarray(u, np.float64)
    y = np.asarray(y, np.float64)
    if u.shape != y.shape or u.ndim != 1:
        raise ValueError(f"hinge_fit: u and y must be 1-D of equal length, got {u.shape} and {y.shape}")
    if u.size < 4 or np.unique(u).size < 3:
        raise ValueError("hinge_fit: need at least 4 points at 3 distinct sparsities")
    lo, hi = np.min(u), np.max(u)
    taus = np.linspace(lo, hi, grid + 2)[1:-1]
    best = (np.inf, None, None)
    for t in taus:
        A = np.stack([np.ones_like(u), u, np.maximum(0.0, u - t)], axis=1)
        coef, *_ = np.linalg.lstsq(A, y, rcond=None)
        sse = float(np.sum((A @ coef - y) ** 2))
        if sse < best[0]:
            best = (sse, t, coef)
    return float(best[1]), best[2], best[0]


def phase_shift(sparsity, acc, *, n_boot: int = 500, seed: int = 0, grid: int = 200) -> PhaseShift:
    """Phase-shift point of an accuracy-vs-sparsity curve with bootstrap uncertainty (module docstring)."""
    u = to_u(sparsity)
    y = np.asarray(acc, np.float64)
    tau, coef, _ = hinge_fit(u, y, grid=grid)
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        i = rng.integers(0, u.size, u.size)
        if np.unique(u[i]).size < 3:
            continue
        boots.append(hinge_fit(u[i], y[i], grid=grid)[0])
    b = from_u(np.asarray(boots)) if boots else np.asarray([np.nan])
    return PhaseShift(
        sparsity=float(from_u(tau)), sd=float(np.std(b)), lo=float(np.percentile(b, 5)), hi=float(np.percentile(b, 95)),
        slope_before=float(coef[1]), slope_after=float(coef[1] + coef[2]), n_points=int(u.size),
    )



@dataclass(frozen=True)
class PairedComparison:
    """Method A against method B on the same seeds (:func:`paired_comparison`).

    Attributes:
        n: number of pairs.
        mean_diff: mean of ``a - b``.
        lo, hi: the two-sided ``level`` t-interval of the mean difference.
        p_t: two-sided paired t-test p-value.
        p_exact: two-sided exact sign-flip permutation p-value (all ``2**n`` sign
            patterns); its smallest possible value is ``2 / 2**n`` (0.0625 for 5 pairs).
        verdict: ``"A better"``, ``"B better"`` (the t-interval excludes 0) or
            ``"no difference detected"``.
    """

    n: int
    mean_diff: float
    lo: float
    hi: float
    p_t: float
    p_exact: float
    verdict: str


def paired_comparison(a, b, *, level: float = 0.95) -> PairedComparison:
    """Paired comparison of two methods' results on the same seeds.

    Args:
        a, b: ``(n,)`` results of the two methods, pair ``i`` on seed ``i``.
        level: confidence level of the interval.

    Returns:
        A :class:`PairedComparison`.
    """
    from itertools import product

    from scipy import stats

    d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    if d.ndim != 1 or d.size < 2:
        raise ValueError(f"paired_comparison: need two equal-length 1-d arrays of >= 2 pairs, got {np.shape(d)}")
    n = d.size
    m = float(d.mean())
    sd = float(d.std(ddof=1))
    if sd == 0.0:
        lo = hi = m
        p_t = 1.0 if m == 0.0 else 0.0
    else:
        half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * sd / np.sqrt(n)
        lo, hi = m - half, m + half
        p_t = float(2 * stats.t.sf(abs(m) / (sd / np.sqrt(n)), n - 1))
    if n <= 16:
        signs = np.array(list(product((1.0, -1.0), repeat=n)))
        null = np.abs(signs @ d)
        p_exact = float(np.mean(null >= abs(d.sum()) - 1e-12 * max(1.0, abs(d.sum()))))
    else:
        p_exact = float("nan")
    verdict = "A better" if lo > 0 else "B better" if hi < 0 else "no difference detected"
    return PairedComparison(n, m, lo, hi, p_t, p_exact, verdict)


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and sd over seeds per (method, level): sparsity, test accuracy, λ_max."""
    g = table.groupby(["method", "level"], sort=True)
    out = g.agg(
        target=("target_sparsity", "first"),
        sparsity=("sparsity", "mean"),
        acc_mean=("test_acc", "mean"),
        acc_sd=("test_acc", "std"),
        lam_mean=("lambda_max", "mean"),
        lam_sd=("lambda_max", "std"),
        n=("seed", "count"),
    ).reset_index()
    return out


def plot_curves(table: pd.DataFrame, path, *, title: str = "") -> None:
    """Accuracy (mean ± sd over seeds) against sparsity per method; the dense model as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = summarize(table)
    fig, ax = plt.subplots(figsize=(6, 4))
    dense = s[s.method == "dense"]
    if len(dense):
        ax.axhline(float(dense.acc_mean.iloc[0]), color="k", ls=":", label="dense")
    for m in [m for m in s.method.unique() if m != "dense"]:
        d = s[s.method == m].sort_values("sparsity")
        ax.errorbar(to_u(d.sparsity), d.acc_mean, yerr=d.acc_sd.fillna(0), marker="o", capsize=3, label=m)
    ticks = np.asarray([0.5, 0.8, 0.9, 0.95, 0.98, 0.99])
    ax.set_xticks(to_u(ticks))
    ax.set_xticklabels([f"{t:.0%}" for t in ticks])
    ax.set_xlabel("sparsity (log scale of remaining weights)")
    ax.set_ylabel("test accuracy")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_spectra(spectra: dict, path, *, title: str = "") -> None:
    """Smoothed Hessian spectral densities (log density) per (method@level)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, sp in spectra.items():
        if not sp:
            continue
        ax.semilogy(sp["grid"], np.maximum(np.asarray(sp["density"]), 1e-8), label=name)
    ax.set_xlabel("Hessian eigenvalue")
    ax.set_ylabel("density")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
