"""The critical batch size: steps against examples to a target, and B_crit against the measured noise scale.

    nice -n 10 python experiments/bs_critical.py              # the full plan (resumes cell by cell)
    python experiments/bs_critical.py --quick --out DIR       # a tiny smoke run (the tests run it)
    python experiments/bs_critical.py --report-only           # rewrite the section from the state

Issue #18, reproduction 9. McCandlish, Kaplan, Amodei et al. (2018, "An Empirical Model of
Large-Batch Training") predict that the optimiser steps ``S`` and examples ``E = B·S`` that SGD,
at the best step size for each batch size ``B``, needs to reach a fixed loss obey

    S/S_min − 1 = (E/E_min − 1)⁻¹,   i.e.   S(B) = S_min (1 + B_crit / B),   B_crit = E_min / S_min,

and that ``B_crit ≈ B_noise = tr(HΣ)/(GᵀHG)``, the gradient noise scale measured during training
(``B_simple = tr Σ / |G|²`` its Hessian-free proxy). Here, per setting:

* every ``B`` of a geometric grid is trained with plain SGD (no momentum, no regulariser, no
  dropout: the only noise is the minibatch's, the one ``B_noise`` describes) for a window of five
  learning rates on a √2 grid, ``seeds`` seeds each, and evaluated on the whole training split
  every ``eval_every(B)`` steps (``evals`` evaluations per run);
* a target is a training loss (eval mode, the full training split); ``S`` of a run is the first
  evaluated step at which that loss is ≤ the target (``inf`` if never: such runs stay in the
  medians, as the largest values, and are counted in the report); per ``B`` the learning rate with
  the smallest median ``S`` over seeds is kept, and ``S(B)`` is that median;
* ``S = S_min + E_min/B`` is fitted by least squares of the relative residual ``(S − Ŝ)/S``
  (closed form), ``R²`` is given on ``log S`` next to a power law's, and ``B_crit`` gets a 95 %
  bootstrap interval over seeds (the learning-rate choice redone in every replicate);
* ``B_noise`` and ``B_simple`` are measured by :func:`hgcnet_jax.mediators.gradient_noise` (every
  training example's gradient, ``hessian=True``: Hutchinson probes of ``tr(HΣ)`` in example space)
  at the parameters of the best-lr runs at the evaluation where they first reach the target (the
  sweep saves every evaluated step's parameters, ``trajectory=evals``), with the training split as
  the population SGD samples from: ``G`` is the full-batch gradient ``ḡ`` and ``Σ`` the covariance
  over the ``n`` training examples (the library's sample-based values rescaled: ``·(n−1)/n`` and, for
  ``GᵀHG``, without its ``−tr(HΣ)/n`` correction). The two-batch estimator
  (:func:`~hgcnet_jax.mediators.two_batch_noise`) is McCandlish's cheap approximation of the same
  quantities and is not needed when every per-example gradient can be computed.
* verdict (code): ``B_crit / B_noise`` within a factor 2, judged by the joint bootstrap interval
  of the ratio (seeds for ``B_crit``, measured runs for the median ``B_noise``).

Settings (``FULL``): GCN (2 layers, 16 hidden, dropout 0) on Cora's full 60/20/20 split
(``n = 1626`` training nodes; a node task's step propagates the whole graph, so its cost does not
depend on ``B``), ``B = 4 … 512``; an MLP (784-64-10) on a seeded 10 000-image subset of
Fashion-MNIST's training images (LeNet-5 costs ~48 s per epoch per seed on this CPU, and every
evaluation passes the whole training split, so neither LeNet-5 nor the 60 000 images fit the
budget), ``B = 16 … 1024``. The step cap of ``B`` is ``c0 + c1/B`` and every learning-rate window was
centred on a pilot's best rate (one seed), so that every ``B`` reaches the lowest target with a
margin; a chosen rate at the edge of its window is flagged in the report.

Expected cost (one-seed probes of the smallest and largest B of each setting, on this 2-core CPU
shared with two other experiments and CI, load ≈ 7): Cora ≈ 25 runs × 10 200 steps at ≈ 5 ms per
step per run (its evaluations included) ≈ 22 min, 8 compilations ≈ 2 min and 72 noise measurements
at ≈ 7 s ≈ 8 min; Fashion-MNIST ≈ 175 runs at ≈ 5 s (their 80 evaluations of 11 000 images
dominate) ≈ 15 min, 7 compilations ≈ 2 min and ≈ 63 noise measurements ≈ 7 min: ≈ 55 min
wall-clock at that load, ≈ 40 min of CPU time (less on an idle machine).

Resumable cell by cell: a cell is one (setting, B) sweep with its noise measurements, saved in
``experiments/state/bs_critical/`` (the runs, the evaluated losses of every run, the noise points);
an interrupted cell is re-run whole (its saved trajectory would make every sweep checkpoint
hundreds of MB; the longest cell, Cora at B = 4, takes ~10 min).
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "experiments"))
sys.path.insert(0, str(REPO))

NAME = "bs_critical"
STATE_DIR = REPO / "experiments" / "state" / NAME
FIG_DIR = REPO / "docs" / "results" / NAME
LR_FACTOR = 2 ** 0.5
FACTOR = 2.0                       # the verdict: B_crit / B_noise within [1/FACTOR, FACTOR]
METRIC = "train_loss"              # the target's metric (eval mode, the whole training split)

CLAIM = ("**The claim** (McCandlish, Kaplan, Amodei et al. 2018, \"An Empirical Model of Large-Batch Training\"; "
         "`FACTS.md`): the steps S and examples E = B·S needed to reach a fixed loss, at the best step size per B, "
         "obey S/S_min − 1 = (E/E_min − 1)⁻¹, i.e. S(B) = S_min (1 + B_crit/B) with B_crit = E_min/S_min, and "
         "B_crit ≈ B_noise = tr(HΣ)/(GᵀHG), the gradient noise scale measured during training "
         "(B_simple = tr Σ/|G|² its Hessian-free proxy).")


@dataclass(frozen=True)
class Setting:
    """One model on one dataset, with its batch sizes, learning-rate windows, step caps and targets.

    Attributes:
        name: the cells' prefix.
        label: how the report names it.
        dataset: a :func:`hgcnet_jax.data.load` name.
        model: a model registry name; ``model_kwargs`` its fields as ``((name, value), ...)``.
        batch_sizes: the geometric grid of ``B``.
        lr_base, lr_first, lr_count: the learning rates of ``batch_sizes[i]`` are
            ``lr_base · √2^(lr_first[i] + j)``, ``j = 0 … lr_count − 1``.
        cap: ``(c0, c1)``: the step cap of ``B`` is about ``c0 + c1/B``.
        evals: evaluations per run (``eval_every = round(cap / evals)``, steps = ``evals · eval_every``).
        targets: training-loss targets, highest first; the last (lowest) is the primary one.
        subset: ``(train, val, test)`` sizes of a seeded subset (image data), ``None`` for the whole split.
        num_nodes: ``csbm`` only: the synthetic graph's size (the quick run).
        noise_chunk: examples per chunk of the per-example gradients.
    """

    name: str
    label: str
    dataset: str
    model: str
    model_kwargs: tuple = ()
    batch_sizes: tuple = ()
    lr_base: float = 0.25
    lr_first: tuple = ()
    lr_count: int = 5
    cap: tuple = (400, 14_000)
    evals: int = 150
    targets: tuple = ()
    subset: tuple | None = None
    num_nodes: int | None = None
    noise_chunk: int = 512

    def __post_init__(self):
        if len(self.lr_first) != len(self.batch_sizes):
            raise ValueError(f"Setting {self.name}: lr_first needs one entry per batch size")
        if list(self.targets) != sorted(self.targets, reverse=True) or len(set(self.targets)) != len(self.targets):
            raise ValueError(f"Setting {self.name}: targets must be distinct and highest first")
        if list(self.batch_sizes) != sorted(set(self.batch_sizes)):
            raise ValueError(f"Setting {self.name}: batch_sizes must be increasing")

    @property
    def primary(self) -> float:
        return float(self.targets[-1])


@dataclass(frozen=True)
class Plan:
    settings: tuple
    seeds: int = 5
    noise_seeds: int = 3                 # per (B, target): the best-lr runs measured, lowest seeds first
    num_probes: int = 8                  # Rademacher probes of tr(HΣ)
    num_bootstrap: int = 2000

    def to_dict(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self)))


CORA = Setting(name="cora", label="GCN / Cora (full split)", dataset="cora", model="gcn",
               model_kwargs=(("dropout", 0.0),), batch_sizes=(4, 8, 16, 32, 64, 128, 256, 512),
               lr_base=0.25, lr_first=(0, 1, 2, 3, 3, 3, 4, 4), cap=(400, 14_000), evals=150,
               targets=(0.3, 0.2, 0.1), noise_chunk=542)
FMNIST = Setting(name="fmnist", label="MLP 784-64-10 / Fashion-MNIST (10 000 training images)",
                 dataset="fashion_mnist", model="mlp", model_kwargs=(("hidden", (64,)),),
                 batch_sizes=(16, 32, 64, 128, 256, 512, 1024), lr_base=0.1, lr_first=(0, 0, 1, 1, 2, 2, 2),
                 cap=(250, 14_000), evals=80, targets=(0.7, 0.6, 0.5), subset=(10_000, 500, 500), noise_chunk=500)
FULL = Plan(settings=(CORA, FMNIST))
QUICK = Plan(
    settings=(Setting(name="csbm", label="GCN / CSBM (160 nodes)", dataset="csbm", model="gcn",
                      model_kwargs=(("dropout", 0.0),), batch_sizes=(4, 16), lr_base=0.5, lr_first=(0, 1),
                      lr_count=2, cap=(12, 96), evals=10, targets=(0.6, 0.5), num_nodes=160, noise_chunk=96),),
    seeds=3, noise_seeds=2, num_probes=2, num_bootstrap=50)


# --------------------------------------------------------------------------------------
# Pure pieces (tested on their own)
# --------------------------------------------------------------------------------------
def lr_window(s: Setting, b: int) -> tuple[float, ...]:
    """The learning rates tried at batch size ``b`` (rounded to 4 significant digits)."""
    k0 = s.lr_first[s.batch_sizes.index(b)]
    return tuple(float(f"{s.lr_base * LR_FACTOR ** (k0 + j):.4g}") for j in range(s.lr_count))


def schedule(s: Setting, b: int) -> tuple[int, int]:
    """``(eval_every, total_steps)`` of batch size ``b``: the cap ``c0 + c1/b`` cut into ``s.evals`` periods."""
    cap = s.cap[0] + s.cap[1] / b
    every = max(1, int(math.floor(cap / s.evals + 0.5)))
    return every, every * s.evals


def steps_to_target(traj, target: float, metric: str = METRIC):
    """Per ``run_id``, the first evaluated ``step`` whose ``metric`` is ≤ ``target``; ``inf`` if none.

    Args:
        traj: a table with columns ``run_id``, ``step`` and ``metric`` (one row per evaluation).
        target: the threshold; a NaN value (a diverged run) never reaches it.

    Returns:
        A float Series indexed by ``run_id`` (every run of ``traj``, sorted).
    """
    ids = np.sort(traj["run_id"].unique())
    hit = traj[traj[metric].to_numpy(np.float64) <= target]
    first = hit.groupby("run_id")["step"].min().astype(np.float64)
    return first.reindex(ids).fillna(np.inf).rename("steps")


def best_steps(S: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per batch size, the learning rate with the smallest median steps over seeds, and that median.

    Args:
        S: ``(..., batch sizes, lrs, seeds)`` steps to the target (``inf``: never reached), the lrs
            of each batch size increasing.

    Returns:
        ``(S_best (..., batch sizes), lr_index (..., batch sizes))``; ties go to the smaller lr, and a
        batch size whose every median is ``inf`` gets ``inf`` (lr index 0).
    """
    med = np.median(S, axis=-1)
    j = np.argmin(med, axis=-1)
    return np.take_along_axis(med, j[..., None], axis=-1)[..., 0], j


def fit_hyperbola(x: np.ndarray, S: np.ndarray) -> dict[str, np.ndarray]:
    """``S = S_min + E_min·x`` (``x = 1/B``) by least squares of the relative residual, in closed form.

    Minimises ``Σ_i ((S_i − S_min − E_min x_i)/S_i)²`` over the finite ``S_i`` (an unreached batch
    size, ``inf``, is left out): the weighted normal equations with weights ``1/S_i²``, i.e. the
    first Gauss-Newton step of the fit of ``log S``, since the spread of ``S`` over seeds grows with
    ``S``. Vectorised over leading axes of ``S`` (bootstrap replicates).

    Args:
        x: ``(k,)`` ``1/B`` (or any noise-equivalent ``1/B_eff``).
        S: ``(..., k)`` steps to the target.

    Returns:
        ``s_min``, ``e_min``, ``b_crit`` (``E_min/S_min``: ``inf`` when ``S_min ≤ 0``, the data show
        no floor of steps; ``≤ 0`` when larger batches are not faster), ``n`` (points fitted),
        ``r2_log`` (R² of ``log S`` against ``log Ŝ``; NaN with fewer than 3 points or a fitted
        ``Ŝ ≤ 0``) and ``r2`` (R² of ``S``).
    """
    x = np.asarray(x, np.float64)
    S = np.asarray(S, np.float64)
    ok = np.isfinite(S) & (S > 0)
    Sf = np.where(ok, S, 1.0)
    w = np.where(ok, 1.0 / Sf**2, 0.0)
    sw, sx, sxx = w.sum(-1), (w * x).sum(-1), (w * x * x).sum(-1)
    sy, sxy = (w * Sf).sum(-1), (w * x * Sf).sum(-1)
    det = sw * sxx - sx * sx
    n = ok.sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        good = (n >= 2) & (det > 0)
        a = np.where(good, (sy * sxx - sx * sxy) / np.where(good, det, 1.0), np.nan)
        c = np.where(good, (sw * sxy - sx * sy) / np.where(good, det, 1.0), np.nan)
        b_crit = np.where(a > 0, c / np.where(a > 0, a, 1.0), np.where(np.isnan(a), np.nan, np.inf))
        fit = a[..., None] + c[..., None] * x
        ls, lf = np.log(Sf), np.log(np.where(fit > 0, fit, np.nan))
        mean_ls = np.sum(np.where(ok, ls, 0.0), -1) / np.maximum(n, 1)
        ss_tot = np.sum(np.where(ok, (ls - mean_ls[..., None]) ** 2, 0.0), -1)
        ss_res = np.sum(np.where(ok, (ls - lf) ** 2, 0.0), -1)
        r2_log = np.where((n >= 3) & (ss_tot > 0), 1.0 - ss_res / ss_tot, np.nan)
        mean_s = np.sum(np.where(ok, Sf, 0.0), -1) / np.maximum(n, 1)
        tot = np.sum(np.where(ok, (Sf - mean_s[..., None]) ** 2, 0.0), -1)
        res = np.sum(np.where(ok, (Sf - fit) ** 2, 0.0), -1)
        r2 = np.where((n >= 3) & (tot > 0), 1.0 - res / tot, np.nan)
    return {"s_min": a, "e_min": c, "b_crit": b_crit, "n": n, "r2_log": r2_log, "r2": r2}


def fit_power_law(b: np.ndarray, S: np.ndarray) -> dict[str, float]:
    """``log S = log c − α log B`` by ordinary least squares over the finite ``S``: ``alpha`` and ``r2_log``."""
    b, S = np.asarray(b, np.float64), np.asarray(S, np.float64)
    ok = np.isfinite(S) & (S > 0)
    if ok.sum() < 3:
        return {"alpha": float("nan"), "r2_log": float("nan")}
    lx, ly = np.log(b[ok]), np.log(S[ok])
    X = np.column_stack([np.ones_like(lx), lx])
    beta, *_ = np.linalg.lstsq(X, ly, rcond=None)
    tot = float(np.sum((ly - ly.mean()) ** 2))
    r2 = 1.0 - float(np.sum((ly - X @ beta) ** 2)) / tot if tot > 0 else float("nan")
    return {"alpha": -float(beta[1]), "r2_log": r2}


def population_noise(gn, n: int) -> dict[str, float]:
    """McCandlish's scales with the ``n`` training examples as the population SGD samples from.

    :func:`~hgcnet_jax.mediators.gradient_noise` treats the examples as a sample of a distribution:
    its ``trace_cov`` and ``trace_hess_cov`` divide by ``n − 1`` and its ``grad_hess_grad`` is
    ``ḡᵀHḡ − tr(HΣ)/n``. For SGD on this training set ``G = ḡ`` exactly, so ``B_simple = tr Σ_n/|ḡ|²``
    and ``B_noise = tr(HΣ_n)/(ḡᵀHḡ)`` with ``Σ_n`` normalised by ``n``; ``B_noise`` is NaN where
    either is not positive (``H`` is indefinite away from a minimum).
    """
    f = (n - 1) / n
    tc, gsq = float(gn.trace_cov) * f, float(gn.grad_norm_sq) + float(gn.trace_cov) / n
    thc, ghg = float(gn.trace_hess_cov) * f, float(gn.grad_hess_grad) + float(gn.trace_hess_cov) / n
    b_noise = thc / ghg if (thc > 0 and ghg > 0) else float("nan")
    se = float(gn.b_noise_se)
    return {"b_simple": tc / gsq if gsq > 0 else float("nan"), "b_noise": b_noise,
            "b_noise_se": se * f if np.isfinite(se) else float("nan"),
            "grad_sq": gsq, "trace_cov": tc, "trace_hess_cov": thc, "grad_hess_grad": ghg}


def ratio_verdict(point: float, lo: float, hi: float, factor: float = FACTOR) -> str:
    """Whether ``B_crit / B_noise`` is within ``factor`` of 1, judged by its interval ``[lo, hi]``."""
    if np.isnan(point):
        return "undefined"
    if lo >= 1 / factor and hi <= factor:
        return f"agrees (interval within {factor:g}×)"
    if hi < 1 / factor or lo > factor:
        return f"disagrees (interval beyond {factor:g}×)"
    if 1 / factor <= point <= factor:
        return f"within {factor:g}× (interval wider)"
    return f"beyond {factor:g}× (interval reaches {factor:g}×)"


def _quantiles(x: np.ndarray, qs=(0.025, 0.975)) -> tuple[float, ...]:
    """Quantiles without interpolation (so that ``inf`` values, e.g. a B_crit without a floor, stay ``inf``)."""
    x = np.sort(np.asarray(x, np.float64)[~np.isnan(np.asarray(x, np.float64))])
    if x.size == 0:
        return tuple(float("nan") for _ in qs)
    return tuple(float(x[min(x.size - 1, max(0, int(math.ceil(q * x.size)) - 1))]) for q in qs)


# --------------------------------------------------------------------------------------
# The runs
# --------------------------------------------------------------------------------------
def _subset(ds, sizes, seed: int = 0):
    """A seeded subset of an image dataset: train and val from its training images, test from its test images."""
    from hgcnet_jax.data import Dataset

    n_tr, n_va, n_te = sizes
    rng = np.random.default_rng(seed)
    pool = rng.permutation(np.asarray(ds.splits["train"]))
    test = rng.permutation(np.asarray(ds.splits["test"]))
    if n_tr + n_va > pool.size or n_te > test.size:
        raise SystemExit(f"subset {sizes} exceeds {ds.name}'s splits")
    sel = np.concatenate([np.sort(pool[:n_tr]), np.sort(pool[n_tr:n_tr + n_va]), np.sort(test[:n_te])])
    splits = {"train": np.arange(n_tr), "val": np.arange(n_tr, n_tr + n_va), "test": np.arange(n_tr + n_va, sel.size)}
    return Dataset(name=f"{ds.name}_subset", kind=ds.kind, x=np.asarray(ds.x)[sel], y=np.asarray(ds.y)[sel],
                   num_classes=ds.num_classes, splits=splits, meta={"subset_of": ds.name, "sizes": list(sizes),
                                                                    "seed": seed})


def _cells(plan: Plan) -> list[tuple[Setting, int]]:
    return [(s, b) for s in plan.settings for b in s.batch_sizes]


def _cell_name(s: Setting, b: int) -> str:
    return f"{s.name}-B{b}"


class Experiment:
    def __init__(self, plan: Plan, folder: Path, say):
        from _common import open_state

        self.plan, self.folder, self.say = plan, folder, say
        self._tasks, self._noise_fns = {}, {}
        self.state = open_state(folder, {"config": plan.to_dict(), "cells": {}})

    def task(self, s: Setting):
        if s.name not in self._tasks:
            from hgcnet_jax.data import load
            from hgcnet_jax.train import make_task
            from _common import data_root

            if s.num_nodes:
                ds = load(s.dataset, num_nodes=s.num_nodes)
            elif s.dataset in ("cora", "citeseer", "pubmed"):
                ds = load(s.dataset, root=data_root(), split="full")
            else:
                ds = load(s.dataset, root=data_root())
            if s.subset:
                ds = _subset(ds, s.subset)
            task = make_task(ds, s.model, **dict(s.model_kwargs))
            n = int(task.splits["train"].shape[0])
            too_big = [b for b in s.batch_sizes if b > n]
            if too_big:
                raise SystemExit(f"batch sizes {too_big} exceed the {n} training examples of {s.label}")
            self._tasks[s.name] = task
            self.state.setdefault("n_train", {})[s.name] = n
        return self._tasks[s.name]

    def noise_fn(self, s: Setting):
        if s.name not in self._noise_fns:
            import jax

            from hgcnet_jax.mediators import gradient_noise

            task = self.task(s)
            idx = task.splits["train"]
            self._noise_fns[s.name] = jax.jit(lambda p, k: gradient_noise(
                task.per_example_loss, p, idx, chunk_size=s.noise_chunk, separable=task.kind != "node",
                hessian=True, num_probes=self.plan.num_probes, key=k))
        return self._noise_fns[s.name]

    def cell(self, s: Setting, b: int) -> None:
        import jax
        import pandas as pd

        from hgcnet_jax import _io
        from hgcnet_jax.train import Budget, grid, sweep

        p = self.plan
        name = _cell_name(s, b)
        t0, c0 = time.perf_counter(), time.process_time()
        task = self.task(s)
        n = int(task.splits["train"].shape[0])
        lrs = lr_window(s, b)
        every, total = schedule(s, b)
        runs = grid(batch_size=b, lr=list(lrs), seed=range(p.seeds), optimizer="sgd")
        res = sweep(task, runs, Budget(steps=total, eval_every=every), key=jax.random.key(0), progress=False,
                    trajectory=s.evals)
        cols = [c for c in ("run_id", "batch_size", "lr", "seed", "steps", "train_loss", "train_acc", "val_loss",
                            "val_acc", "diverged", "diverged_step", "bucket_wall_time_s", "bucket_compile_time_s")
                if c in res.runs.columns]
        table = res.runs[cols].assign(eval_every=every)
        tr = res.trajectories
        traj = (tr[tr.metric.isin([METRIC, "val_loss"])].pivot_table(index=["run_id", "step"], columns="metric",
                                                                      values="value", dropna=False)
                .reset_index()[["run_id", "step", METRIC, "val_loss"]])
        # the noise at the best-lr runs of every target, at the evaluation where each first reaches it
        points = []
        for ti, target in enumerate(s.targets):
            S = steps_to_target(traj, target)
            t = table.set_index("run_id").assign(S=S)
            arr = np.stack([[t[(t.lr == lr) & (t.seed == sd)].S.iloc[0] for sd in range(p.seeds)] for lr in lrs])
            best, j = best_steps(arr[None])
            if not np.isfinite(best[0]):
                continue
            lr = lrs[int(j[0])]
            reached = t[(t.lr == lr) & np.isfinite(t.S)].sort_values("seed").head(p.noise_seeds)
            for rid, row in reached.iterrows():
                trj = res.trajectory(int(rid))
                k = int(np.flatnonzero(trj.steps == int(row.S))[0])
                params = jax.tree.map(lambda a, k=k: a[k], trj.params)
                key = jax.random.fold_in(jax.random.fold_in(jax.random.fold_in(jax.random.key(1), b), int(row.seed)), ti)
                gn = jax.block_until_ready(self.noise_fn(s)(params, key))
                loss_here = float(traj[(traj.run_id == rid) & (traj.step == int(row.S))][METRIC].iloc[0])
                points.append({"batch_size": b, "lr": lr, "seed": int(row.seed), "run_id": int(rid),
                               "target": float(target), "step": int(row.S), "train_loss": loss_here,
                               **population_noise(gn, n)})
        noise = pd.DataFrame(points, columns=["batch_size", "lr", "seed", "run_id", "target", "step", "train_loss",
                                              "b_simple", "b_noise", "b_noise_se", "grad_sq", "trace_cov",
                                              "trace_hess_cov", "grad_hess_grad"])
        _io.write_text(self.folder / f"{name}.runs.csv", table.to_csv(index=False))
        _io.write_text(self.folder / f"{name}.traj.csv", traj.to_csv(index=False))
        _io.write_text(self.folder / f"{name}.noise.csv", noise.to_csv(index=False))
        self.state["cells"][name] = {"seconds": round(time.perf_counter() - t0, 1),
                                     "cpu_seconds": round(time.process_time() - c0, 1),
                                     "runs": int(len(table)), "noise_points": int(len(noise))}
        _io.write_json(self.folder / "state.json", self.state)
        self.say(f"cell {name}: {len(table)} runs of {total} steps, {len(noise)} noise points in "
                 f"{time.perf_counter() - t0:.0f}s")

    def run(self, report) -> None:
        for s, b in _cells(self.plan):
            if _cell_name(s, b) not in self.state["cells"]:
                self.cell(s, b)
                report()


# --------------------------------------------------------------------------------------
# Analysis
# --------------------------------------------------------------------------------------
def _load_setting(s: Setting, folder: Path, done: dict):
    import pandas as pd

    runs, trajs, noise = [], [], []
    for b in s.batch_sizes:
        name = _cell_name(s, b)
        if name not in done:
            continue
        r = pd.read_csv(folder / f"{name}.runs.csv")
        t = pd.read_csv(folder / f"{name}.traj.csv")
        # run ids restart in every cell: make them unique per setting
        off = 100_000 * b
        runs.append(r.assign(run_id=r.run_id + off))
        trajs.append(t.assign(run_id=t.run_id + off))
        nz = pd.read_csv(folder / f"{name}.noise.csv")
        if len(nz):
            noise.append(nz)
    if not runs:
        return None
    return pd.concat(runs, ignore_index=True), pd.concat(trajs, ignore_index=True), (
        pd.concat(noise, ignore_index=True) if noise else pd.DataFrame(columns=["target", "batch_size", "b_noise",
                                                                                "b_simple"]))


def analyse(plan: Plan, folder: Path) -> dict:
    """Per setting and target: the S table, the chosen lrs, the fit with its bootstrap, the noise, a verdict."""
    st = json.loads((folder / "state.json").read_text())
    out = {}
    for s in plan.settings:
        loaded = _load_setting(s, folder, st["cells"])
        if loaded is None:
            continue
        runs, traj, noise = loaded
        bs = np.asarray(sorted(runs.batch_size.unique()), np.int64)
        res = {"batch_sizes": bs, "targets": {}, "diverged": int(runs.diverged.sum()), "runs": int(len(runs)),
               "cadence": runs.groupby("batch_size").eval_every.first(),
               "total_steps": runs.groupby("batch_size").steps.first()}
        for target in s.targets:
            S_run = steps_to_target(traj, target)
            t = runs.set_index("run_id").assign(S=S_run)
            lrs = {int(b): lr_window(s, int(b)) for b in bs}
            arr = np.stack([np.stack([[t[(t.batch_size == b) & (t.lr == lr) & (t.seed == sd)].S.iloc[0]
                                       for sd in range(plan.seeds)] for lr in lrs[int(b)]]) for b in bs])
            S, j = best_steps(arr)
            x = 1.0 / bs
            fit = {k: (float(v) if np.ndim(v) == 0 else v) for k, v in fit_hyperbola(x, S).items()}
            pw = fit_power_law(bs, S)
            # bootstrap: seeds resampled within every batch size (the same draw for all its lrs:
            # runs of one seed share the initial parameters and the data order)
            rng = np.random.default_rng(12345)
            R = plan.num_bootstrap
            draw = rng.integers(0, plan.seeds, size=(R, len(bs), plan.seeds))
            arr_b = np.take_along_axis(arr[None], draw[:, :, None, :].repeat(arr.shape[1], axis=2), axis=-1)
            S_b, _ = best_steps(arr_b)
            bc_b = fit_hyperbola(x, S_b)["b_crit"]
            nz = noise[noise.target == target] if len(noise) else noise
            per_noise = {}
            for col in ("b_noise", "b_simple"):
                v = nz[col].to_numpy(np.float64) if len(nz) else np.zeros(0)
                v = v[np.isfinite(v)]
                if v.size:
                    med = float(np.median(v))
                    q1, q3 = (float(q) for q in np.quantile(v, [0.25, 0.75]))
                    boot = np.median(v[rng.integers(0, v.size, size=(R, v.size))], axis=1)
                    ratio_b = bc_b / boot
                    ratio = fit["b_crit"] / med
                    lo, hi = _quantiles(ratio_b)
                    per_noise[col] = {"median": med, "q1": q1, "q3": q3, "n": int(v.size),
                                      "undefined": int(len(nz) - v.size), "ratio": ratio, "ratio_lo": lo,
                                      "ratio_hi": hi, "verdict": ratio_verdict(ratio, lo, hi)}
                else:
                    per_noise[col] = None
            lo, hi = _quantiles(bc_b)
            table = []
            for i, b in enumerate(bs):
                g = t[t.batch_size == b]
                lr = lrs[int(b)][int(j[i])]
                at = g[g.lr == lr]
                nzb = nz[nz.batch_size == b] if len(nz) else nz
                # at the edge: the window's first or last lr, strictly faster than its neighbour (the optimum
                # may lie outside the window; a tie, from the evaluation cadence, is not flagged)
                med = np.median(arr[i], axis=-1)
                ji, last = int(j[i]), s.lr_count - 1
                edge = bool(np.isfinite(S[i]) and s.lr_count > 1 and ((ji == 0 and med[0] < med[1])
                                                                      or (ji == last and med[last] < med[last - 1])))
                table.append({"B": int(b), "lrs": lrs[int(b)], "lr": lr, "edge": edge,
                              "S": float(S[i]), "reached": int(np.isfinite(at.S).sum()), "seeds": int(len(at)),
                              "never": int((~np.isfinite(g.S)).sum()), "runs": int(len(g)),
                              "fitted": fit["s_min"] + fit["e_min"] / b if np.isfinite(fit["s_min"]) else float("nan"),
                              "b_noise": float(np.nanmedian(nzb.b_noise)) if len(nzb) and nzb.b_noise.notna().any()
                              else float("nan"),
                              "b_simple": float(np.nanmedian(nzb.b_simple)) if len(nzb) else float("nan")})
            res["targets"][float(target)] = {"S": S, "fit": fit, "power": pw, "b_crit_lo": lo, "b_crit_hi": hi,
                                             "noise": per_noise, "table": table,
                                             "unreached": [int(b) for b, v in zip(bs, S) if not np.isfinite(v)]}
        out[s.name] = res
    return out


def _finite_population(n: int, bs: np.ndarray, S: np.ndarray) -> float:
    """B_crit in units of the noise-equivalent batch B_eff = B (n−1)/(n−B) of a batch drawn without replacement."""
    x = (n - bs) / (bs * (n - 1.0))
    return float(fit_hyperbola(x, S)["b_crit"])


# --------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------
def _num(v: float, nd: int = 0) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if math.isinf(v):
        return "∞" if v > 0 else "−∞"
    return f"{v:,.{nd}f}" if abs(v) >= 100 or nd == 0 else f"{v:.{nd}f}"


def _sig(v: float) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if math.isinf(v):
        return "∞" if v > 0 else "−∞"
    if v < 0:
        return "≤0"
    return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"


def write_report(plan: Plan, folder: Path, quick: bool) -> str:
    a = analyse(plan, folder)
    st = json.loads((folder / "state.json").read_text())
    n_cells = len(_cells(plan))
    cmd = ("`python experiments/bs_critical.py --quick --out DIR`" if quick else
           "`nice -n 10 python experiments/bs_critical.py` (resumable cell by cell; state in "
           "`experiments/state/bs_critical/`)")
    L = ["## The critical batch size (issue #18, reproduction 9)", "", f"{cmd}. Progress: {len(st['cells'])} of "
         f"{n_cells} cells (a cell: one batch size of one setting, all its learning rates and seeds).", "", CLAIM, ""]
    verdicts = {}
    if a:
        L += ["**Ours**: S(B) per batch size at its best learning rate (median over seeds of the first evaluated step "
              "with training loss ≤ the target), fitted by S = S_min + E_min/B (least squares of the relative "
              "residual); B_crit = E_min/S_min with its 95 % bootstrap interval over seeds (the lr choice redone in "
              "every replicate); R² on log S, next to a power law S ∝ B^−α (two parameters too); B_noise and "
              "B_simple: median [interquartile range] over the best-lr runs at the evaluation where they first "
              "reach the target (n points); B_crit / B_noise with the joint bootstrap interval (seeds, measured "
              "points). The primary target of each setting is its lowest (marked *). On the hyperbola, B = B_crit "
              "takes S = 2 S_min steps and E = 2 E_min examples; B ≪ B_crit gives perfect scaling (S ∝ 1/B), "
              "B ≫ B_crit no further gain (S → S_min).", "",
              "| setting | target loss | B fitted | S_min | E_min | B_crit (95 %) | R² log S: hyperbola / power law (α) | "
              "B_noise [IQR] (n) | B_simple [IQR] | B_crit / B_noise (95 %) | B_crit / B_simple (95 %) |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
        for s in plan.settings:
            r = a.get(s.name)
            if r is None:
                continue
            for target in s.targets:
                x = r["targets"][float(target)]
                f, pw, nz = x["fit"], x["power"], x["noise"]
                fitted = [b for b, v in zip(r["batch_sizes"], x["S"]) if np.isfinite(v)]
                bfit = f"{min(fitted)}–{max(fitted)} ({len(fitted)})" if fitted else "none"

                def noise_cell(d):
                    if d is None:
                        return "–"
                    und = f", {d['undefined']} undefined" if d.get("undefined") else ""
                    return f"{_sig(d['median'])} [{_sig(d['q1'])}–{_sig(d['q3'])}] ({d['n']}{und})"

                def ratio_cell(d):
                    if d is None:
                        return "–"
                    return f"{_sig(d['ratio'])} ({_sig(d['ratio_lo'])}–{_sig(d['ratio_hi'])}): {d['verdict']}"

                star = "*" if float(target) == s.primary else ""
                L.append(f"| {s.label} | {target:g}{star} | {bfit} | {_sig(f['s_min'])} | {_sig(f['e_min'])} | "
                         f"**{_sig(f['b_crit'])}** ({_sig(x['b_crit_lo'])}–{_sig(x['b_crit_hi'])}) | "
                         f"{_num(f['r2_log'], 3)} / {_num(pw['r2_log'], 3)} (α {_num(pw['alpha'], 2)}) | "
                         f"{noise_cell(nz['b_noise'])} | {noise_cell(nz['b_simple'])} | {ratio_cell(nz['b_noise'])} | "
                         f"{ratio_cell(nz['b_simple'])} |")
                if float(target) == s.primary:
                    verdicts[s.name] = (s, x)
        L.append("")
        complete = len(st["cells"]) == n_cells
        prov = "" if complete else " (provisional: not every cell has run)"
        parts = []
        for name, (s, x) in verdicts.items():
            d = x["noise"]["b_noise"]
            f = x["fit"]
            form = ("the hyperbola describes S(B)" if np.isfinite(f["r2_log"]) and f["r2_log"] >= 0.9
                    else "the hyperbola describes S(B) poorly" if np.isfinite(f["r2_log"]) else "too few batch sizes for R²")
            better = ""
            pr = x["power"]["r2_log"]
            if np.isfinite(f["r2_log"]) and np.isfinite(pr):
                better = " (better than a power law)" if f["r2_log"] > pr else " (no better than a power law)"
            if d is None:
                parts.append(f"{s.label}: {form}{better}; no B_noise measured")
            else:
                parts.append(f"{s.label}, loss {s.primary:g}: {form} (R² {_num(f['r2_log'], 3)}{better}); "
                             f"B_crit = {_sig(f['b_crit'])} ({_sig(x['b_crit_lo'])}–{_sig(x['b_crit_hi'])}) against "
                             f"B_noise = {_sig(d['median'])}: ratio {_sig(d['ratio'])} "
                             f"({_sig(d['ratio_lo'])}–{_sig(d['ratio_hi'])}), {d['verdict']}")
        kinds = [x["noise"]["b_noise"]["verdict"].split(" ")[0] for _, x in verdicts.values()
                 if x["noise"]["b_noise"] is not None]
        if kinds and all(k == "agrees" for k in kinds):
            overall = f"B_crit ≈ B_noise reproduces (within {FACTOR:g}× in every setting)"
        elif kinds and all(k == "disagrees" for k in kinds):
            overall = f"B_crit ≈ B_noise does not reproduce (off by more than {FACTOR:g}× in every setting)"
        elif kinds and any(k == "disagrees" for k in kinds):
            overall = f"B_crit ≈ B_noise fails in some settings (off by more than {FACTOR:g}×)"
        elif kinds:
            overall = f"inconclusive at the {FACTOR:g}× level in some settings (intervals too wide)"
        else:
            overall = "no verdict yet"
        L += [f"**Verdict{prov}: {overall}.** " + "; ".join(parts) + ".", ""]
        for s in plan.settings:
            r = a.get(s.name)
            if r is None:
                continue
            x = r["targets"][s.primary]
            L += [f"Per batch size, {s.label}, target {s.primary:g} (lr: the best of the window tried, † at its "
                  "edge and faster than its neighbour; "
                  "S: median over seeds, ∞ when most seeds never reach it; reached: seeds at the best lr that reach "
                  "the target; never: runs over every lr of the window that never reach it; B_noise / B_simple: "
                  "median over the measured runs of that B):", "",
                  "| B | lrs tried | best lr | S | fitted S | E = B·S | reached | never (of runs) | eval every | "
                  "steps | B_noise | B_simple |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
            for row in x["table"]:
                b = row["B"]
                L.append(f"| {b} | {', '.join(f'{v:g}' for v in row['lrs'])} | {row['lr']:g}{'†' if row['edge'] else ''} | "
                         f"{_num(row['S'])} | {_num(row['fitted'])} | {_num(b * row['S'])} | "
                         f"{row['reached']}/{row['seeds']} | {row['never']}/{row['runs']} | "
                         f"{int(r['cadence'].loc[b])} | {int(r['total_steps'].loc[b])} | {_sig(row['b_noise'])} | "
                         f"{_sig(row['b_simple'])} |")
            if x["unreached"]:
                L.append(f"\nNot reached at any lr by most seeds (left out of the fit): B = "
                         f"{', '.join(map(str, x['unreached']))}.")
            others = []
            for target in s.targets[:-1]:
                y = r["targets"][float(target)]
                others.append(f"loss {target:g}: " + ", ".join(
                    f"{row['B']}: {row['lr']:g}{'†' if row['edge'] else ''} (S {_num(row['S'])})" for row in y["table"]))
            if others:
                L.append("\nBest lr per B (and its S) at the other targets: " + "; ".join(others) + ".")
            L.append("")
        fe = []
        for s in plan.settings:
            r = a.get(s.name)
            n = st.get("n_train", {}).get(s.name)
            if r is None or not n:
                continue
            x = r["targets"][s.primary]
            fe.append(f"{s.label}: {_sig(_finite_population(n, r['batch_sizes'], x['S']))} "
                      f"(n = {n}, B_max/n = {max(r['batch_sizes']) / n:.2f})")
        if fe:
            L += ["Sensitivity to the finite training set: a batch drawn without replacement from n examples has "
                  "gradient covariance Σ/B · (n−B)/(n−1), the noise of B_eff = B (n−1)/(n−B) examples drawn with "
                  f"replacement; S fitted on 1/B_eff gives B_crit (in units of B_eff, primary target) = {'; '.join(fe)}.", ""]
        divs = [f"{s.label}: {a[s.name]['diverged']} of {a[s.name]['runs']}" for s in plan.settings if s.name in a]
        L += ["Runs flagged diverged (kept, counted as never reaching a target after their divergence): "
              f"{'; '.join(divs)}.", ""]
    secs = sum(c["seconds"] for c in st["cells"].values())
    cpu = sum(c.get("cpu_seconds", 0.0) for c in st["cells"].values())
    setup = []
    for s in plan.settings:
        caps = ", ".join(f"{b}: {schedule(s, b)[1]}" for b in s.batch_sizes)
        setup.append(f"{s.label}: B = {', '.join(map(str, s.batch_sizes))}; SGD (no momentum, no L2, no dropout), "
                     f"{s.lr_count} learning rates per B on a √2 grid (the windows in the table); steps per B "
                     f"({caps}) in {s.evals} evaluations; training-loss targets {', '.join(f'{t:g}' for t in s.targets)}")
    L += ["Setup: " + "; ".join(setup) + f"; {plan.seeds} seeds per (B, lr), all runs of a B in one sweep; noise "
          f"measured on the {plan.noise_seeds} lowest seeds reaching each target at the best lr, with "
          f"{plan.num_probes} Rademacher probes of tr(HΣ) (`gradient_noise(..., hessian=True)` over every training "
          "example; the training split taken as the population, see the script's docstring); "
          f"{plan.num_bootstrap} bootstrap replicates.", "",
          "Caveats: the targets are training losses (the quantity the noise-scale model is about), evaluated on the "
          "whole training split; S is known to one evaluation period (it over-states the crossing by less than "
          "`eval every` steps); the lr grid is discrete (a √2 step), so S(B) is the best of the window's rates, not the "
          "optimum, and the bootstrap does not include that error; the learning-rate windows were centred by a "
          "one-seed pilot; B_noise is measured at the first evaluation below the target, a point selected by a "
          "downward fluctuation of the loss, and it varies along a trajectory by several times (hence medians); "
          "B_noise grows as the loss falls while B_crit sums up the whole path to the target, so B_noise at the "
          "target is the upper end of what the path saw (the higher targets' rows give it earlier on the path); "
          "both training sets are small (the finite-population line above), and the Fashion-MNIST model is an MLP "
          "on a 10 000-image subset (LeNet-5 on the 60 000 images is ~48 s per epoch per seed here) — it is not "
          "the CNN of the pruning experiments, and the GCN runs without the paper preset's dropout and L2.", "",
          f"Compute: {secs / 60:.1f} min wall-clock, {cpu / 60:.1f} min CPU on this machine's 2-core CPU (shared with "
          "other experiments)."]
    if not quick and a:
        _plots(plan, a)
        L += ["", "![steps against examples, with the fitted hyperbolas; B_crit against B_noise]"
                  f"(results/{NAME}/tradeoff.png)"]
    md = "\n".join(L)
    if not quick:
        from _common import write_section

        write_section(NAME, md)
    return md


def _plots(plan: Plan, a: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hgcnet_jax import _io

    FIG_DIR.mkdir(parents=True, exist_ok=True)
    settings = [s for s in plan.settings if s.name in a]
    fig, axes = plt.subplots(2, len(settings), figsize=(5.5 * len(settings), 8.5), squeeze=False)
    for col, s in enumerate(settings):
        r = a[s.name]
        ax = axes[0, col]
        for ci, target in enumerate(s.targets):
            x = r["targets"][float(target)]
            S, bs, f = x["S"], r["batch_sizes"], x["fit"]
            ok = np.isfinite(S)
            ax.plot(bs[ok] * S[ok], S[ok], "o", color=f"C{ci}", label=f"loss {target:g}: B_crit {_sig(f['b_crit'])}")
            for b, sv in zip(bs[ok], S[ok]):
                ax.annotate(str(b), (b * sv, sv), fontsize=6, xytext=(2, 2), textcoords="offset points")
            if np.isfinite(f["s_min"]) and f["s_min"] > 0 and f["e_min"] > 0:
                grid_b = np.geomspace(bs.min() / 2, bs.max() * 2, 200)
                sf = f["s_min"] + f["e_min"] / grid_b
                ax.plot(grid_b * sf, sf, "-", color=f"C{ci}", lw=1)
                ax.axhline(f["s_min"], color=f"C{ci}", ls=":", lw=0.7)
                ax.axvline(f["e_min"], color=f"C{ci}", ls=":", lw=0.7)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("examples E = B·S")
        ax.set_ylabel("steps S")
        ax.set_title(s.label, fontsize=9)
        ax.legend(fontsize=7)
        ax = axes[1, col]
        ts = np.asarray(s.targets, np.float64)
        bc = [r["targets"][float(t)]["fit"]["b_crit"] for t in s.targets]
        lo = [r["targets"][float(t)]["b_crit_lo"] for t in s.targets]
        hi = [r["targets"][float(t)]["b_crit_hi"] for t in s.targets]
        cap = lambda v: np.where(np.isfinite(v), v, np.nan)  # noqa: E731
        bc, lo, hi = cap(np.asarray(bc)), cap(np.asarray(lo)), cap(np.asarray(hi))
        ax.errorbar(ts, bc, yerr=[np.clip(bc - lo, 0, None), np.clip(hi - bc, 0, None)], marker="o", capsize=3,
                    label="B_crit (fit, 95 %)")
        for key, mk, lab in (("b_noise", "s", "B_noise (median, IQR)"), ("b_simple", "^", "B_simple (median, IQR)")):
            d = [r["targets"][float(t)]["noise"][key] for t in s.targets]
            m = np.asarray([v["median"] if v else np.nan for v in d])
            q1 = np.asarray([v["q1"] if v else np.nan for v in d])
            q3 = np.asarray([v["q3"] if v else np.nan for v in d])
            ax.errorbar(ts * (1.02 if key == "b_noise" else 0.98), m, yerr=[m - q1, q3 - m], marker=mk, ls="--",
                        capsize=3, label=lab)
        ax.set_yscale("log")
        ax.invert_xaxis()
        ax.set_xlabel("training-loss target")
        ax.set_ylabel("batch size")
        ax.legend(fontsize=7)
    fig.tight_layout()
    with _io.atomic_write(FIG_DIR / "tradeoff.png") as f:
        fig.savefig(f, format="png", dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    from _common import parse_cli

    args, folder, say = parse_cli(__doc__, NAME, STATE_DIR, argv)
    plan = QUICK if args.quick else FULL

    if not args.report_only:
        exp = Experiment(plan, folder, say)
        exp.run(lambda: None if args.quick else write_report(plan, folder, False))
    md = write_report(plan, folder, args.quick)
    if args.quick:
        print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
