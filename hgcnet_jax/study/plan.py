"""What a study will do, and whether it can: the task, the grid, the graphs, the checks.

Every check that can fail on the config alone runs before any training
(:func:`validate`): the dataset and model, the batch sizes against the training
split, the mediator columns, and the number of runs against what the causal fit and
each refuter need (:func:`minimum_runs`). After the sweep, :func:`check_trained`
stops a study whose runs diverged (naming the learning rate).
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from hgcnet_jax.config import ConfigError, StudyConfig
from hgcnet_jax.study.keys import StudyKeys

__all__ = ["GRAPHS", "MEASURE_GROUPS", "build_task", "make_interventions", "runs_per_call", "minimum_runs", "validate",
           "measure_kwargs", "graphs", "base_graph", "adjusted_column", "fit_table", "fit_kwargs", "check_trained", "count_problem",
           "validate_without_data"]


def build_task(config: StudyConfig):
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


def make_interventions(config: StudyConfig):
    from hgcnet_jax import train as _train

    t = config.train
    axes = dict(batch_size=list(t.batch_sizes), seed=list(range(t.seeds)), lr=t.lr, optimizer=t.optimizer,
                weight_decay=t.weight_decay, l2=t.l2, reg_scope=t.reg_scope, lr_scaling=t.lr_scaling,
                base_batch_size=min(t.batch_sizes))
    if t.momentum is not None:
        axes["momentum"] = t.momentum
    try:
        interventions = _train.grid(**axes)
    except (TypeError, ValueError) as e:
        raise ConfigError("train", str(e)) from None
    return interventions, make_budget(config)


def make_budget(config: StudyConfig):
    """The :class:`hgcnet_jax.train.Budget` of ``train.budget`` (see :class:`~hgcnet_jax.config.TrainConfig`)."""
    import inspect

    from hgcnet_jax import train as _train

    t = config.train
    if t.budget == "steps":
        return _train.Budget(steps=t.steps)
    if t.budget == "convergence":
        if "patience" not in inspect.signature(_train.Budget).parameters:
            raise ConfigError("train.budget", "'convergence' needs early stopping, which this engine lacks")
        try:
            return _train.Budget(epochs=t.epochs, patience=t.patience)
        except (TypeError, ValueError) as e:
            raise ConfigError("train.patience", str(e)) from None
    return _train.Budget(epochs=t.epochs)


#: The mediators are measured in this many groups of runs (one progress step each) unless
#: ``mediators.options.runs_per_call`` says otherwise; with or without progress bars.
MEASURE_GROUPS = 4


def runs_per_call(config: StudyConfig, num_runs: int) -> int:
    """Runs per compiled call of the mediator measurement: ``mediators.options.runs_per_call``, else
    ``ceil(runs / MEASURE_GROUPS)``.

    It never depends on the progress bar or the log: the grouping sets the peak memory
    (one group's parameters, Hessian-vector products and Lanczos bases are live at once)
    and, through XLA's batched float arithmetic, the last digits of the values.
    """
    rpc = dict(config.mediators.options).get("runs_per_call")
    return int(rpc) if rpc is not None else max(1, -(-num_runs // MEASURE_GROUPS))


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
            frac = subset_fraction()
            n = fit_min
            while max(int(round(frac * n)), 2) < fit_min:
                n += 1
            need[name] = n
        elif name == "holdout_seeds":  # fits on the seeds not held out (causal.holdout_check's fraction)
            seeds = config.train.seeds
            held = min(max(1, int(round(holdout_fraction() * seeds))), seeds - 1)
            need[name] = -(-fit_min * seeds // (seeds - held))  # runs whose kept seeds reach fit_min
        else:
            need[name] = fit_min
    return need


def subset_fraction() -> float:
    """The fraction of the runs the ``data_subset`` refuter refits on (``causal.refute``'s default)."""
    import inspect

    from hgcnet_jax import causal

    return float(inspect.signature(causal.refute).parameters["subset_fraction"].default)


def holdout_fraction() -> float:
    """The share of the seeds the ``holdout_seeds`` refuter holds out (``causal.holdout_check``'s default)."""
    import inspect

    from hgcnet_jax import causal

    return float(inspect.signature(causal.holdout_check).parameters["fraction"].default)


def count_problem(config: StudyConfig, usable: Mapping[int, int], noun: str = "usable runs") -> tuple[str, str] | None:
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
            what = (f"{subset_fraction():.0%} of them" if name == "data_subset" else
                    "the runs of the seeds it does not hold out" if name == "holdout_seeds" else "all of them")
            return "causal.refuters", (f"the {name} refuter refits on {what} and needs at least {k} "
                                       f"{noun}, there are {n}")
    return None


def check_columns(config: StudyConfig, kw: Mapping[str, Any]) -> None:
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


def sweep_mesh(config: StudyConfig):
    """The device mesh the sweep's runs are sharded over (``None``: one device, no mesh).

    ``train.devices = None`` takes every visible accelerator (GPU/TPU) and one CPU device:
    a CPU's host devices share its cores, and are asked for explicitly (``--devices N``).

    Raises:
        ConfigError: ``train.devices`` asks for more devices than JAX sees.
    """
    import jax

    from hgcnet_jax.train import make_mesh

    devs = jax.devices()
    n = config.train.devices
    if n is None:
        n = 1 if devs[0].platform == "cpu" else len(devs)
    if n > len(devs):
        raise ConfigError("train.devices", (
            f"asks for {n} devices but JAX sees {len(devs)} ({devs[0].platform}); on a CPU, run "
            f"'hgcnet study --devices {n}' (it restarts itself with {n} host devices) or set "
            f"XLA_FLAGS=--xla_force_host_platform_device_count={n} before JAX starts; on GPU/TPU use at most "
            f"{len(devs)}"))
    k = config.train.data_devices
    if n % k:
        raise ConfigError("train.data_devices", f"= {k} does not divide the {n} devices the sweep uses; "
                          f"set train.devices to a multiple of {k}")
    return None if n == 1 else make_mesh(devs[:n], data=k)


def sharding_record(config: StudyConfig, mesh) -> dict[str, Any]:
    """Where the sweep's runs train, for ``phases.json``: the device count and each bucket's padding.

    A bucket (one batch size, ``train.seeds`` runs) is padded to a multiple of the mesh's runs
    axis (devices / data devices), no further.
    """
    from hgcnet_jax.train.sharding import padded_size

    replicas = padded_size(config.train.seeds, mesh)
    return {"devices": 1 if mesh is None else int(mesh.devices.size),
            "data_devices": config.train.data_devices,
            "replicas_per_bucket": {str(b): replicas for b in config.train.batch_sizes},
            "idle_replicas": (replicas - config.train.seeds) * len(config.train.batch_sizes)}


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
    validate_without_data(config)
    sweep_mesh(config)
    task = build_task(config) if task is None else task
    interventions, budget = make_interventions(config)
    n_train = int(np.asarray(task.splits["train"]).shape[0])
    if t.trajectory:
        fewest = min(budget.total_steps(b, n_train) for b in t.batch_sizes)
        if t.trajectory > fewest:
            raise ConfigError("train.trajectory", (
                f"{t.trajectory} checkpoints along training do not fit in the shortest run ({fewest} steps at "
                f"B = {max(t.batch_sizes)}); use at most {fewest} (--set train.trajectory={fewest}) or none "
                "(--set train.trajectory=0)"))
    return {"runs": len(interventions), "batch_sizes": list(t.batch_sizes), "seeds": t.seeds, "epochs": t.epochs,
            "train_examples": n_train, "minimum_runs": minimum_runs(config)}


def validate_without_data(config: StudyConfig) -> None:
    """The checks of :func:`validate` that need neither the dataset nor the folder."""
    t = config.train
    problem = count_problem(config, {b: t.seeds for b in t.batch_sizes}, noun="runs")
    if problem is not None:
        field, what = problem
        need = max(minimum_runs(config).values())
        seeds = -(-need // len(t.batch_sizes))
        raise ConfigError(field, (
            f"{len(t.batch_sizes)} batch sizes × {t.seeds} seeds = {len(t.batch_sizes) * t.seeds} runs are too few "
            f"({what}); use at least {need} runs (e.g. --seeds {seeds} with these batch sizes)"
            + (" or leave the refuter out (--set 'causal.refuters=[...]')" if field == "causal.refuters" else "")))
    make_interventions(config)
    check_columns(config, measure_kwargs(config))


def measure_kwargs(config: StudyConfig) -> dict[str, Any]:
    """Keyword arguments of ``mediators.measure``: ``mediators.options`` checked against ``MeasureConfig``.

    ``trajectory`` follows ``train.trajectory`` unless the options set it: the noise along the
    saved checkpoints (``noise_traj_*``) is measured whenever the sweep saved them.
    """
    from hgcnet_jax import mediators as _mediators

    known = [f.name for f in dataclasses.fields(_mediators.MeasureConfig)]
    kw = dict(config.mediators.options)
    if "trajectory" not in kw:  # the sweep saves train.trajectory checkpoints: measure the noise along them
        kw["trajectory"] = bool(config.train.trajectory)
    for k, v in kw.items():
        if k not in known:
            raise ConfigError(f"mediators.options.{k}", f"not a setting of mediators.measure; settings: {known}")
        if isinstance(v, list):
            kw[k] = tuple(v)
    try:
        _mediators.MeasureConfig(**kw)
    except (TypeError, ValueError) as e:
        raise ConfigError("mediators.options", str(e)) from None
    kw["key"] = StudyKeys.of(config.seed).mediators
    return kw


GRAPHS = ("hypergraph", "pairwise")


def base_graph(config: StudyConfig, table: pd.DataFrame | None = None):
    """The paper's hypergraph over the configured columns, with the configured forms and transforms.

    ``Hypergraph.paper`` (B → N → S → C → G, {N, S} → C) with B on a log2 scale, N, S, C
    transformed by ``mediators.transform``, G by ``causal.outcome_transform`` (read from
    ``<outcome>_adjusted`` when :func:`fit_table` had to move accuracies off 0 and 1),
    with ``causal.direct_edge`` the direct edge B → G, the mediators' edges of form
    ``causal.edge_form``, the edges out of B of form ``causal.treatment_form`` and the
    hyperedge of form ``causal.hyperedge_form``, and every equation's noise of family
    ``causal.noise`` with scale ``causal.noise_scale``; with ``causal.measurement_error`` and a
    ``table``, N, S and C read their standard errors from ``<column>_se`` where it exists.
    """
    from hgcnet_jax import causal

    m, c = config.mediators, config.causal
    g_col = m.outcome
    if table is not None and adjusted_column(config) in table.columns:
        g_col = adjusted_column(config)
    columns = {"B": "batch_size", "N": m.noise, "S": m.sharpness, "C": m.complexity, "G": g_col}
    mt = "identity" if m.transform == "identity" else m.transform
    transforms = {"N": mt, "S": mt, "C": mt, "G": c.outcome_transform}
    g = causal.Hypergraph.paper(columns, direct=c.direct_edge, edge_form=c.edge_form, hyperedge_form=c.hyperedge_form,
                                transforms=transforms, noise=c.noise, noise_scale=c.noise_scale)
    if c.measurement_error and table is not None:
        errs = {v.name: f"{v.column}_se" for v in g.variables if v.name in "NSC" and f"{v.column}_se" in table.columns}
        if errs:
            g = g.replace(variables=tuple(dataclasses.replace(v, error_column=errs[v.name]) if v.name in errs else v
                                          for v in g.variables))
    out_of_b = {e.label: c.treatment_form for e in g.edges if e.parent == "B"}
    return g.with_forms(out_of_b) if out_of_b else g


def graphs(config: StudyConfig, table: pd.DataFrame | None = None, *, notes: list[str] | None = None) -> dict:
    """The study's candidate graphs, by name (``causal.candidates``, in that order).

    ``"hypergraph"`` is :func:`base_graph`, ``"pairwise"`` its pairwise twin, the others
    :func:`hgcnet_jax.causal.candidate_graphs` around it (added edges out of B of form
    ``causal.treatment_form``). The step-count variants need ``table`` with a ``steps``
    column that varies within a batch size (early stopping); otherwise they are left out,
    with a sentence appended to ``notes``.
    """
    import warnings

    from hgcnet_jax import causal

    base = base_graph(config, table)
    wanted = config.causal.candidates
    steps = "steps" if table is not None and "steps" in table.columns else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cands = causal.candidate_graphs(base, steps=steps, table=table, edge_form=config.causal.treatment_form)
    cands = {("hypergraph" if k == "paper" else k): v for k, v in cands.items()}
    skipped = [w for w in wanted if w not in cands]
    if skipped and notes is not None:
        why = ("the step count is a function of the batch size in this sweep (train.budget = "
               f"{config.train.budget!r}): B->C carries the budget path" if steps else "the runs table has no steps column")
        notes.append(f"candidate graph(s) {', '.join(skipped)} not fitted: {why}")
    del caught
    return {w: cands[w].replace(name=w) for w in wanted if w in cands}


def adjusted_column(config: StudyConfig) -> str:
    """The column holding the outcome moved off 0 and 1 for a logit equation (see :func:`fit_table`)."""
    return f"{config.mediators.outcome}_adjusted"


def fit_table(runs: pd.DataFrame, config: StudyConfig) -> tuple[pd.DataFrame, list[str]]:
    """The rows the causal model is fitted on, and a note for every row left out or changed.

    Diverged runs are left out (their values say nothing about the mechanism; the note
    counts them by batch size). A non-finite value of a modelled column, or one outside
    its transform's domain (a non-positive mediator under ``mediators.transform = 'log'``),
    is an error that names the runs: no run is dropped without the user saying so
    (choose another column or transform). With ``causal.outcome_transform = 'logit'``,
    outcomes of exactly 0 or 1 (a test split classified perfectly) are moved by half a
    count: the column ``<outcome>_adjusted`` holds ``(k + ½) / (n + 1)`` for every run,
    ``k = outcome · n`` correct of the split's ``n`` examples (column ``n_<split>``), so
    the logit is finite; it differs from the accuracy by less than ``1 / (n + 1)``.

    Raises:
        ConfigError: naming the field, the column and the runs.
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

    def named(bad: np.ndarray) -> str:
        ids = runs["run_id"].to_numpy()[bad] if "run_id" in runs else np.flatnonzero(bad)
        bs = runs["batch_size"].to_numpy()[bad]
        shown = ", ".join(f"{int(i)} (B={int(b)})" for i, b in zip(ids[:8], bs[:8], strict=True))
        return shown + (f" and {bad.sum() - 8} more" if bad.sum() > 8 else "")

    for i, c in enumerate(cols):
        field = ("mediators.noise", "mediators.sharpness", "mediators.complexity", "mediators.outcome")[i]
        v = runs[c].to_numpy(dtype=float)
        bad = ~np.isfinite(v) & keep
        if bad.any():
            raise ConfigError(field, f"{c} is not finite in run(s) {named(bad)}: the causal fit refuses them rather "
                                     "than leave them out; choose another column or check those runs")
        if i < 3 and m.transform == "log":
            bad = (v <= 0) & keep
            if bad.any():
                raise ConfigError("mediators.transform", (
                    f"{c} <= 0 in run(s) {named(bad)}, outside the domain of mediators.transform = 'log'; "
                    "the causal fit refuses them rather than leave them out: use --set mediators.transform=identity "
                    f"or another {field} column"))
    table = runs.loc[keep].reset_index(drop=True)
    if config.causal.outcome_transform == "logit":
        y = table[m.outcome].to_numpy(dtype=float)
        if ((y <= 0) | (y >= 1)).any():
            split = m.outcome.split("_")[0]
            n_col = f"n_{split}"
            if n_col not in table:
                raise ConfigError("causal.outcome_transform", (
                    f"{m.outcome} is 0 or 1 in some runs and the runs table has no {n_col!r} column to move them "
                    "by half a count; use --set causal.outcome_transform=identity"))
            n = table[n_col].to_numpy(dtype=float)
            table[adjusted_column(config)] = (np.round(y * n) + 0.5) / (n + 1.0)
            edge = int(((y <= 0) | (y >= 1)).sum())
            notes.append(f"{edge} run(s) have {m.outcome} of exactly 0 or 1: the logit equation reads "
                         f"{adjusted_column(config)} = (correct + 1/2) / ({n_col} + 1) for every run")
    return table, notes


def fit_kwargs(config: StudyConfig) -> dict[str, Any]:
    c = config.causal
    return dict(method=c.method, num_warmup=c.num_warmup, num_samples=c.num_samples, num_chains=c.num_chains)


def lr_text(config: StudyConfig, runs: pd.DataFrame) -> str:
    t = config.train
    if t.lr_scaling == "fixed" or "lr_effective" not in runs:
        return f"learning rate train.lr = {t.lr:g}"
    eff = runs["lr_effective"].to_numpy(dtype=float)
    return (f"learning rate train.lr = {t.lr:g} ({t.lr_scaling} scaling: {eff.min():g} to {eff.max():g} "
            "across batch sizes)")


def check_trained(config: StudyConfig, runs: pd.DataFrame) -> None:
    """Stop after the sweep when the runs that trained cannot finish the study (naming the learning rate)."""
    div = runs["diverged"].to_numpy(dtype=bool)
    n = len(runs)
    if div.all():
        suggest = min(config.train.lr / 10, type(config.train)().lr)
        raise ConfigError("train.lr", (
            f"all {n} runs diverged (their loss became NaN or inf) at {lr_text(config, runs)}: there is nothing "
            f"to measure or fit. Lower the learning rate (--lr, e.g. {suggest:g})"))
    usable = runs.loc[~div].groupby("batch_size").size().to_dict()
    problem = count_problem(config, usable)
    if problem is not None:
        by_b = sorted(set(runs.loc[div, "batch_size"].tolist()))
        raise ConfigError("train.lr", (
            f"{int(div.sum())} of {n} runs diverged (NaN or inf loss; batch sizes {by_b}) at "
            f"{lr_text(config, runs)}, so {problem[1]}. Lower the learning rate (--lr) or add seeds"))
