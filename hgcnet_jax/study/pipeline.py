"""The end-to-end batch-size study behind ``hgcnet study``: the phases, in order, resumable.

Pipeline (each arrow is a call into the module that owns the step):

.. code-block:: text

    data.load ─► train.make_task ─► train.sweep ─► mediators.measure ─► causal.fit (hypergraph, pairwise)
      ─► causal effects (E[G | do(B)], ATE, mediation, LOO, refutations, permutation test, recommendation)
      ─► report (plots/*.png|svg, report.html)

The checks run first (:mod:`hgcnet_jax.study.plan`), the files land in the folder
(:mod:`hgcnet_jax.study.folder`), the numbers are :mod:`hgcnet_jax.study.summary`'s.
A study that fails after training started keeps every finished file, records the
failure in ``phases.json``, writes a ``report.html`` that says which phase failed and
why and what is already there, and raises :class:`StudyPhaseError`. Re-running with
the same config resumes: every finished phase is loaded, not recomputed; after a
failure in the effects the causal fits are rebuilt from their posteriors.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from hgcnet_jax import _io
from hgcnet_jax.config import CANDIDATES, ConfigError, StudyConfig
from hgcnet_jax.report.failure import failure_page
from hgcnet_jax.study.folder import (
    ARTIFACTS,
    FORMAT,
    Phases,
    StudyPhaseError,
    default_out,
    drop_after,
    first_missing,
    now,
    posterior_file,
    prepare_folder,
    read_json,
    remove,
    write_netcdf,
    write_parquet,
)
from hgcnet_jax.study.keys import StudyKeys
from hgcnet_jax.study.plan import (
    build_task,
    check_trained,
    count_problem,
    fit_kwargs,
    fit_table,
    graphs,
    make_interventions,
    measure_kwargs,
    runs_per_call,
    sharding_record,
    sweep_mesh,
    validate,
    validate_without_data,
)
from hgcnet_jax.study.progress import alive, causal_bar, log_to_stderr, step, tick
from hgcnet_jax.study.summary import summarise

__all__ = ["run", "load_result", "load", "StudyResult"]


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
        """The posterior of candidate ``graph`` (``"hypergraph"``, ``"pairwise"``, ``"B->C"`` …) as ArviZ ``InferenceData``."""
        import arviz as az

        self._check_graph(graph)
        return az.from_netcdf(self.out / posterior_file(graph))

    def _check_graph(self, graph: str) -> None:
        fitted = list(self.config.causal.candidates)
        if graph not in fitted:
            raise ValueError(f"graph must be one of the study's candidates {fitted}, got {graph!r}")
        if not (self.out / posterior_file(graph)).exists():
            raise ValueError(f"candidate {graph!r} was not fitted in this study (no {posterior_file(graph)}; "
                             "see the summary's notes)")

    def fit(self, graph: str = "hypergraph"):
        """The study's :class:`hgcnet_jax.causal.Fit` of candidate ``graph``, rebuilt from the folder (no inference).

        :meth:`hgcnet_jax.causal.Fit.from_idata` on the saved posterior, with the graph and
        the fitted rows from the saved config and runs table (:func:`fit_table`): the
        posterior records the fit's settings and PRNG key, so every query (``causal.ate``,
        ``mediation``, ``recommend``, ``criticize`` …) works on it as on the fit the study
        made; values agree up to float32 rounding of the posterior's readable names.
        ``wall_time_s`` is the phase's recorded time (NaN when unknown).

        Raises:
            ValueError: ``graph`` is not a fitted candidate, or its posterior was written
                before fits recorded their key (re-run the causal phase: delete
                ``summary.json`` and the ``posterior_*.nc`` files and run the study again).
        """
        from hgcnet_jax import causal

        self._check_graph(graph)
        table, _ = fit_table(self.runs, self.config)
        seconds = (read_json(self.out / "phases.json") or {}).get("causal", {}).get("fits_s", float("nan"))
        return causal.Fit.from_idata(self.posterior(graph), graphs(self.config, table)[graph], table,
                                     wall_time_s=float(seconds))


def phase_sweep(config: StudyConfig, out: Path, task, *, progress: bool, log: Callable[[str], None]):
    """Train every run (``train.sweep``, checkpointed: a re-run resumes).

    Returns ``(SweepResult, seconds, record)``, ``record`` the devices and padding (:func:`sharding_record`).
    """
    from hgcnet_jax import train as _train

    interventions, budget = make_interventions(config)
    mesh = sweep_mesh(config)
    log(f"sweep: {len(interventions)} runs ({len(config.train.batch_sizes)} batch sizes × {config.train.seeds} seeds), "
        f"{config.train.epochs} epochs each; checkpoints in {out / 'checkpoints' / 'sweep'}")
    record = sharding_record(config, mesh)
    if mesh is not None:
        replicas = next(iter(record["replicas_per_bucket"].values()))
        split = (f" ({record['data_devices']} per run, each minibatch split over them)"
                 if record["data_devices"] > 1 else "")
        log(f"sweep: sharded over {record['devices']} {mesh.devices.flat[0].platform} devices{split}; each bucket's "
            f"{config.train.seeds} runs padded to {replicas} replicas ({record['idle_replicas']} idle replica(s) in all)")
    t0 = time.perf_counter()
    result = _train.sweep(task, interventions, budget, key=StudyKeys.of(config.seed).sweep,
                          checkpoint_dir=out / "checkpoints" / "sweep", progress=progress,
                          trajectory=config.train.trajectory or None, mesh=mesh)
    return result, time.perf_counter() - t0, record


def phase_mediators(config: StudyConfig, task, result, *, progress: bool, log: Callable[[str], None]):
    """Measure N, S, C on every run (``mediators.measure``); returns ``(table, seconds, runs_per_call)``."""
    from hgcnet_jax import mediators as _mediators

    kw = measure_kwargs(config)
    kw["runs_per_call"] = runs_per_call(config, len(result.runs))
    mesh = sweep_mesh(config)  # the sweep's devices: each call's runs are split over all of them
    where = "" if mesh is None else f", split over {mesh.devices.size} devices (rounded up to a multiple)"
    log(f"mediators: measuring N, S, C on {len(result.runs)} runs, {kw['runs_per_call']} per compiled call{where}")
    t0 = time.perf_counter()
    table = _mediators.measure(task, result, progress=progress, mesh=mesh, **kw)
    return table, time.perf_counter() - t0, int(table.attrs["measure_plan"]["runs_per_call"])


def fit_graphs(config: StudyConfig, table: pd.DataFrame, *, log: Callable[[str], None], bar=None,
               notes: list[str] | None = None) -> tuple[dict, dict]:
    """Fit every candidate graph (``causal.fit``) to the runs table: ``({name: Fit}, {name: seconds})``."""
    import warnings

    from hgcnet_jax import causal

    fits, times = {}, {}
    keys = StudyKeys.of(config.seed, num_graphs=len(CANDIDATES)).fits
    c = config.causal
    for name, graph in graphs(config, table, notes=notes).items():
        log(f"causal fit ({name}): {c.method.upper()}, {c.num_chains} chain(s) × "
            f"({c.num_warmup} warm-up + {c.num_samples}) on {len(table)} runs …")
        t0 = time.perf_counter()
        what = (f"fit {name}: NUTS {c.num_chains} chains x {c.num_warmup + c.num_samples} transitions"
                if c.method == "nuts" else f"fit {name}: SVI")
        step(bar, what)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", causal.ConvergenceWarning)  # reported in the summary instead
            try:
                fits[name] = causal.fit(graph, table, key=keys[CANDIDATES.index(name)], **fit_kwargs(config))
            except causal.DataError as e:
                raise ConfigError("mediators", f"the runs table cannot be fitted: {e}") from None
        times[name] = time.perf_counter() - t0
        log(f"causal fit ({name}): done in {times[name]:.1f} s")
        tick(bar, f"fit {name}")
    return fits, times


def with_split_sizes(runs: pd.DataFrame, task) -> pd.DataFrame:
    """``runs`` with ``n_train``, ``n_val``, ``n_test``: the examples of each split (the counts behind an accuracy)."""
    runs = runs.copy()
    for name, idx in task.splits.items():
        runs[f"n_{name}"] = int(idx.shape[0])
    return runs


def run(
    config: StudyConfig | None = None,
    *,
    out: str | os.PathLike | None = None,
    overwrite: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = log_to_stderr,
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
    validate_without_data(config)  # before anything is written
    created = first_missing(out)
    resume = prepare_folder(out, config, overwrite=overwrite)
    phases = Phases(out)
    resumed: list[str] = []
    timings: dict[str, dict[str, Any]] = {}
    if phases.failed:
        f = phases.failed
        log(f"the previous run failed in the {f['phase']} phase ({f['error']}); resuming after the finished phases")
        phases.drop("failed")
        remove(out / "report.html")  # the failure page (or a half-built report)
        remove(out / "plots")

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
            raise record_failure(out, config, phases, name, e, log) from e

    runs_path = out / "runs.parquet"
    if resume and runs_path.exists():
        runs = pd.read_parquet(runs_path)
        reuse("sweep", runs_path)
        if "mediators" in phases.data:
            timings["mediators"] = {"seconds": phases.data["mediators"]["seconds"], "source": "resumed"}
    else:
        try:  # every check that can fail on the config runs before anything is written
            task = build_task(config)
            validate(config, task=task)
        except BaseException:
            if created is not None:
                shutil.rmtree(created, ignore_errors=True)
            raise
        if not (out / "config.json").exists():
            _io.write_json(out / "config.json", {"format": FORMAT, "fingerprint": config.fingerprint(),
                                                 "config": config.to_dict(), "created": now()})
        log(f"study of {config.model.name} on {config.data.name} → {out}")
        with phase("sweep"):
            result, t_sweep, placement = phase_sweep(config, out, task, progress=progress, log=log)
            drop_after(out, "sweep.parquet")
            phases.drop("mediators", "fits", "causal", "report")
            write_parquet(result.runs, out / "sweep.parquet")
            phases.done("sweep", t_sweep, **placement)
            timings["sweep"] = {"seconds": t_sweep, "source": "computed"}
            log(f"sweep: done in {t_sweep:.1f} s; wrote {out / 'sweep.parquet'}")
            check_trained(config, result.runs)
        with phase("mediators"):
            runs, t_med, per_call = phase_mediators(config, task, result, progress=progress, log=log)
            runs = with_split_sizes(runs, task)
            m = config.mediators
            missing = [c for c in (m.noise, m.sharpness, m.complexity, m.outcome) if c not in runs.columns]
            if missing:  # validate() checked the names; this guards the measurement itself
                raise RuntimeError(f"mediators.measure did not produce the column(s) {missing}")
            write_parquet(runs, runs_path)
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
            problem = count_problem(config, table.groupby("batch_size").size().to_dict())
            if problem is not None:
                why = "; ".join(notes) or "no run was left out"
                raise ConfigError(problem[0], f"only {len(table)} of {len(runs)} runs can be fitted ({why}): "
                                              f"{problem[1]}. Lower train.lr or add seeds")
        fitted = list(graphs(config, table))
        posteriors = [out / posterior_file(g) for g in fitted]
        bar = causal_bar(config, progress, num_graphs=len(fitted))
        try:
            with alive(bar):
                fits = None
                if resume and "fits" in phases.data and all(p.exists() for p in posteriors):
                    done = StudyResult(out=out, config=config, runs=runs, summary={}, report=out / "report.html",
                                       resumed=())
                    try:
                        fits = {g: done.fit(g) for g in fitted}
                    except Exception as e:  # an unreadable posterior is refitted, never a dead end
                        log(f"causal fits: cannot rebuild them from {posteriors[0].parent} ({e}); refitting")
                if fits is not None:
                    graphs(config, table, notes=notes)  # the same notes as the fitting run
                    reuse("causal fits", posteriors[0].parent, record="fits")
                    t_fits = {"resumed": phases.data["fits"].get("seconds", float("nan"))}
                    for g in fitted:
                        tick(bar, f"fit {g} (resumed)")
                else:
                    with phase("causal fits"):
                        fits, t_fits = fit_graphs(config, table, log=log, bar=bar, notes=notes)
                        drop_after(out, "runs.parquet")
                        for name, f in fits.items():
                            write_netcdf(f.idata, out / posterior_file(name))
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
            table, _ = fit_table(runs, config)
            answered = summary.get("criticism", {}).get("answered_by", "hypergraph")
            _build.build(summary, runs, out, graph=graphs(config, table)[answered])
            phases.done("report", time.perf_counter() - t0)
        log(f"report: wrote {report_path}")
    return StudyResult(out=out, config=config, runs=runs, summary=summary, report=report_path,
                       resumed=tuple(resumed))


def record_failure(out: Path, config: StudyConfig, phases: Phases, phase: str, error: Exception,
            log: Callable[[str], None]) -> StudyPhaseError:
    """Record a failed phase (``phases.json``, a ``report.html`` saying what failed and what is kept)."""
    reason = str(error) or type(error).__name__
    try:
        phases.fail(phase, error)
        kept = [n for n in (*ARTIFACTS, "phases.json") if n != "report.html" and (out / n).exists()]
        kept = list(dict.fromkeys(kept))
        if (out / "checkpoints" / "sweep").is_dir():
            kept.append("checkpoints/sweep/")
        _io.write_text(out / "report.html", failure_page(out, config, phase, reason, kept))
        log(f"{phase}: FAILED ({reason}); wrote {out / 'report.html'}")
    except Exception as e:  # the folder itself is failing: the error still reaches the user
        log(f"{phase}: FAILED ({reason}); could not write the failure report: {e}")
    return StudyPhaseError(phase, reason, out, user_error=isinstance(error, ConfigError))


def load_result(out: str | os.PathLike) -> StudyResult:
    """Read a finished study from its folder (no computation).

    Raises:
        FileNotFoundError: the folder does not hold a finished study.
    """
    out = Path(out)
    failed = (read_json(out / "phases.json") or {}).get("failed")
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


#: ``study.load(out)``: the finished study in ``out`` (runs, summary, ``.posterior(graph)``, ``.fit(graph)``).
load = load_result
