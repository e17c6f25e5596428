"""Measure the mediators (gradient noise N, sharpness S, complexity C) of every run of a sweep.

One compiled program measures a whole group of runs: the per-run measurement is
``vmap``-ed over a leading run axis of the stacked parameters, the data set enters
once (an unbatched argument of the program: never baked into it as a constant, never
copied per run), and the run axis is cut into groups of ``runs_per_call`` runs when
memory requires.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from hgcnet_jax.curvature.density import spectral_density
from hgcnet_jax.curvature.hvp import DataLoss
from hgcnet_jax.curvature.trace import hessian_trace
from hgcnet_jax.mediators.complexity import (
    distance_from_init,
    effective_parameters,
    l2_norm,
    log_spectral_norm_product_bound,
    pac_bayes_bound,
)
from hgcnet_jax.mediators.noise import gradient_noise, sgd_temperature, trajectory_noise

__all__ = [
    "MEDIATORS", "COLUMNS", "ERRORS", "MeasureConfig", "measure", "measure_params", "plan_groups", "error_column",
    "default_memory_budget",
]

MEDIATORS = ("noise", "sharpness", "complexity")

#: Every value column and the column of its error (see :func:`measure`): ``*_se`` a
#: standard error, ``*_err`` a deterministic a-posteriori bound; 0 for quantities that
#: are exact functions of the parameters or hyperparameters.
ERRORS = {
    "noise_grad_norm_sq": "noise_grad_norm_sq_se",
    "noise_trace_cov": "noise_trace_cov_se",
    "noise_b_simple": "noise_b_simple_se",
    "noise_temperature": "noise_temperature_se",
    "noise_temperature_scaled": "noise_temperature_scaled_se",
    "noise_trace_hess_cov": "noise_trace_hess_cov_se",
    "noise_grad_hess_grad": "noise_grad_hess_grad_se",
    "noise_b_noise": "noise_b_noise_se",
    "noise_traj_mean": "noise_traj_mean_se",
    "noise_traj_final": "noise_traj_final_se",
    "sharp_lambda_max": "sharp_lambda_max_err",
    "sharp_lambda_min": "sharp_lambda_min_err",
    "sharp_trace": "sharp_trace_se",
    "complexity_l2": "complexity_l2_se",
    "complexity_dist_init": "complexity_dist_init_se",
    "complexity_spectral_product": "complexity_spectral_product_err",
    "complexity_log_spectral_product": "complexity_log_spectral_product_err",
    "complexity_pac_bayes": "complexity_pac_bayes_se",
    "complexity_eff_params": "complexity_eff_params_se",
}


def _with_errors(*values: str) -> tuple[str, ...]:
    return tuple(c for v in values for c in (v, ERRORS[v]))


#: The columns each mediator group adds (see :func:`measure`), each value followed by its error.
COLUMNS = {
    "noise": _with_errors(
        "noise_grad_norm_sq", "noise_trace_cov", "noise_b_simple", "noise_temperature", "noise_temperature_scaled"
    ),
    "noise+sharpness": _with_errors("noise_trace_hess_cov", "noise_grad_hess_grad", "noise_b_noise"),
    # N = tr Σ(θ_k) / B along the trajectory the sweep saved (sweep(..., trajectory=K))
    "noise_traj": _with_errors("noise_traj_mean", "noise_traj_final"),
    "sharpness": _with_errors("sharp_lambda_max", "sharp_lambda_min", "sharp_trace"),
    "complexity": _with_errors(
        "complexity_l2",
        "complexity_dist_init",
        "complexity_spectral_product",
        "complexity_log_spectral_product",
        "complexity_pac_bayes",
        "complexity_eff_params",
    ),
}


def error_column(column: str) -> str:
    """The name of the error column of a mediator value column (``"sharp_trace"`` → ``"sharp_trace_se"``).

    Raises:
        ValueError: for a column that is not a mediator value column.
    """
    if column not in ERRORS:
        raise ValueError(f"error_column: {column!r} is not a mediator value column; known: {sorted(ERRORS)}")
    return ERRORS[column]


@dataclasses.dataclass(frozen=True)
class MeasureConfig:
    """Settings of :func:`measure`.

    Attributes:
        mediators: subset of ``("noise", "sharpness", "complexity")``.
        num_examples: training examples the loss, Hessian and gradient statistics use
            (a fixed random subset, the same for every run); ``None``: all.
        chunk_size: examples per chunk for gradients and HVPs. ``None`` (default): as many
            as keep one chunk's per-example gradients within 2**24 numbers per run
            (64 MiB in float32), at most 256 (node tasks: the whole subset when it fits,
            since every chunk re-propagates the full graph).
        lanczos_steps: Lanczos steps per SLQ probe (capped at the number of parameters).
        slq_probes: SLQ probes (the extreme Ritz values over them give λ_max / λ_min).
        trace_probes: operator products of the Hutch++ trace.
        noise_probes: Rademacher probes for tr(HΣ) in B_noise.
        noise_bootstrap: Poisson-bootstrap replicates of the standard errors of |G|², tr Σ
            and B_simple (``K × P`` more numbers per run in memory; 0: no errors, NaN).
        eff_params_alpha: α of the effective number of parameters.
        pac_epsilon: tolerated loss increase ε of the PAC-Bayes σ.
        pac_delta: confidence δ of the PAC-Bayes bound.
        runs_per_call: runs whose parameters enter one compiled call (``None``: chosen
            from ``memory_budget``, all runs when they fit).
        vmap_width: runs vmapped together inside a call; the groups of ``vmap_width`` run
            one after another in the same program (``lax.map``). ``None``: 1 on CPU (where
            the batched kernels are slower per run, as in the sweep), the whole call on
            GPU/TPU, reduced to fit ``memory_budget``.
        memory_budget: bytes one compiled call may hold (arguments + outputs + temporaries,
            from XLA's memory analysis of the compiled program). ``None``: half the host's
            physical memory on CPU, 80 % of the device's memory limit on an accelerator.
            The settings left at ``None`` (``runs_per_call``, ``vmap_width``, ``chunk_size``)
            are reduced, in that order, until a call fits; explicit ones are kept.
        trajectory: the trajectory noise columns ``noise_traj_*`` (with ``"noise"``):
            ``True`` requires a sweep that saved checkpoints (``sweep(..., trajectory=K)``)
            and lists the columns in :attr:`columns`; ``None`` (default) adds them when the
            sweep saved checkpoints (not listed in :attr:`columns`, which holds the columns
            every table of these settings has); ``False`` skips them.
    """

    mediators: tuple[str, ...] = MEDIATORS
    num_examples: int | None = None
    chunk_size: int | None = None
    lanczos_steps: int = 32
    slq_probes: int = 4
    trace_probes: int = 30
    noise_probes: int = 8
    noise_bootstrap: int = 32
    eff_params_alpha: float = 1.0
    pac_epsilon: float = 0.1
    pac_delta: float = 0.05
    runs_per_call: int | None = None
    vmap_width: int | None = None
    memory_budget: int | float | None = None
    trajectory: bool | None = None

    def __post_init__(self):
        med = tuple(self.mediators) if not isinstance(self.mediators, str) else (self.mediators,)
        object.__setattr__(self, "mediators", med)
        bad = [m for m in med if m not in MEDIATORS]
        if bad or not med:
            raise ValueError(f"MeasureConfig.mediators must be a non-empty subset of {MEDIATORS}, got {self.mediators!r}")
        for name in ("num_examples", "chunk_size", "runs_per_call", "vmap_width"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
                raise ValueError(f"MeasureConfig.{name} must be a positive int or None, got {v!r}")
        if self.num_examples is not None and self.num_examples < 2:
            raise ValueError(f"MeasureConfig.num_examples must be >= 2 (a covariance needs two), got {self.num_examples}")
        for name, least in (("lanczos_steps", 1), ("slq_probes", 1), ("trace_probes", 3), ("noise_probes", 1)):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < least:
                raise ValueError(f"MeasureConfig.{name} must be an int >= {least}, got {v!r}")
        k = self.noise_bootstrap
        if isinstance(k, bool) or not isinstance(k, int) or k < 0 or k == 1:
            raise ValueError(f"MeasureConfig.noise_bootstrap must be 0 or an int >= 2, got {k!r}")
        mb = self.memory_budget
        if mb is not None and (isinstance(mb, bool) or not isinstance(mb, (int, float)) or not mb > 0):
            raise ValueError(f"MeasureConfig.memory_budget must be a positive number of bytes or None, got {mb!r}")
        if not self.eff_params_alpha > 0:
            raise ValueError(f"MeasureConfig.eff_params_alpha must be > 0, got {self.eff_params_alpha!r}")
        if not self.pac_epsilon > 0:
            raise ValueError(f"MeasureConfig.pac_epsilon must be > 0, got {self.pac_epsilon!r}")
        if not 0 < self.pac_delta < 1:
            raise ValueError(f"MeasureConfig.pac_delta must be in (0, 1), got {self.pac_delta!r}")
        if self.trajectory is not None and not isinstance(self.trajectory, bool):
            raise ValueError(f"MeasureConfig.trajectory must be None, True or False, got {self.trajectory!r}")

    @property
    def columns(self) -> tuple[str, ...]:
        """Every column :func:`measure` may add with these settings, in table order.

        The ``noise_traj_*`` columns are listed with ``trajectory=True`` (and ``"noise"``)
        only: with ``trajectory=None`` a table has them only when the sweep saved checkpoints.
        """
        cols = []
        for m in self.mediators:
            cols += COLUMNS[m]
        if "noise" in self.mediators and "sharpness" in self.mediators:
            cols += COLUMNS["noise+sharpness"]
        if "noise" in self.mediators and self.trajectory:
            cols += COLUMNS["noise_traj"]
        return tuple(cols)


_CHUNK_NUMBERS = 2**24


def make_config(where: str, mediators: str | Sequence[str], config: Mapping[str, Any]) -> MeasureConfig:
    """The :class:`MeasureConfig` of a call's ``mediators`` and ``**config`` (``where`` names the caller).

    Raises:
        ValueError: for a bad setting, naming it.
        TypeError: for an unknown setting, listing the known ones.
    """
    try:
        return MeasureConfig(mediators=tuple(mediators) if not isinstance(mediators, str) else (mediators,), **config)
    except TypeError as e:
        fields = [f.name for f in dataclasses.fields(MeasureConfig)]
        raise TypeError(f"{where}: unknown setting in {sorted(config)}; known: {fields}") from e


def default_chunk_size(node: bool, num_examples: int, dim: int) -> int | None:
    """Examples per chunk so that one chunk's per-example gradients hold ≤ 2**24 numbers."""
    fit = max(1, _CHUNK_NUMBERS // max(dim, 1))
    if node:
        return None if num_examples <= fit else fit
    return min(256, fit)


def measure_params(
    task: Any,
    params: Any,
    init_params: Any,
    idx: jax.Array,
    *,
    key: jax.Array,
    config: MeasureConfig,
    state: Any = None,
    num_train: int,
    checkpoints: Any = None,
    checkpoint_states: Any = None,
    batch_size: Any = None,
) -> dict[str, jax.Array]:
    """The array-valued mediators of one run (pure; ``vmap`` it over runs).

    Args:
        task: a :class:`hgcnet_jax.train.Task` (uses ``per_example_loss`` and ``kind``).
        params: the run's final parameters.
        init_params: its initial parameters (used by the complexity measures).
        idx: training indices the measurements use.
        key: the run's PRNG key.
        config: :class:`MeasureConfig`.
        state: the model's non-differentiable state (batch norm), or ``None``.
        num_train: training-set size ``m`` of the PAC-Bayes bound.
        checkpoints: the run's parameters along training with a leading axis ``K``
            (:meth:`hgcnet_jax.train.SweepResult.trajectory`), or ``None``; with ``"noise"``
            they give the ``noise_traj_*`` columns (:func:`~hgcnet_jax.mediators.trajectory_noise`:
            minibatch noise ``tr Σ(θ_k) / B`` in training mode, dropout on with one key per
            checkpoint; a model with batch norm is evaluated with each checkpoint's running
            statistics, dropout off, since batch statistics of one example are degenerate).
        checkpoint_states: the model state at the checkpoints (leading axis ``K``), for a
            stateful model; ``None`` otherwise.
        batch_size: the run's batch size ``B`` (required with ``checkpoints``).

    Returns:
        ``{column: scalar}`` for the array-valued columns (the temperatures come from
        the runs table in :func:`measure`).

    Raises:
        ValueError: for ``checkpoints`` without ``batch_size``.
    """
    med = config.mediators
    node = task.kind == "node"
    dim = int(sum(np.prod(np.shape(x)) for x in jax.tree_util.tree_leaves(params)))
    chunk = config.chunk_size if config.chunk_size is not None else default_chunk_size(node, int(idx.shape[0]), dim)

    def per_example(p, i):
        return task.per_example_loss(p, i, state=state) if state is not None else task.per_example_loss(p, i)

    loss = DataLoss(per_example, idx, chunk_size=chunk)
    k_noise, k_slq, k_tr, k_sn = jax.random.split(key, 4)
    out: dict[str, jax.Array] = {}
    zero = jnp.zeros((), jnp.result_type(*jax.tree_util.tree_leaves(params)))
    if "noise" in med:
        gn = gradient_noise(
            per_example, params, idx, chunk_size=chunk, separable=not node,
            hessian="sharpness" in med, num_probes=config.noise_probes, num_bootstrap=config.noise_bootstrap,
            key=k_noise,
        )
        out.update(
            noise_grad_norm_sq=gn.grad_norm_sq, noise_grad_norm_sq_se=gn.grad_norm_sq_se,
            noise_trace_cov=gn.trace_cov, noise_trace_cov_se=gn.trace_cov_se,
            noise_b_simple=gn.b_simple, noise_b_simple_se=gn.b_simple_se,
        )
        if "sharpness" in med:
            out.update(
                noise_trace_hess_cov=gn.trace_hess_cov, noise_trace_hess_cov_se=gn.trace_hess_cov_se,
                noise_grad_hess_grad=gn.grad_hess_grad, noise_grad_hess_grad_se=gn.grad_hess_grad_se,
                noise_b_noise=gn.b_noise, noise_b_noise_se=gn.b_noise_se,
            )
        if checkpoints is not None:
            if batch_size is None:
                raise ValueError("measure_params: checkpoints need the run's batch_size")
            stateful = checkpoint_states is not None
            tn = trajectory_noise(
                functools.partial(task.per_example_loss, train=not stateful), checkpoints, idx, batch_size,
                key=jax.random.fold_in(k_noise, 1), chunk_size=chunk, separable=not node,
                num_bootstrap=max(config.noise_bootstrap, 2), dropout=not stateful, states=checkpoint_states,
            )
            nan = jnp.full((), jnp.nan, tn.mean.dtype)
            no_se = config.noise_bootstrap == 0  # as the other noise columns: no bootstrap, NaN errors
            out.update(
                noise_traj_mean=tn.mean, noise_traj_mean_se=nan if no_se else tn.mean_se,
                noise_traj_final=tn.final, noise_traj_final_se=nan if no_se else tn.final_se,
            )
    if "sharpness" in med or "complexity" in med:
        sd = spectral_density(
            loss, params, key=k_slq, num_probes=config.slq_probes, num_steps=min(config.lanczos_steps, dim), grid_size=2
        )
        tr = hessian_trace(loss, params, key=k_tr, num_probes=config.trace_probes, method="hutch++")
        if "sharpness" in med:
            nodes, res = sd.nodes.ravel(), sd.residuals.ravel()
            i_max, i_min = jnp.argmax(nodes), jnp.argmin(nodes)
            out.update(
                sharp_lambda_max=nodes[i_max], sharp_lambda_max_err=res[i_max],
                sharp_lambda_min=nodes[i_min], sharp_lambda_min_err=res[i_min],
                sharp_trace=tr.trace, sharp_trace_se=tr.stderr,
            )
        if "complexity" in med:
            dist = distance_from_init(params, init_params)
            log_sn, log_sn_err = log_spectral_norm_product_bound(params, key=k_sn)
            pac = pac_bayes_bound(dist**2, tr.trace, num_train, epsilon=config.pac_epsilon, delta=config.pac_delta)
            # delta method: d(bound)/d(tr H) = dist² / (4ε) / (2m) / (2 bound), 0 where tr H is clipped
            dpac = jnp.where(tr.trace > 0, dist**2 / (4.0 * config.pac_epsilon) / (2.0 * num_train) / (2.0 * pac), 0.0)
            f = lambda lam: jnp.maximum(lam, 0.0) / (jnp.maximum(lam, 0.0) + config.eff_params_alpha)  # noqa: E731
            per_probe = dim * jnp.sum(sd.weights * f(sd.nodes), axis=-1)
            p = per_probe.shape[0]
            eff_se = jnp.std(per_probe, ddof=1) / jnp.sqrt(p) if p > 1 else jnp.full((), jnp.nan, zero.dtype)
            out.update(
                complexity_l2=l2_norm(params), complexity_l2_se=zero,
                complexity_dist_init=dist, complexity_dist_init_se=zero,
                complexity_spectral_product=jnp.exp(log_sn),
                complexity_spectral_product_err=jnp.exp(log_sn) * jnp.expm1(log_sn_err),
                complexity_log_spectral_product=log_sn, complexity_log_spectral_product_err=log_sn_err,
                complexity_pac_bayes=pac, complexity_pac_bayes_se=jnp.abs(dpac) * tr.stderr,
                complexity_eff_params=effective_parameters(sd, config.eff_params_alpha, dim=dim),
                complexity_eff_params_se=eff_se,
            )
    return out


def _progress(progress: bool | Callable[[int], None], total: int, mediators: Sequence[str]):
    """``(bar, tick)``: a ``tqdm.auto`` bar for ``progress=True``, the callable itself, or nothing."""
    if callable(progress):
        return None, progress
    if not progress:
        return None, lambda n: None
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=f"mediators ({', '.join(mediators)})", unit="run", leave=False)
    return bar, bar.update


def _stack(trees):
    return jax.tree_util.tree_map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *trees)


def measure(
    task: Any,
    result: Any,
    *,
    key: jax.Array,
    mediators: Sequence[str] = MEDIATORS,
    run_ids: Sequence[int] | None = None,
    progress: bool | Callable[[int], None] = False,
    mesh: Any = None,
    **config: Any,
) -> pd.DataFrame:
    r"""Add the mediator columns to a sweep's runs table, every run measured in one vmapped program.

    Columns (all on the loss over a fixed subset of ``config.num_examples`` training
    examples, the same for every run, in eval mode):

    * noise (:mod:`hgcnet_jax.mediators.noise`): ``noise_grad_norm_sq`` (unbiased |G|², may
      be ≤ 0), ``noise_trace_cov`` (unbiased tr Σ ≥ 0), ``noise_b_simple`` (tr Σ̂ / |ḡ|², from
      two estimates whose sign is guaranteed: never negative, see
      :func:`~hgcnet_jax.mediators.gradient_noise`), ``noise_temperature`` (lr / B, with
      ``lr_effective`` when the table has it) and ``noise_temperature_scaled`` (lr · N / B);
      with sharpness also ``noise_trace_hess_cov`` (tr HΣ), ``noise_grad_hess_grad`` (GᵀHG)
      and ``noise_b_noise`` (their ratio where both are positive, else NaN);
    * trajectory noise, when the sweep saved ``K`` checkpoints along training
      (``train.sweep(..., trajectory=K)``; setting ``trajectory``): the minibatch noise
      :math:`N_k = \operatorname{tr}\Sigma(\theta_k)/B` the run experienced, in training mode
      (dropout on, one key per checkpoint; see :func:`measure_params`), as
      ``noise_traj_mean`` (:math:`\frac1K\sum_k N_k`) and ``noise_traj_final`` (:math:`N_{K}`,
      at the final parameters), each with its bootstrap ``*_se``
      (:func:`~hgcnet_jax.mediators.trajectory_noise`);
    * sharpness (:mod:`hgcnet_jax.curvature`): ``sharp_lambda_max`` / ``sharp_lambda_min``
      (the extreme Ritz values of the SLQ Lanczos runs) and ``sharp_trace`` (Hutch++);
    * complexity (:mod:`hgcnet_jax.mediators.complexity`): ``complexity_l2``,
      ``complexity_dist_init``, ``complexity_spectral_product`` (and its log),
      ``complexity_pac_bayes``, ``complexity_eff_params``.

    Every value column is followed by its error column (:data:`ERRORS`): ``*_se`` a
    standard error (bootstrap over the examples for |G|², tr Σ and B_simple; probe spread
    or the delta method for the others), ``*_err`` a deterministic bound (the Lanczos
    residual of λ_max / λ_min: an eigenvalue lies within it; the power-iteration residual
    of the spectral product), 0 for exact functions of the parameters or hyperparameters.
    A value that is undefined for a run is NaN, never dropped or sign-flipped.

    Memory and layout: one compiled call holds at most ``memory_budget`` bytes by XLA's
    memory analysis; unset ``vmap_width`` / ``runs_per_call`` / ``chunk_size`` are reduced
    until it does (``table.attrs["measure_plan"]`` records the plan, :func:`plan_groups`
    computes it without measuring). On CPU the runs are mapped, one per call by default;
    on GPU/TPU they are vmapped.

    Each run gets the key ``fold_in(key, run_id)``, so a run's values do not depend on
    which other runs are measured with it: the vmapped measurement of R runs equals R
    separate calls.

    Sharded (``mesh``, e.g. the sweep's, :func:`hgcnet_jax.train.make_mesh`): the runs of a
    call are split over every device of the mesh (its ``runs`` and ``data`` axes alike:
    a measurement has no minibatch to split), each device measuring its share with the
    layout above; ``runs_per_call`` is then rounded up to a multiple of the device count,
    the last call padded with copies of its last run, and ``memory_budget`` applies per
    device (on a CPU the default is divided among the host devices, which share its
    memory). The values are those of an unsharded measurement to float rounding.

    Args:
        task: the :class:`hgcnet_jax.train.Task` the sweep trained.
        result: the :class:`hgcnet_jax.train.SweepResult`.
        key: PRNG key (keyword-only).
        mediators: subset of ``("noise", "sharpness", "complexity")``.
        run_ids: runs to measure (default all, in ``run_id`` order).
        progress: ``True``: a ``tqdm.auto`` bar (terminal or notebook) over the runs, advanced
            once per group of ``runs_per_call`` runs, when that group's results reach the
            host (no extra synchronisation: the results are copied there anyway); a callable
            is called with the number of runs of each finished group; ``False``: silent.
            Display only: the groups are ``runs_per_call`` whatever ``progress`` is, so it
            changes neither a value nor the peak memory (a caller that wants a bar with
            several steps must choose ``runs_per_call`` itself, the same with and without
            the bar, as ``hgcnet_jax.study`` does).
        mesh: a ``jax.sharding.Mesh`` to split the runs over (``None``: one device).
        **config: fields of :class:`MeasureConfig` (``num_examples``, ``lanczos_steps``, …).

    Returns:
        A copy of ``result.runs`` restricted to ``run_ids``, with the new columns.

    Raises:
        ValueError: for bad settings (naming the field) or unknown run ids.
        TypeError: for an unknown setting.
    """
    cfg = make_config("measure", mediators, config)
    runs = result.runs
    ids = [int(r) for r in (runs["run_id"].tolist() if run_ids is None else run_ids)]
    if not ids:
        raise ValueError("measure: run_ids is empty")
    known = set(int(r) for r in runs["run_id"])
    unknown = [r for r in ids if r not in known]
    if unknown:
        raise ValueError(f"measure: run_ids {unknown} are not in the sweep (known: {sorted(known)})")

    idx, n_train, k_runs = _examples(task, cfg, key)
    stateful = bool(getattr(task, "has_state", False))
    pieces: list[dict[str, np.ndarray]] = []
    bar, tick = _progress(progress, len(ids), cfg.mediators)
    try:
        # the plan compiles the program (the first group's step on the bar includes it)
        plan = _plan(task, result, cfg, ids, idx, n_train, k_runs, mesh)
        compiled, group = plan.pop("_compiled"), plan["runs_per_call"]
        for start in range(0, len(ids), group):
            chunk = ids[start : start + group]
            padded = chunk + [chunk[-1]] * (group - len(chunk))  # same shapes: one compilation
            out = compiled(*_group_args(task, result, cfg, padded, stateful), task.data, idx)
            pieces.append({c: np.asarray(v)[: len(chunk)] for c, v in out.items()})
            tick(len(chunk))
    finally:
        if bar is not None:
            bar.close()

    table = runs.set_index("run_id", drop=False).loc[ids].reset_index(drop=True).copy()
    for c in pieces[0]:
        table[c] = np.concatenate([p[c] for p in pieces]).astype(np.float64)
    if "noise" in cfg.mediators:
        lr = table["lr_effective"] if "lr_effective" in table else table["lr"]
        table["noise_temperature"] = sgd_temperature(lr, table["batch_size"])
        table["noise_temperature_scaled"] = sgd_temperature(lr, table["batch_size"], n_train)
        # hyperparameters, not measurements: exact
        table["noise_temperature_se"] = 0.0
        table["noise_temperature_scaled_se"] = 0.0
    listed = list(cfg.columns) + [c for c in COLUMNS["noise_traj"] if c not in cfg.columns]  # None: when measured
    table = table[list(runs.columns) + [c for c in listed if c in table]]
    table.attrs["measure_plan"] = plan
    return table


def _host_memory_bytes() -> int:
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def default_memory_budget(device: Any = None) -> int:
    """The default ``memory_budget``: half the host's physical memory on CPU, 80 % of an accelerator's limit."""
    device = device if device is not None else jax.devices()[0]
    if device.platform != "cpu":
        stats = device.memory_stats() or {}
        if "bytes_limit" in stats:
            return int(0.8 * stats["bytes_limit"])
    return _host_memory_bytes() // 2


def _peak_bytes(compiled) -> int:
    m = compiled.memory_analysis()
    return int(m.argument_size_in_bytes + m.output_size_in_bytes - m.alias_size_in_bytes + m.temp_size_in_bytes)


def _use_trajectory(result, cfg: MeasureConfig) -> bool:
    """Whether :func:`measure` computes the ``noise_traj_*`` columns for ``result``.

    Raises:
        ValueError: for ``trajectory=True`` and a sweep that saved no checkpoints.
    """
    if "noise" not in cfg.mediators or cfg.trajectory is False:
        return False
    has = bool(getattr(result, "has_trajectory", False))
    if cfg.trajectory and not has:
        raise ValueError("measure: trajectory=True needs a sweep that saved checkpoints along training; "
                         "run train.sweep(..., trajectory=K) or set trajectory=None / False")
    return has


def _group_args(task, result, cfg, run_ids, stateful):
    params = result.stacked_params(run_ids)
    inits = _stack([result.init_params(r) for r in run_ids]) if "complexity" in cfg.mediators else params
    states = _stack([result.model_state(r) for r in run_ids]) if stateful else None
    traj = None
    if _use_trajectory(result, cfg):
        trs = [result.trajectory(r) for r in run_ids]
        bsz = result.runs.set_index("run_id").loc[list(run_ids), "batch_size"].to_numpy(np.float32)
        traj = (_stack([t.params for t in trs]), _stack([t.model_state for t in trs]) if stateful else None,
                jnp.asarray(bsz))
    return params, inits, states, jnp.asarray(run_ids, jnp.int32), traj


def _plan(task, result, cfg: MeasureConfig, ids, idx, n_train, k_runs, mesh=None) -> dict[str, Any]:
    """Choose runs per call, vmap width and chunk size so that one compiled call fits ``memory_budget``.

    Each candidate is compiled and its peak read from XLA's memory analysis (arguments +
    outputs + temporaries; per device for a sharded call); the first that fits is kept,
    compiled, for the measurement. With a mesh of ``k`` devices, runs per call is a
    multiple of ``k`` and the vmap width applies to each device's share.
    """
    from hgcnet_jax.train import sharding as _sharding

    if mesh is not None:
        mesh = _sharding.runs_mesh(mesh)  # 1-D over every device: padded_size rounds to the device count
    k = 1 if mesh is None else _sharding.mesh_axes(mesh).runs_size
    stateful = bool(getattr(task, "has_state", False))
    on_cpu = jax.default_backend() == "cpu"
    budget = int(cfg.memory_budget) if cfg.memory_budget is not None else default_memory_budget() // (k if on_cpu else 1)
    node = task.kind == "node"
    dim = int(sum(np.prod(np.shape(x)) for x in jax.tree_util.tree_leaves(result.params(ids[0]))))
    n_ex = int(idx.shape[0])
    # Map layout (CPU): a call's time is the sum of its runs' whatever the group, so by default
    # each call measures one run (least memory, a progress step per run). Vmap layout
    # (accelerators): all runs in one call, halved below until it fits.
    width_auto = 1 if on_cpu else len(ids)
    width = cfg.vmap_width if cfg.vmap_width is not None else width_auto
    default_group = len(ids) if width > 1 else 1
    group = _sharding.padded_size(min(cfg.runs_per_call or default_group, len(ids)), mesh)
    chunk = cfg.chunk_size if cfg.chunk_size is not None else default_chunk_size(node, n_ex, dim)
    tried = []
    while True:
        w = min(width, group // k)
        c = dataclasses.replace(cfg, chunk_size=chunk)
        program = _program(task, c, w, n_train, k_runs, stateful, mesh)
        args = _group_args(task, result, cfg, ids[:1] * group, stateful)
        compiled = program.lower(*args, task.data, idx).compile()
        peak = _peak_bytes(compiled)
        tried.append((group, w, chunk, peak))
        if peak <= budget:
            return {"runs_per_call": group, "vmap_width": w, "chunk_size": chunk, "peak_bytes": peak,
                    "memory_budget": budget, "devices": k, "candidates": tried, "_compiled": compiled}
        if cfg.vmap_width is None and w > 1:
            width = max(1, w // 2)
        elif cfg.runs_per_call is None and group > k:
            group = _sharding.padded_size(max(1, group // 2), mesh)
        elif cfg.chunk_size is None and (chunk is None or chunk > 1):
            chunk = max(1, (n_ex if chunk is None else chunk) // 2)
        else:
            raise ValueError(
                f"measure: memory_budget={budget} bytes is too small: the smallest call allowed by the "
                f"settings (runs_per_call={group}, vmap_width={w}, chunk_size={chunk}) needs {peak} bytes "
                f"(XLA memory analysis); raise memory_budget or leave runs_per_call / vmap_width / chunk_size unset"
            )


def _program(task, cfg: MeasureConfig, width: int, n_train: int, k_runs, stateful: bool, mesh=None):
    """The compiled measurement of a group of runs: ``width`` runs vmapped, the groups of ``width`` mapped.

    With a 1-D ``mesh`` the group's runs are split over its devices by ``jax.shard_map``,
    each device measuring its share with that layout (the data set and the example subset
    replicated); the runs never interact, so there is no communication.
    """

    def one(params, init_params, state, rid, traj, data, idx):
        # the data set and the example subset are arguments of the program, never constants
        # baked into it: one copy on the device, shared by every run
        ckpts, ckpt_states, bsz = traj if traj is not None else (None, None, None)
        return measure_params(
            dataclasses.replace(task, data=data), params, init_params, idx, key=jax.random.fold_in(k_runs, rid),
            config=cfg, state=state if stateful else None, num_train=n_train,
            checkpoints=ckpts, checkpoint_states=ckpt_states, batch_size=bsz,
        )

    def program(params, inits, states, rids, traj, data, idx):
        f = lambda p, i, s, r, t: one(p, i, s, r, t, data, idx)  # noqa: E731
        args = (params, inits, states, rids, traj)
        n = rids.shape[0]
        if n == 1:  # one run: no batch axis at all inside
            out = f(*jax.tree_util.tree_map(lambda x: x[0], args))
            return jax.tree_util.tree_map(lambda x: x[None], out)
        if width >= n:
            return jax.vmap(f)(*args)
        # width 1: a plain map (a size-1 vmap would still batch every kernel)
        return jax.lax.map(lambda a: f(*a), args, batch_size=None if width == 1 else width)

    if mesh is None:
        return jax.jit(program)
    from jax.sharding import PartitionSpec

    runs, whole = PartitionSpec(mesh.axis_names[0]), PartitionSpec()
    sharded = jax.shard_map(program, mesh=mesh, in_specs=(runs, runs, runs, runs, runs, whole, whole),
                            out_specs=runs, check_vma=False)  # every output is per run
    return jax.jit(sharded)


def plan_groups(task: Any, result: Any, *, key: jax.Array | None = None, mediators: Sequence[str] = MEDIATORS,
                run_ids: Sequence[int] | None = None, mesh: Any = None, **config: Any) -> dict[str, Any]:
    """The grouping :func:`measure` would use with these settings, without measuring.

    Returns:
        ``{"runs_per_call", "vmap_width", "chunk_size", "peak_bytes", "memory_budget",
        "devices", "candidates"}``: the chosen settings, the compiled call's peak (XLA memory
        analysis, per device), the budget, the devices a call's runs are split over and every ``(runs_per_call, vmap_width, chunk_size, peak)`` tried.
    """
    cfg = make_config("plan_groups", mediators, config)
    key = jax.random.key(0) if key is None else key
    ids = [int(r) for r in (result.runs["run_id"].tolist() if run_ids is None else run_ids)]
    idx, n_train, k_runs = _examples(task, cfg, key)
    plan = _plan(task, result, cfg, ids, idx, n_train, k_runs, mesh)
    plan.pop("_compiled")
    return plan


def _examples(task, cfg: MeasureConfig, key):
    train_idx = np.asarray(task.splits["train"])
    n_train = int(train_idx.shape[0])
    if n_train < 2:
        raise ValueError("measure: the task needs at least 2 training examples")
    k_sub, k_runs = jax.random.split(key)
    if cfg.num_examples is not None and cfg.num_examples < n_train:
        pick = np.asarray(jax.random.choice(k_sub, n_train, (cfg.num_examples,), replace=False))
        idx = np.sort(train_idx[pick])
    else:
        idx = train_idx
    return jnp.asarray(idx, jnp.int32), n_train, k_runs
