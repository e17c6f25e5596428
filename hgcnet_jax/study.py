"""The end-to-end batch-size study behind ``hgcnet study``.

Pipeline (each arrow is a call into the module that owns the step):

.. code-block:: text

    data.load ─► train.make_task ─► train.sweep ─► mediators.measure ─► causal.fit (hypergraph, pairwise)
      ─► causal effects (E[G | do(B)], ATE, mediation, LOO, refutations, permutation test, recommendation)
      ─► report (plots/*.png|svg, report.html)

Everything lands in one output folder, one file per finished phase, each
written atomically (a temporary file renamed over the target) as soon as the
phase is complete, with the permissions the umask gives a new file:

============================  =====================================================
``config.json``               the config and its fingerprint (written once)
``checkpoints/sweep/``        the sweep engine's checkpoints (a killed sweep resumes)
``sweep.parquet``             one row per run: the sweep's table (losses, accuracies, ``diverged``)
``runs.parquet``              the same rows plus the N, S, C columns
``posterior_hypergraph.nc``   ArviZ netCDF posterior of the hypergraph SCM
``posterior_pairwise.nc``     ArviZ netCDF posterior of its pairwise twin
``summary.json``              every number of the report (see :func:`summarise`)
``plots/<name>.png|svg``      the figures
``report.html``               one self-contained page (figures inlined)
``phases.json``               when and how long each phase ran (and which one failed)
============================  =====================================================

Every check that can fail on the config alone runs before any training
(:func:`validate`): the dataset and model, the batch sizes against the training
split, the mediator columns, and the number of runs against what the causal fit
and each refuter need (:func:`minimum_runs`). A study that fails later (every run
diverged, too few usable runs, an error in a phase) keeps every finished file,
records the failure in ``phases.json``, writes a ``report.html`` that says which
phase failed and why and what is already there, and raises
:class:`StudyPhaseError`.

Re-running with the same config resumes: every finished phase is loaded, not
recomputed, and the log says so ("sweep: resumed from …"); after a failure in the
effects the causal fits are rebuilt from their posteriors instead of refitted. A
folder that holds a study of a *different* config is refused (the error lists the
changed fields) unless ``overwrite=True``, which deletes the previous study's files
first. Recomputing a phase deletes the files of the phases after it, so the folder
never mixes results of two computations.

Progress bars and the log never change a number or the memory use: the mediators
are measured in the same groups of runs with and without them.

Example::

    >>> from hgcnet_jax import study
    >>> from hgcnet_jax.config import StudyConfig
    >>> result = study.run(StudyConfig(), out="my-study")        # doctest: +SKIP
    >>> result.summary["recommendation"]["best_batch_size"]      # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import difflib
import html
import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hgcnet_jax import _io
from hgcnet_jax.config import ConfigError, StudyConfig

__all__ = ["run", "validate", "minimum_runs", "StudyResult", "StudyFolderError", "StudyPhaseError", "ARTIFACTS",
           "default_out", "load_result", "load"]

#: Files of a study folder, in phase order.
ARTIFACTS = (
    "config.json",
    "sweep.parquet",
    "runs.parquet",
    "posterior_hypergraph.nc",
    "posterior_pairwise.nc",
    "summary.json",
    "report.html",
    "phases.json",
)
_DIRS = ("plots", "checkpoints")
_FORMAT = 1


class StudyFolderError(RuntimeError):
    """The output folder holds another study (a different config) or foreign study files."""


class StudyPhaseError(RuntimeError):
    """A phase of a study failed after training started; the finished phases were kept.

    Attributes:
        phase: ``"sweep"``, ``"mediators"``, ``"causal fits"``, ``"effects"`` or ``"report"``.
        reason: what went wrong (the cause's message).
        out: the output folder; its ``report.html`` says which phase failed and what is there.
        user_error: the cause is the config (e.g. every run diverged at its learning rate),
            not a bug or a resource limit.
    """

    def __init__(self, phase: str, reason: str, out: Path, *, user_error: bool = False):
        self.phase, self.reason, self.out, self.user_error = phase, reason, Path(out), user_error
        super().__init__(
            f"the {phase} phase failed: {reason}. Everything finished before it is kept in {str(self.out)!r} "
            f"(report.html says what is there); fix the cause and re-run the same command to resume"
        )


@dataclasses.dataclass(frozen=True)
class StudyResult:
    """What :func:`run` returns.

    Attributes:
        out: the output folder.
        config: the study's config.
        runs: the runs table (one row per run, with the mediator columns).
        summary: every number of the report (the content of ``summary.json``).
        report: path of ``report.html``.
        resumed: the phases that were loaded from the folder instead of computed.
    """

    out: Path
    config: StudyConfig
    runs: pd.DataFrame
    summary: dict
    report: Path
    resumed: tuple[str, ...]

    def posterior(self, graph: str = "hypergraph"):
        """The posterior of ``graph`` (``"hypergraph"`` or ``"pairwise"``) as ArviZ ``InferenceData``."""
        import arviz as az

        if graph not in ("hypergraph", "pairwise"):
            raise ValueError(f"graph must be 'hypergraph' or 'pairwise', got {graph!r}")
        return az.from_netcdf(self.out / f"posterior_{graph}.nc")

    def fit(self, graph: str = "hypergraph"):
        """The study's :class:`hgcnet_jax.causal.Fit` of ``graph``, rebuilt from the folder (no inference).

        :meth:`hgcnet_jax.causal.Fit.from_idata` on the saved posterior, with the graph and
        the fitted rows from the saved config and runs table (:func:`fit_table`): the
        posterior records the fit's settings and PRNG key, so every query (``causal.ate``,
        ``mediation``, ``recommend``, ``refute`` …) works on it as on the fit the study
        made; values agree up to float32 rounding of the posterior's readable names.
        ``wall_time_s`` is the phase's recorded time (NaN when unknown).

        Raises:
            ValueError: ``graph`` is not ``"hypergraph"`` or ``"pairwise"``, or its posterior
                was written before fits recorded their key (re-run the causal phase: delete
                ``summary.json`` and the ``posterior_*.nc`` files and run the study again).
        """
        from hgcnet_jax import causal

        if graph not in GRAPHS:
            raise ValueError(f"graph must be 'hypergraph' or 'pairwise', got {graph!r}")
        table, _ = fit_table(self.runs, self.config)
        seconds = (_read_json(self.out / "phases.json") or {}).get("causal", {}).get("fits_s", float("nan"))
        return causal.Fit.from_idata(self.posterior(graph), _graphs(self.config)[graph], table,
                                     wall_time_s=float(seconds))


def default_out(config: StudyConfig) -> Path:
    """The default output folder of a config: ``hgcnet-out/study-<dataset>-<model>`` in the working directory."""
    return Path("hgcnet-out") / f"study-{config.data.name}-{config.model.name}"


# ============================================================================ the folder


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def _prepare_folder(out: Path, config: StudyConfig, *, overwrite: bool) -> bool:
    """Check the folder before any work. Returns True when it holds this config's study (resume).

    Raises:
        PermissionError: the folder cannot be written.
        StudyFolderError: another study is there and ``overwrite`` is false.
    """
    existed = out.exists()
    _io.ensure_writable_dir(out)
    if not existed:
        return False
    saved = _read_json(out / "config.json")
    ours = [n for n in ARTIFACTS[1:] if (out / n).exists()] + [d for d in _DIRS if (out / d).exists()]
    if saved is None:
        if not ours and not (out / "config.json").exists():
            return False
        if not overwrite:
            raise StudyFolderError(
                f"{str(out)!r} holds study files ({', '.join(ours) or 'config.json'}) without a readable "
                "config.json; choose another --out or pass --overwrite to delete them"
            )
    elif saved.get("fingerprint") == config.fingerprint():
        return True
    elif not overwrite:
        try:
            changed = StudyConfig.from_dict(saved["config"]).diff(config)
        except (ConfigError, KeyError, TypeError):
            changed = ["<unreadable previous config>"]
        raise StudyFolderError(
            f"{str(out)!r} holds a study with a different config (changed: {', '.join(changed)}). "
            "Re-run with the same config to resume it, choose another --out, or pass --overwrite to "
            "delete it and start again"
        )
    for name in (*ARTIFACTS, *_DIRS):
        _remove(out / name)
    return False


def _first_missing(path: Path) -> Path | None:
    """The outermost folder of ``path`` that does not exist yet (what creating it would add)."""
    path = path.absolute()
    if path.exists():
        return None
    while not path.parent.exists():
        path = path.parent
    return path


def _drop_after(out: Path, artifact: str) -> None:
    """Delete the files of every phase after ``artifact`` (they were computed from older inputs)."""
    later = ARTIFACTS[ARTIFACTS.index(artifact) + 1 : -1]
    for name in later:
        _remove(out / name)
    if ARTIFACTS.index(artifact) < ARTIFACTS.index("report.html"):
        _remove(out / "plots")


def _write_parquet(df: pd.DataFrame, path: Path) -> None:
    with _io.atomic_write(path, "wb") as f:
        df.to_parquet(f, index=False)


def _write_netcdf(idata, path: Path) -> None:
    with _io.atomic_path(path) as tmp:
        idata.to_netcdf(str(tmp))


class _Phases:
    """``phases.json``: when each phase finished and how long it took (informational)."""

    def __init__(self, out: Path):
        self.path = out / "phases.json"
        self.data = _read_json(self.path) or {}

    def done(self, name: str, seconds: float, **extra: Any) -> None:
        self.data[name] = {"seconds": round(float(seconds), 3), "finished": _now(), **extra}
        _io.write_json(self.path, self.data)

    def drop(self, *names: str) -> None:
        for n in names:
            self.data.pop(n, None)
        _io.write_json(self.path, self.data)

    def fail(self, phase: str, error: BaseException) -> None:
        self.data["failed"] = {"phase": phase, "error": str(error), "type": type(error).__name__, "when": _now()}
        _io.write_json(self.path, self.data)

    @property
    def failed(self) -> dict[str, Any] | None:
        return self.data.get("failed")


# ============================================================================ phases


def _log_to_stderr(msg: str) -> None:
    print(f"[hgcnet study] {msg}", file=sys.stderr, flush=True)


def _build_task(config: StudyConfig):
    """Load the dataset and bind the model; errors name the config field."""
    from hgcnet_jax import data as _data
    from hgcnet_jax import train as _train

    d = config.data
    try:
        dataset = _data.load(d.name, root=d.root, split=d.split, seed=config.seed, **dict(d.options))
    except _data.DatasetNotFoundError as e:
        raise ConfigError("data.name", f"dataset {d.name!r} not found: {e}") from None
    except (TypeError, ValueError) as e:
        field = "data.name" if "unknown dataset" in str(e) else "data.options" if "does not take" in str(e) else "data"
        raise ConfigError(field, str(e)) from None
    m = config.model
    try:
        task = _train.make_task(dataset, m.name, **dict(m.options))
    except KeyError as e:
        raise ConfigError("model.name", str(e).strip("'\"")) from None
    except (TypeError, ValueError) as e:
        raise ConfigError("model", str(e)) from None
    n_train = int(np.asarray(dataset.splits["train"]).shape[0])
    too_big = [b for b in config.train.batch_sizes if b > n_train]
    if too_big:
        hint = " (try data.split = 'full')" if d.name in ("cora", "citeseer", "pubmed") else ""
        raise ConfigError(
            "train.batch_sizes",
            f"{too_big} exceed the {n_train} training examples of {d.name!r}{hint}; use smaller batch sizes",
        )
    return task


def _interventions(config: StudyConfig):
    from hgcnet_jax import train as _train

    t = config.train
    axes = dict(batch_size=list(t.batch_sizes), seed=list(range(t.seeds)), lr=t.lr, optimizer=t.optimizer,
                weight_decay=t.weight_decay, l2=t.l2, reg_scope=t.reg_scope, lr_scaling=t.lr_scaling,
                base_batch_size=min(t.batch_sizes))
    if t.momentum is not None:
        axes["momentum"] = t.momentum
    try:
        return _train.grid(**axes), _train.Budget(epochs=t.epochs)
    except (TypeError, ValueError) as e:
        raise ConfigError("train", str(e)) from None


def _phase_sweep(config: StudyConfig, out: Path, task, *, progress: bool, log: Callable[[str], None]):
    """Train every run (``train.sweep``, checkpointed: a re-run resumes); returns ``(SweepResult, seconds)``."""
    import jax

    from hgcnet_jax import train as _train

    interventions, budget = _interventions(config)
    log(f"sweep: {len(interventions)} runs ({len(config.train.batch_sizes)} batch sizes × {config.train.seeds} seeds), "
        f"{config.train.epochs} epochs each; checkpoints in {out / 'checkpoints' / 'sweep'}")
    t0 = time.perf_counter()
    result = _train.sweep(task, interventions, budget, key=jax.random.key(config.seed),
                          checkpoint_dir=out / "checkpoints" / "sweep", progress=progress)
    return result, time.perf_counter() - t0


def _runs_per_call(config: StudyConfig, num_runs: int) -> int:
    """Runs per compiled call of the mediator measurement: ``mediators.options.runs_per_call``, else
    ``ceil(runs / _MEASURE_GROUPS)``.

    It never depends on the progress bar or the log: the grouping sets the peak memory
    (one group's parameters, Hessian-vector products and Lanczos bases are live at once)
    and, through XLA's batched float arithmetic, the last digits of the values.
    """
    rpc = dict(config.mediators.options).get("runs_per_call")
    return int(rpc) if rpc is not None else max(1, -(-num_runs // _MEASURE_GROUPS))


def _phase_mediators(config: StudyConfig, task, result, *, progress: bool, log: Callable[[str], None]):
    """Measure N, S, C on every run (``mediators.measure``); returns ``(table, seconds, runs_per_call)``."""
    from hgcnet_jax import mediators as _mediators

    kw = _measure_kwargs(config)
    kw["runs_per_call"] = _runs_per_call(config, len(result.runs))
    log(f"mediators: measuring N, S, C on {len(result.runs)} runs, {kw['runs_per_call']} per compiled call")
    t0 = time.perf_counter()
    table = _mediators.measure(task, result, progress=progress, **kw)
    return table, time.perf_counter() - t0, kw["runs_per_call"]


#: The mediators are measured in this many groups of runs (one progress step each) unless
#: ``mediators.options.runs_per_call`` says otherwise; with or without progress bars.
_MEASURE_GROUPS = 4


def minimum_runs(config: StudyConfig) -> dict[str, int]:
    """The fewest usable runs each part of the causal phase needs: ``{"causal fit": n, "<refuter>": n}``.

    The fit needs ``causal.prepare``'s ``min_rows`` runs; the ``data_subset`` refuter refits
    on ``causal.refute``'s ``subset_fraction`` of them, so it needs the smallest number of
    runs whose fraction still reaches that minimum. The other refuters refit on all runs.
    Both defaults are read from the causal layer's signatures, so they cannot drift apart.
    """
    import inspect

    from hgcnet_jax import causal

    fit_min = int(inspect.signature(causal.prepare).parameters["min_rows"].default)
    need = {"causal fit": fit_min}
    for name in config.causal.refuters:
        if name == "data_subset":
            frac = _subset_fraction()
            n = fit_min
            while max(int(round(frac * n)), 2) < fit_min:
                n += 1
            need[name] = n
        else:
            need[name] = fit_min
    return need


def _subset_fraction() -> float:
    """The fraction of the runs the ``data_subset`` refuter refits on (``causal.refute``'s default)."""
    import inspect

    from hgcnet_jax import causal

    return float(inspect.signature(causal.refute).parameters["subset_fraction"].default)


def _count_problem(config: StudyConfig, usable: Mapping[int, int], noun: str = "usable runs") -> tuple[str, str] | None:
    """``(field, what is short)`` when ``usable`` runs per batch size cannot finish the causal phase, else None."""
    need = minimum_runs(config)
    n = int(sum(usable.values()))
    bs = config.train.batch_sizes
    for b in (bs[0], bs[-1]):  # the ATE and the permutation test contrast the extremes
        if usable.get(b, 0) < 2:
            return "train.seeds", (f"the contrast B={bs[0]} vs B={bs[-1]} needs at least 2 {noun} at each end, "
                                   f"B={b} has {usable.get(b, 0)}")
    if n < need["causal fit"]:
        return "train.seeds", f"the causal fit needs at least {need['causal fit']} {noun}, there are {n}"
    for name, k in need.items():
        if name != "causal fit" and n < k:
            frac = f"{_subset_fraction():.0%}" if name == "data_subset" else "all"
            return "causal.refuters", (f"the {name} refuter refits on {frac} of them and needs at least {k} "
                                       f"{noun}, there are {n}")
    return None


def _check_columns(config: StudyConfig, kw: Mapping[str, Any]) -> None:
    """Every mediator column the config names is one ``mediators.measure`` will produce."""
    from hgcnet_jax import mediators as _mediators

    settings = {k: v for k, v in kw.items() if k != "key"}
    measured = _mediators.MeasureConfig(**settings).columns
    m = config.mediators
    for field, col in (("mediators.noise", m.noise), ("mediators.sharpness", m.sharpness),
                       ("mediators.complexity", m.complexity)):
        if col not in measured:
            hint = difflib.get_close_matches(col, measured, n=1)
            extra = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ConfigError(field, f"column {col!r} is not measured by mediators.measure{extra}; "
                                     f"measured columns: {list(measured)}")


def validate(config: StudyConfig, *, task: Any = None) -> dict[str, Any]:
    """Every check of a study that needs no training; raises on the first problem.

    Loads the dataset and binds the model (unless ``task`` is given), checks the batch sizes
    against the training split, the interventions and ``mediators.options``, that every
    configured mediator column is one the measurement produces, and that the grid has
    enough runs for the causal fit and for every refuter (:func:`minimum_runs`). :func:`run`
    calls it before anything is written; ``hgcnet study --dry-run`` calls it alone.

    Returns:
        The plan: ``runs``, ``batch_sizes``, ``seeds``, ``epochs``, ``train_examples`` and
        ``minimum_runs``.

    Raises:
        ConfigError: naming the field and what to do.
    """
    if not isinstance(config, StudyConfig):
        raise TypeError(f"config must be a StudyConfig, got {type(config).__name__}")
    t = config.train
    _validate_without_data(config)
    task = _build_task(config) if task is None else task
    interventions, _ = _interventions(config)
    return {"runs": len(interventions), "batch_sizes": list(t.batch_sizes), "seeds": t.seeds, "epochs": t.epochs,
            "train_examples": int(np.asarray(task.splits["train"]).shape[0]), "minimum_runs": minimum_runs(config)}


def _measure_kwargs(config: StudyConfig) -> dict[str, Any]:
    """Keyword arguments of ``mediators.measure``: ``mediators.options`` checked against ``MeasureConfig``."""
    import jax

    from hgcnet_jax import mediators as _mediators

    known = [f.name for f in dataclasses.fields(_mediators.MeasureConfig)]
    kw = dict(config.mediators.options)
    for k, v in kw.items():
        if k not in known:
            raise ConfigError(f"mediators.options.{k}", f"not a setting of mediators.measure; settings: {known}")
        if isinstance(v, list):
            kw[k] = tuple(v)
    try:
        _mediators.MeasureConfig(**kw)
    except (TypeError, ValueError) as e:
        raise ConfigError("mediators.options", str(e)) from None
    kw["key"] = jax.random.fold_in(jax.random.key(config.seed), 1)
    return kw


# ---------------------------------------------------------------------------- causal fits

GRAPHS = ("hypergraph", "pairwise")


def _graphs(config: StudyConfig) -> dict:
    """The paper's hypergraph over the configured columns, and its pairwise twin.

    ``Hypergraph.paper`` (B → N → S → C → G, {N, S} → C), with B on a log2 scale, the
    mediators transformed by ``mediators.transform`` and, with ``causal.direct_edge``,
    the direct edge B → G.
    """
    from hgcnet_jax import causal

    m = config.mediators
    columns = {"B": "batch_size", "N": m.noise, "S": m.sharpness, "C": m.complexity, "G": m.outcome}
    hyper = causal.Hypergraph.paper(columns, direct=config.causal.direct_edge)
    if m.transform != "identity":
        hyper = hyper.replace(variables=tuple(
            dataclasses.replace(v, transform=m.transform) if v.name in ("N", "S", "C") else v for v in hyper.variables
        ))
    return {"hypergraph": hyper, "pairwise": hyper.pairwise()}


def fit_table(runs: pd.DataFrame, config: StudyConfig) -> tuple[pd.DataFrame, list[str]]:
    """The rows the causal model is fitted on, and a note for every dropped row.

    Diverged runs and runs with a non-finite (or, for log-transformed variables,
    non-positive) value of a modelled column are dropped: their values say nothing
    about the mechanism.
    """
    m = config.mediators
    cols = [m.noise, m.sharpness, m.complexity, m.outcome]
    keep = np.ones(len(runs), dtype=bool)
    notes = []
    if "diverged" in runs:
        div = runs["diverged"].to_numpy(dtype=bool)
        if div.any():
            notes.append(f"{int(div.sum())} diverged run(s) left out of the causal fit "
                         f"(batch sizes {sorted(set(runs.loc[div, 'batch_size'].tolist()))})")
        keep &= ~div
    for i, c in enumerate(cols):
        v = runs[c].to_numpy(dtype=float)
        bad = ~np.isfinite(v) & keep
        if bad.any():
            notes.append(f"{int(bad.sum())} run(s) with a non-finite {c} left out of the causal fit")
        keep &= ~bad
        if i < 3 and m.transform == "log":
            bad = (v <= 0) & keep
            if bad.any():
                notes.append(f"{int(bad.sum())} run(s) with {c} <= 0 left out of the causal fit "
                             "(mediators.transform = 'log'; use 'identity' to keep them)")
            keep &= ~bad
    return runs.loc[keep].reset_index(drop=True), notes


def _fit_kwargs(config: StudyConfig) -> dict[str, Any]:
    c = config.causal
    return dict(method=c.method, num_warmup=c.num_warmup, num_samples=c.num_samples, num_chains=c.num_chains)


def _fits(config: StudyConfig, table: pd.DataFrame, *, log: Callable[[str], None], bar=None) -> tuple[dict, dict]:
    """Fit the hypergraph SCM and its pairwise twin (``causal.fit``) to the runs table."""
    import warnings

    import jax

    from hgcnet_jax import causal

    fits, times = {}, {}
    for i, (name, graph) in enumerate(_graphs(config).items()):
        log(f"causal fit ({name}): {config.causal.method.upper()}, {config.causal.num_chains} chain(s) × "
            f"({config.causal.num_warmup} warm-up + {config.causal.num_samples}) on {len(table)} runs …")
        t0 = time.perf_counter()
        c = config.causal
        what = (f"fit {name}: NUTS {c.num_chains} chains x {c.num_warmup + c.num_samples} transitions"
                if c.method == "nuts" else f"fit {name}: SVI")
        _step(bar, what)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", causal.ConvergenceWarning)  # reported in the summary instead
            try:
                fits[name] = causal.fit(graph, table, key=jax.random.fold_in(jax.random.key(config.seed), 10 + i),
                                        **_fit_kwargs(config))
            except causal.DataError as e:
                raise ConfigError("mediators", f"the runs table cannot be fitted: {e}") from None
        times[name] = time.perf_counter() - t0
        log(f"causal fit ({name}): done in {times[name]:.1f} s")
        _tick(bar, f"fit {name}")
    return fits, times


# ---------------------------------------------------------------------------- diagnostics


def diagnostics(fit) -> dict[str, Any]:
    """MCMC diagnostics of a fit: worst split-R-hat, worst bulk/tail ESS (ArviZ), divergences, verdict.

    The numbers and the verdict ``ok`` are :func:`hgcnet_jax.causal.diagnostics` (the same
    verdict as the fit's ``ConvergenceWarning``), against the fit's own thresholds
    (``fit.config.max_r_hat`` and ``fit.config.min_ess_per_chain × num_chains``; Vehtari
    et al. 2021).
    """
    from hgcnet_jax import causal

    d = causal.diagnostics(fit)
    return dict(max_rhat=d.max_r_hat, min_ess_bulk=d.min_ess_bulk, min_ess_tail=d.min_ess_tail,
                divergences=d.num_divergences, chains=d.num_chains, ok=d.ok,
                rhat_max=d.r_hat_threshold, ess_min=d.ess_threshold)


# ---------------------------------------------------------------------------- the pipeline


def run(
    config: StudyConfig | None = None,
    *,
    out: str | os.PathLike | None = None,
    overwrite: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = _log_to_stderr,
) -> StudyResult:
    """Run (or resume) a batch-size study and write its report.

    Args:
        config: the study (default: the embedded quick demo, :class:`StudyConfig` ``()``).
        out: output folder (default :func:`default_out`).
        overwrite: if ``out`` holds a study of another config, delete it and start again
            (otherwise that is an error).
        progress: show progress bars (``tqdm.auto``: terminal or notebook): the sweep's steps per
            bucket, the mediator measurement per group of runs, and the causal phase per fit
            and query (a fit is one compiled program: its bar names it and keeps its elapsed
            time moving, it cannot count NUTS transitions). Display only: the results and the
            memory use are the same without them.
        log: receives one line per phase event (default: stderr; ``None``: silent).

    Returns:
        A :class:`StudyResult`.

    Raises:
        ConfigError: an invalid config, dataset, model or mediator setting, or a grid too small
            for the causal fit or a refuter (naming the field), raised before anything is
            written (:func:`validate`).
        PermissionError: ``out`` cannot be written (before any work).
        StudyFolderError: ``out`` holds another study and ``overwrite`` is false.
        StudyPhaseError: a phase after the start of training failed (every run diverged, too
            few usable runs, an error inside a phase); everything finished is kept, the
            failure is in ``phases.json`` and ``report.html``, and a re-run resumes.
    """
    config = StudyConfig() if config is None else config
    if not isinstance(config, StudyConfig):
        raise TypeError(f"config must be a StudyConfig, got {type(config).__name__}")
    log = log or (lambda msg: None)
    out = Path(out) if out is not None else default_out(config)
    _validate_without_data(config)  # before anything is written
    created = _first_missing(out)
    resume = _prepare_folder(out, config, overwrite=overwrite)
    phases = _Phases(out)
    resumed: list[str] = []
    timings: dict[str, dict[str, Any]] = {}
    if phases.failed:
        f = phases.failed
        log(f"the previous run failed in the {f['phase']} phase ({f['error']}); resuming after the finished phases")
        phases.drop("failed")
        _remove(out / "report.html")  # the failure page (or a half-built report)
        _remove(out / "plots")

    def reuse(name: str, path: Path, record: str | None = None) -> None:
        info = phases.data.get(record or name, {})
        when = f", computed {info['finished']} in {info['seconds']:.1f} s" if "finished" in info else ""
        log(f"{name}: resumed from {path}{when}")
        resumed.append(name)
        timings[name] = {"seconds": info.get("seconds", float("nan")), "source": "resumed"}

    @contextlib.contextmanager
    def phase(name: str) -> Iterator[None]:
        try:
            yield
        except StudyPhaseError:
            raise
        except Exception as e:
            raise _failed(out, config, phases, name, e, log) from e

    runs_path = out / "runs.parquet"
    if resume and runs_path.exists():
        runs = pd.read_parquet(runs_path)
        reuse("sweep", runs_path)
        if "mediators" in phases.data:
            timings["mediators"] = {"seconds": phases.data["mediators"]["seconds"], "source": "resumed"}
    else:
        try:  # every check that can fail on the config runs before anything is written
            task = _build_task(config)
            validate(config, task=task)
        except BaseException:
            if created is not None:
                shutil.rmtree(created, ignore_errors=True)
            raise
        if not (out / "config.json").exists():
            _io.write_json(out / "config.json", {"format": _FORMAT, "fingerprint": config.fingerprint(),
                                                 "config": config.to_dict(), "created": _now()})
        log(f"study of {config.model.name} on {config.data.name} → {out}")
        with phase("sweep"):
            result, t_sweep = _phase_sweep(config, out, task, progress=progress, log=log)
            _drop_after(out, "sweep.parquet")
            phases.drop("mediators", "fits", "causal", "report")
            _write_parquet(result.runs, out / "sweep.parquet")
            phases.done("sweep", t_sweep)
            timings["sweep"] = {"seconds": t_sweep, "source": "computed"}
            log(f"sweep: done in {t_sweep:.1f} s; wrote {out / 'sweep.parquet'}")
            _check_trained(config, result.runs)
        with phase("mediators"):
            runs, t_med, per_call = _phase_mediators(config, task, result, progress=progress, log=log)
            m = config.mediators
            missing = [c for c in (m.noise, m.sharpness, m.complexity, m.outcome) if c not in runs.columns]
            if missing:  # validate() checked the names; this guards the measurement itself
                raise RuntimeError(f"mediators.measure did not produce the column(s) {missing}")
            _write_parquet(runs, runs_path)
            phases.done("mediators", t_med, runs_per_call=per_call)
            timings["mediators"] = {"seconds": t_med, "source": "computed"}
            log(f"mediators: done in {t_med:.1f} s; wrote {runs_path}")

    summary_path = out / "summary.json"
    if summary_path.exists():
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
        reuse("causal", summary_path)
    else:
        table, notes = fit_table(runs, config)
        with phase("causal fits"):
            problem = _count_problem(config, table.groupby("batch_size").size().to_dict())
            if problem is not None:
                why = "; ".join(notes) or "no run was left out"
                raise ConfigError(problem[0], f"only {len(table)} of {len(runs)} runs can be fitted ({why}): "
                                              f"{problem[1]}. Lower train.lr or add seeds")
        posteriors = [out / f"posterior_{g}.nc" for g in GRAPHS]
        bar = _causal_bar(config, progress)
        try:
            with _alive(bar):
                fits = None
                if resume and "fits" in phases.data and all(p.exists() for p in posteriors):
                    done = StudyResult(out=out, config=config, runs=runs, summary={}, report=out / "report.html",
                                       resumed=())
                    try:
                        fits = {g: done.fit(g) for g in GRAPHS}
                    except Exception as e:  # an unreadable posterior is refitted, never a dead end
                        log(f"causal fits: cannot rebuild them from {posteriors[0].parent} ({e}); refitting")
                if fits is not None:
                    reuse("causal fits", posteriors[0].parent, record="fits")
                    t_fits = {"resumed": phases.data["fits"].get("seconds", float("nan"))}
                    for g in GRAPHS:
                        _tick(bar, f"fit {g} (resumed)")
                else:
                    with phase("causal fits"):
                        fits, t_fits = _fits(config, table, log=log, bar=bar)
                        _drop_after(out, "runs.parquet")
                        for name, f in fits.items():
                            _write_netcdf(f.idata, out / f"posterior_{name}.nc")
                        phases.done("fits", sum(t_fits.values()))
                        timings["causal fits"] = {"seconds": sum(t_fits.values()), "source": "computed"}
                with phase("effects"):
                    log("effects: E[G | do(B)], ATE, mediation, PSIS-LOO, refutations, permutation test, "
                        "recommendation …")
                    t0 = time.perf_counter()
                    summary = summarise(config, runs, table, fits, notes=notes, log=log, bar=bar)
                    t_eff = time.perf_counter() - t0
        finally:
            if bar is not None:
                bar.close()
        log(f"effects: done in {t_eff:.1f} s")
        timings["effects"] = {"seconds": t_eff, "source": "computed"}
        summary["timings"] = timings
        with phase("effects"):
            _io.write_json(summary_path, summary)
            phases.done("causal", sum(t_fits.values()) + t_eff, fits_s=round(sum(t_fits.values()), 3),
                        effects_s=round(t_eff, 3))

    report_path = out / "report.html"
    if report_path.exists() and (out / "plots").is_dir():
        reuse("report", report_path)
    else:
        from hgcnet_jax.report import build as _build

        with phase("report"):
            t0 = time.perf_counter()
            _build.build(summary, runs, out, graph=_graphs(config)["hypergraph"])
            phases.done("report", time.perf_counter() - t0)
        log(f"report: wrote {report_path}")
    return StudyResult(out=out, config=config, runs=runs, summary=summary, report=report_path,
                       resumed=tuple(resumed))


def _validate_without_data(config: StudyConfig) -> None:
    """The checks of :func:`validate` that need neither the dataset nor the folder."""
    t = config.train
    problem = _count_problem(config, {b: t.seeds for b in t.batch_sizes}, noun="runs")
    if problem is not None:
        field, what = problem
        need = max(minimum_runs(config).values())
        seeds = -(-need // len(t.batch_sizes))
        raise ConfigError(field, (
            f"{len(t.batch_sizes)} batch sizes × {t.seeds} seeds = {len(t.batch_sizes) * t.seeds} runs are too few "
            f"({what}); use at least {need} runs (e.g. --seeds {seeds} with these batch sizes)"
            + (" or leave the refuter out (--set 'causal.refuters=[...]')" if field == "causal.refuters" else "")))
    _interventions(config)
    _check_columns(config, _measure_kwargs(config))


def _lr_text(config: StudyConfig, runs: pd.DataFrame) -> str:
    t = config.train
    if t.lr_scaling == "fixed" or "lr_effective" not in runs:
        return f"learning rate train.lr = {t.lr:g}"
    eff = runs["lr_effective"].to_numpy(dtype=float)
    return (f"learning rate train.lr = {t.lr:g} ({t.lr_scaling} scaling: {eff.min():g} to {eff.max():g} "
            "across batch sizes)")


def _check_trained(config: StudyConfig, runs: pd.DataFrame) -> None:
    """Stop after the sweep when the runs that trained cannot finish the study (naming the learning rate)."""
    div = runs["diverged"].to_numpy(dtype=bool)
    n = len(runs)
    if div.all():
        suggest = min(config.train.lr / 10, type(config.train)().lr)
        raise ConfigError("train.lr", (
            f"all {n} runs diverged (their loss became NaN or inf) at {_lr_text(config, runs)}: there is nothing "
            f"to measure or fit. Lower the learning rate (--lr, e.g. {suggest:g})"))
    usable = runs.loc[~div].groupby("batch_size").size().to_dict()
    problem = _count_problem(config, usable)
    if problem is not None:
        by_b = sorted(set(runs.loc[div, "batch_size"].tolist()))
        raise ConfigError("train.lr", (
            f"{int(div.sum())} of {n} runs diverged (NaN or inf loss; batch sizes {by_b}) at "
            f"{_lr_text(config, runs)}, so {problem[1]}. Lower the learning rate (--lr) or add seeds"))


def _failed(out: Path, config: StudyConfig, phases: _Phases, phase: str, error: Exception,
            log: Callable[[str], None]) -> StudyPhaseError:
    """Record a failed phase (``phases.json``, a ``report.html`` saying what failed and what is kept)."""
    reason = str(error) or type(error).__name__
    try:
        phases.fail(phase, error)
        _io.write_text(out / "report.html", _failure_report(out, config, phase, reason))
        log(f"{phase}: FAILED ({reason}); wrote {out / 'report.html'}")
    except Exception as e:  # the folder itself is failing: the error still reaches the user
        log(f"{phase}: FAILED ({reason}); could not write the failure report: {e}")
    return StudyPhaseError(phase, reason, out, user_error=isinstance(error, ConfigError))


_DESCRIPTIONS = {
    "config.json": "the config and its fingerprint",
    "sweep.parquet": "the sweep: one row per run (losses, accuracies, diverged)",
    "runs.parquet": "the runs with the mediator columns N, S, C",
    "posterior_hypergraph.nc": "posterior of the hypergraph model (ArviZ netCDF)",
    "posterior_pairwise.nc": "posterior of the pairwise model (ArviZ netCDF)",
    "summary.json": "every number of the report",
    "phases.json": "when each phase ran, and this failure",
}


def _failure_report(out: Path, config: StudyConfig, phase: str, reason: str) -> str:
    """The ``report.html`` of a study that failed in ``phase``: why, what is kept, how to resume."""
    esc = html.escape
    kept = [n for n in (*ARTIFACTS, "phases.json") if n != "report.html" and (out / n).exists()]
    kept = list(dict.fromkeys(kept))
    if (out / "checkpoints" / "sweep").is_dir():
        kept.append("checkpoints/sweep/")
    items = "".join(f"<li><code>{esc(n)}</code>: {esc(_DESCRIPTIONS.get(n, 'the sweep checkpoints (resumable)'))}"
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


def load_result(out: str | os.PathLike) -> StudyResult:
    """Read a finished study from its folder (no computation).

    Raises:
        FileNotFoundError: the folder does not hold a finished study.
    """
    out = Path(out)
    failed = (_read_json(out / "phases.json") or {}).get("failed")
    if failed:
        raise FileNotFoundError(f"{str(out)!r} does not hold a finished study: its {failed['phase']} phase failed "
                                f"({failed['error']}); see its report.html, fix the cause and re-run to resume")
    missing = [n for n in ("config.json", "runs.parquet", "summary.json", "report.html") if not (out / n).exists()]
    if missing:
        raise FileNotFoundError(f"{str(out)!r} does not hold a finished study (missing {', '.join(missing)})")
    saved = json.loads((out / "config.json").read_text(encoding="utf-8"))
    return StudyResult(out=out, config=StudyConfig.from_dict(saved["config"]), runs=pd.read_parquet(out / "runs.parquet"),
                       summary=json.loads((out / "summary.json").read_text(encoding="utf-8")),
                       report=out / "report.html", resumed=("sweep", "summary", "report"))


# ---------------------------------------------------------------------------- summary helpers


#: ``study.load(out)``: the finished study in ``out`` (runs, summary, ``.posterior(graph)``, ``.fit(graph)``).
load = load_result


def time_per_epoch(runs: pd.DataFrame) -> pd.Series:
    """Measured seconds per epoch for each batch size: median over seeds of ``wall_time_s / epochs``.

    ``wall_time_s`` is the sweep's per-run share of its bucket's wall time (the runs of a
    bucket train together, vectorised), so this is the cost per run and epoch.
    """
    t = runs["wall_time_s"].to_numpy(dtype=float) / runs["epochs"].to_numpy(dtype=float)
    return pd.Series(t, index=runs["batch_size"].to_numpy()).groupby(level=0).median()


def per_batch_size(runs: pd.DataFrame, config: StudyConfig) -> dict[str, Any]:
    """Per-batch-size table of the report: runs, diverged, mean outcome and median mediators and cost."""
    m = config.mediators
    cols = [m.outcome, m.noise, m.sharpness, m.complexity]
    tpe = time_per_epoch(runs)
    rows = []
    for b, grp in runs.groupby("batch_size"):
        row = {"batch_size": int(b), "runs": int(len(grp)),
               "diverged": int(grp["diverged"].sum()) if "diverged" in grp else 0,
               f"mean {m.outcome}": float(grp[m.outcome].mean()), f"sd {m.outcome}": float(grp[m.outcome].std(ddof=1))}
        for c in cols[1:]:
            row[f"median {c}"] = float(grp[c].median())
        row["steps"] = int(grp["steps"].iloc[0]) if "steps" in grp else None
        row["s / epoch"] = float(tpe.loc[b])
        rows.append(row)
    columns = [k for k in rows[0] if k != "batch_size"]
    return {"columns": columns, "rows": rows}


def _causal_bar(config: StudyConfig, progress: bool):
    """A ``tqdm`` bar over the causal phase: one tick per NUTS fit (two, plus one per refutation) and query."""
    if not progress:
        return None
    from tqdm.auto import tqdm

    total = 2 + 4 + len(config.causal.refuters)
    return tqdm(total=total, desc="causal (NUTS fits, queries)", unit="step", leave=False)


@contextlib.contextmanager
def _alive(bar, *, every: float = 1.0) -> Iterator[None]:
    """Redraw ``bar`` every ``every`` seconds (its elapsed time and the step it names) while the body runs.

    A NUTS or SVI fit is one compiled XLA program (warm-up and sampling in one scan, the
    chains vmapped, inside :mod:`hgcnet_jax.causal`): nothing reaches the host until it
    ends, so the bar cannot count its transitions. This keeps the bar moving and
    :func:`_step` says which fit or query is running, at no cost to the computation (a
    host thread that sleeps between redraws).
    """
    if bar is None:
        yield
        return
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(every):
            bar.refresh()

    thread = threading.Thread(target=beat, name="hgcnet-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _step(bar, what: str) -> None:
    """Name the step that starts now on ``bar``."""
    if bar is not None:
        bar.set_postfix_str(what, refresh=True)


def _tick(bar, what: str) -> None:
    if bar is not None:
        bar.set_postfix_str(what, refresh=False)
        bar.update(1)


def _interval(e) -> dict[str, float]:
    return {"mean": float(e.mean), "lo": float(e.lower), "hi": float(e.upper)}


def _edge_effects(fit) -> list[dict[str, Any]]:
    """Posterior mean of every edge's coefficient (standardised scale) of a fit, for the drawing."""
    post = fit.idata.posterior
    g = fit.graph

    def mean(site: str) -> float | None:
        return float(post[site].mean()) if site in post else None

    edges = [{"tails": [e.parent], "head": e.child, "effect": mean(f"coef[{e.label}]"), "site": f"coef[{e.label}]"}
             for e in g.edges]
    for h in g.hyperedges:
        site = f"inter[{'*'.join(h.parents)}->{h.child}]"
        edges.append({"tails": list(h.parents), "head": h.child, "effect": mean(site), "site": site})
        for p in h.parents:  # the members' main effects carried by the hyperedge
            site = f"coef[{p}->{h.child}]"
            if site in post and not any(e["site"] == site for e in edges):
                edges.append({"tails": [p], "head": h.child, "effect": mean(site), "site": site, "main_effect": True})
    return edges


def summarise(
    config: StudyConfig,
    runs: pd.DataFrame,
    table: pd.DataFrame,
    fits: Mapping[str, Any],
    *,
    notes: list[str] | None = None,
    log: Callable[[str], None] | None = None,
    bar=None,
) -> dict[str, Any]:
    """Every number of the report, from the runs and the two fits (``summary.json``).

    Calls the causal layer for each query: :func:`hgcnet_jax.causal.recommend` (E[G | do(B = b)]
    for every b, common random numbers across b), :func:`~hgcnet_jax.causal.ate`,
    :func:`~hgcnet_jax.causal.mediation`, :func:`~hgcnet_jax.causal.loo_compare`,
    :func:`~hgcnet_jax.causal.refute` and :func:`~hgcnet_jax.causal.permutation_test`.

    Args:
        config: the study's config.
        runs: the full runs table.
        table: the rows the models were fitted on (see :func:`fit_table`).
        fits: ``{"hypergraph": Fit, "pairwise": Fit}``.
        notes: warnings about dropped rows (from :func:`fit_table`).
        log: progress messages.
        bar: optional ``tqdm`` bar advanced once per query (see :func:`_causal_bar`).

    Returns:
        A JSON-serialisable dict; its keys are documented in :mod:`hgcnet_jax.report.html`.
    """
    import jax

    from hgcnet_jax import causal
    from hgcnet_jax._version import __version__

    log = log or (lambda msg: None)
    c, m = config.causal, config.mediators
    bs = list(config.train.batch_sizes)
    b_small, b_large = bs[0], bs[-1]
    prob = c.credible_mass
    key = jax.random.fold_in(jax.random.key(config.seed), 20)
    k_perm, k_ref = jax.random.split(key)
    hyper, pair = fits["hypergraph"], fits["pairwise"]
    warnings_: list[str] = list(notes or [])

    # E[G | do(B = b)] for every b, and the recommendation (one call per graph: common random numbers)
    _step(bar, "E[G | do(B = b)] for every batch size")
    recs = {name: causal.recommend(f, bs, current=config.current, prob=prob) for name, f in fits.items()}
    curves = {}
    for name, rec in recs.items():
        t = rec.table.set_index("value")
        curves[name] = {"mean": [float(t.loc[b, "mean"]) for b in bs], "lo": [float(t.loc[b, "lower"]) for b in bs],
                        "hi": [float(t.loc[b, "upper"]) for b in bs]}
    _tick(bar, "E[G | do(B)]")
    observed = runs.groupby("batch_size")[m.outcome].mean()
    counts = runs.groupby("batch_size")[m.outcome].size()

    # ATE of the smallest against the largest batch size, and the frequentist test over seeds
    log(f"effects: ATE of B={b_small} vs B={b_large}, permutation test")
    _step(bar, "ATE, permutation test")
    eff = causal.ate(hyper, "B", b_small, b_large, "G", prob=prob)
    perm = causal.permutation_test(table, "batch_size", b_small, b_large, m.outcome, key=k_perm,
                                   num_permutations=c.permutations, num_bootstrap=c.permutations)
    ate = {"b_small": b_small, "b_large": b_large, "mean": eff.mean, "lo": eff.lower, "hi": eff.upper, "mass": prob,
           "sd": eff.sd, "prob_positive": eff.p_positive, "prob_sign": eff.p_sign, "observed": perm.diff,
           "observed_lo": perm.lower, "observed_hi": perm.upper, "p_value": perm.p_value,
           "n_small": perm.n_a, "n_large": perm.n_b, "draws": [round(float(x), 6) for x in eff.draws]}
    ate_pair = causal.ate(pair, "B", b_small, b_large, "G", prob=prob)
    _tick(bar, "ATE")

    # Direct and mediated effects (Pearl 2001; path-specific: Avin, Shpitser & Pearl 2005)
    log("effects: mediation (natural direct/indirect, path-specific through N, S, C)")
    _step(bar, "mediation")
    med = causal.mediation(hyper, "B", b_small, b_large, "G", prob=prob)
    _tick(bar, "mediation")
    rows = {"total (ATE)": _interval(med.total), "direct (NDE)": _interval(med.nde),
            "indirect (NIE)": _interval(med.nie)}
    for name, e in med.pse.items():
        rows[f"through {name} (path-specific)"] = _interval(e)
    effects = {"rows": rows, "note": (
        f"Contrast do(B={b_small}) against do(B={b_large}) on {m.outcome}, hypergraph model, noise abducted per run "
        f"({med.noise}). Total = direct + indirect; a path-specific effect through a mediator covers every path "
        "through it, so those overlap and need not add up to the total."
        + ("" if config.causal.direct_edge else " The graph has no direct edge B → G, so the direct effect is 0 "
           "by construction."))}

    # Hypergraph against pairwise
    log("effects: PSIS-LOO hypergraph against pairwise")
    _step(bar, "PSIS-LOO")
    lc = causal.loo_compare(hyper, pair, names=("hypergraph", "pairwise"))
    _tick(bar, "PSIS-LOO")
    if lc.prefers_a():
        verdict = f"The hypergraph predicts held-out runs better: Δelpd = {lc.diff:+.2f} ± {lc.se_diff:.2f} (z = {lc.z:.1f})."
    elif lc.diff < -2 * lc.se_diff:
        verdict = f"The pairwise graph predicts held-out runs better: Δelpd = {lc.diff:+.2f} ± {lc.se_diff:.2f} (z = {lc.z:.1f})."
    else:
        verdict = (f"No clear preference: Δelpd (hypergraph − pairwise) = {lc.diff:+.2f} ± {lc.se_diff:.2f} "
                   f"(|z| = {abs(lc.z):.1f} < 2).")
    verdict += (f" ATE under the pairwise graph: {ate_pair.mean:+.4f} [{ate_pair.lower:+.4f}, {ate_pair.upper:+.4f}] "
                f"(hypergraph {eff.mean:+.4f}).")
    if lc.max_pareto_k > 0.7:
        warnings_.append(f"PSIS-LOO is unreliable for some runs (max Pareto k = {lc.max_pareto_k:.2f} > 0.7).")
    loo = {"models": {"hypergraph": {"elpd": lc.elpd_a, "se": lc.se_a, "p_loo": None, "pareto_k_max": lc.max_pareto_k},
                      "pairwise": {"elpd": lc.elpd_b, "se": lc.se_b, "p_loo": None, "pareto_k_max": lc.max_pareto_k}},
           "diff": lc.diff, "se_diff": lc.se_diff, "z": lc.z,
           "preferred": "hypergraph" if lc.diff >= 0 else "pairwise", "verdict": verdict}

    # Refutations (each refits the model)
    refutations = []
    if c.refuters:
        log(f"effects: refutations ({', '.join(c.refuters)}); each refits the model …")
        import warnings as _w

        frames = []
        for name, k in zip(c.refuters, jax.random.split(k_ref, len(c.refuters))):
            _step(bar, f"refute: {name} (refits the model)")
            with _w.catch_warnings():
                _w.simplefilter("ignore", causal.ConvergenceWarning)
                frames.append(causal.refute(hyper, "B", b_small, b_large, "G", key=k, refuters=(name,), prob=prob))
            _tick(bar, f"refute: {name}")
        for r in pd.concat(frames, ignore_index=True).to_dict("records"):
            refutations.append({
                "name": r["refuter"].replace("_", " "), "original": r["estimate"], "new": r["new_estimate"],
                "new_lo": r["new_lower"], "new_hi": r["new_upper"], "passed": bool(r["passed"]),
                "detail": f"{r['criterion']} (new interval [{r['new_lower']:+.4f}, {r['new_upper']:+.4f}])"})
            if not r["passed"]:
                warnings_.append(f"Refutation '{r['refuter'].replace('_', ' ')}' failed: {r['criterion']} does not hold.")

    # MCMC diagnostics
    diag = {name: diagnostics(f) for name, f in fits.items()}
    for name, d in diag.items():
        if not d["ok"]:
            warnings_.append(
                f"MCMC diagnostics are poor for the {name} model: max R-hat {d['max_rhat']:.3f} "
                f"(threshold {d['rhat_max']}), min bulk ESS {d['min_ess_bulk']:.0f} / tail ESS {d['min_ess_tail']:.0f} "
                f"(threshold {d['ess_min']:.0f}), {d['divergences']} divergent transitions. "
                "Increase causal.num_warmup / causal.num_samples.")

    # Recommendation
    rec = recs["hypergraph"]
    t = rec.table.set_index("value")
    tpe = time_per_epoch(runs)
    best, cur = int(rec.best), int(config.current)
    recommendation = {
        "best_batch_size": best, "best_mean": float(t.loc[best, "mean"]), "best_lo": float(t.loc[best, "lower"]),
        "best_hi": float(t.loc[best, "upper"]), "p_best": float(t.loc[best, "p_best"]),
        "current_batch_size": cur, "current_mean": float(t.loc[cur, "mean"]),
        "prob_beats_current": float(rec.p_beats_current) if best != cur else 0.0,
        "gain_vs_current": float(rec.gain) if best != cur else 0.0,
        "best_time_per_epoch_s": float(tpe.loc[best]), "current_time_per_epoch_s": float(tpe.loc[cur]),
        "time_ratio_vs_current": float(tpe.loc[best] / tpe.loc[cur]),
        "time_per_epoch_s": {str(b): float(tpe.loc[b]) for b in bs},
        "p_best_by_batch_size": {str(b): float(t.loc[b, "p_best"]) for b in bs},
        "time_note": ("seconds per epoch = the sweep's wall time of the batch size's vectorised bucket, divided by "
                      "its runs and epochs (median over seeds); it includes the bucket's one-off XLA compilation, "
                      "which dominates very short runs"),
    }

    d = config.data
    return {
        "version": __version__,
        "format": _FORMAT,
        "fingerprint": config.fingerprint(),
        "title": f"Batch-size study: {config.model.name} on {d.name}",
        "subtitle": (f"{len(runs)} runs: batch sizes {bs} × {config.train.seeds} seeds, {config.train.epochs} epochs, "
                     f"{config.train.optimizer} (lr {config.train.lr}); G = {m.outcome}, N = {m.noise}, "
                     f"S = {m.sharpness}, C = {m.complexity}; {len(table)} runs in the causal fit."),
        "config": config.to_dict(),
        "config_toml": config.to_toml(),
        "outcome": m.outcome,
        "mediator_columns": {"N": m.noise, "S": m.sharpness, "C": m.complexity},
        "interventional": {"batch_sizes": bs, "curves": curves, "observed_mean": [float(observed.loc[b]) for b in bs],
                           "n_runs": [int(counts.loc[b]) for b in bs]},
        "ate": ate,
        "ate_pairwise": _interval(ate_pair),
        "effects": effects,
        "hypergraph_edges": _edge_effects(hyper),
        "loo": loo,
        "refutations": refutations,
        "diagnostics": {"ok": all(x["ok"] for x in diag.values()), "rhat_max": diag["hypergraph"]["rhat_max"],
                        "ess_min": diag["hypergraph"]["ess_min"], "models": diag},
        "recommendation": recommendation,
        "per_batch_size": per_batch_size(runs, config),
        "warnings": warnings_,
        "files": ["config.json", "sweep.parquet", "runs.parquet", "posterior_hypergraph.nc", "posterior_pairwise.nc", "summary.json",
                  "plots/<name>.png", "plots/<name>.svg", "report.html", "phases.json"],
    }
