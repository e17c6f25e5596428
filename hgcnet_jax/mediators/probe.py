"""Mediators from a user's own training loop: :func:`probe`, a hook called every ``k`` steps.

A researcher with their own model, data and optax loop does not move to
:func:`hgcnet_jax.train.sweep` to get the mediators. The probe is optax-shaped: a
:class:`Probe` holds the settings, ``init(params)`` returns a small
:class:`ProbeState`, ``update(state, params, step)`` is a pure function that a
``jax.jit``-ed training step can call on every step (it measures only when
``step % every == 0``), and ``finish(state, params, **columns)`` returns one run's row::

    probe = hg.mediators.probe(per_example_loss, (x_train, y_train), batch_size=B,
                               every=10, num_steps=T, key=jax.random.key(0), lr=lr)
    pstate = probe.init(params)

    @jax.jit
    def step(params, opt_state, pstate, t, batch):
        grads = jax.grad(lambda p: per_example_loss(p, batch).mean())(params)
        updates, opt_state = opt.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        return params, opt_state, probe.update(pstate, params, t)

    ...
    row = probe.finish(pstate, params, seed=seed, test_acc=acc)
    table = hg.mediators.probe_table(rows)      # one row per (batch size, seed)

A :class:`Probe` is itself a pytree: its data, key and example indices are leaves, its
settings (the loss, ``batch_size``, ``every``, ``num_steps``, ``lr``, the measurement
config) static. Pass it to a jitted step as an argument rather than closing over it, and
one compiled step serves every seed of a batch size (closing over it bakes the seed's key
and the data into the program as constants, so each run compiles anew)::

    @jax.jit
    def step(probe, params, opt_state, pstate, t, batch): ...

What is recorded:

* along the trajectory, at every probed step, the minibatch gradient noise
  :math:`N = \\operatorname{tr}\\Sigma(\\theta_t) / B` (unbiased tr Σ of
  :func:`~hgcnet_jax.mediators.gradient_noise`, Poisson-bootstrap standard error): the
  columns ``noise_traj_mean`` (the mean over the probed steps) and
  ``noise_traj_final`` (the last probed step), each with its ``_se``, as
  :func:`~hgcnet_jax.mediators.measure` writes them from a sweep's saved checkpoints
  (:func:`~hgcnet_jax.mediators.trajectory_noise`; here on the user's loss, as given);
* at the final parameters, every column :func:`~hgcnet_jax.mediators.measure` writes
  (``MeasureConfig(...).columns``: the noise statistics, λ_max / λ_min from Lanczos with
  their residual bounds, the Hutch++ trace, the complexity measures from the initial
  parameters that ``init`` saw), computed by the very function ``measure`` uses,
  :func:`~hgcnet_jax.mediators.measure_params`, so the same parameters and key give the
  same values, and each value has its error column next to it.

The row holds the caller's own columns too (``seed``, ``test_acc``, ``lr`` …), so that
:func:`probe_table` is a runs table :func:`hgcnet_jax.causal.fit` and
:func:`hgcnet_jax.causal.criticize` take as it is.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from jaxtyping import Array, Float, Int

from hgcnet_jax._keys import check_key
from hgcnet_jax.curvature.hvp import _leading_size
from hgcnet_jax.mediators.measure import MEDIATORS, MeasureConfig, default_chunk_size, make_config, measure_params
from hgcnet_jax.mediators.noise import gradient_noise, sgd_temperature

__all__ = ["Probe", "ProbeState", "probe", "probe_table"]

PyTree = Any


class ProbeState(NamedTuple):
    """What a probe carries through the training loop (a pytree: pass it through ``jit``, ``scan``).

    Attributes:
        init_params: the parameters ``init`` saw (the complexity measures' origin).
        values: ``(capacity,)`` :math:`\\operatorname{tr}\\Sigma(\\theta_t)/B` at the probed steps, in order.
        ses: ``(capacity,)`` their bootstrap standard errors.
        steps: ``(capacity,)`` the probed steps (``-1`` where nothing was recorded yet).
        count: probes recorded so far (may exceed ``capacity``: :meth:`Probe.finish` then refuses).
    """

    init_params: PyTree
    values: Float[Array, " k"]
    ses: Float[Array, " k"]
    steps: Int[Array, " k"]
    count: Int[Array, ""]


@functools.partial(jax.tree_util.register_dataclass, data_fields=["data", "key", "example_indices"],
                   meta_fields=["per_example_loss", "batch_size", "every", "num_steps", "lr", "config"])
@dataclasses.dataclass(frozen=True)
class Probe:
    """A mediator probe for one run of a user's own training loop (see the module docstring).

    Build it with :func:`probe`, which validates the settings. A pytree: ``data``, ``key``
    and ``example_indices`` are its leaves (traced when the probe is a ``jit`` argument,
    batched under ``vmap``), the other fields static.

    Attributes:
        per_example_loss: ``(params, batch) -> (b,)`` losses, ``batch`` a pytree of arrays
            with a leading example axis (the same function the user's step averages),
            evaluated without dropout.
        data: the training examples the measurements use (a pytree with a leading axis).
        batch_size: the run's batch size ``B``.
        every: probe every ``every`` steps (at ``step % every == 0``).
        num_steps: the steps the loop will run; the buffers hold ``ceil(num_steps / every)`` probes.
        key: the probe's PRNG key.
        lr: the run's learning rate (for ``noise_temperature``), or ``None`` (NaN there).
        config: the :class:`~hgcnet_jax.mediators.MeasureConfig` of the final measurement.
        example_indices: the examples of :attr:`data` the measurements use (all, or a fixed
            random subset of ``config.num_examples`` drawn from ``key``), chosen once by :func:`probe`.
    """

    per_example_loss: Callable[..., Any]
    data: PyTree
    batch_size: int
    every: int
    num_steps: int
    key: jax.Array
    lr: float | None
    config: MeasureConfig
    example_indices: np.ndarray = dataclasses.field(repr=False, default=None)

    @property
    def capacity(self) -> int:
        """Probes the buffers hold: ``ceil(num_steps / every)``."""
        return math.ceil(self.num_steps / self.every)

    @property
    def num_train(self) -> int:
        """Examples in :attr:`data` (the ``m`` of the PAC-Bayes bound and the scaled temperature)."""
        return _leading_size(self.data, "probe: data")

    @property
    def keys(self) -> tuple[jax.Array, jax.Array, jax.Array]:
        """``(subset, trajectory, final)``: the keys of the example subset, the trajectory probes and the final measurement.

        The final measurement is ``measure_params(..., key=keys[2])``: pass the same key to
        :func:`~hgcnet_jax.mediators.measure_params` to reproduce it.
        """
        k_sub, k_traj, k_final = jax.random.split(self.key, 3)
        return k_sub, k_traj, k_final

    @property
    def indices(self) -> jax.Array:
        """The example indices into :attr:`data` every measurement uses (``config.num_examples`` of them, sorted)."""
        return jnp.asarray(self.example_indices, jnp.int32)

    def _loss_on_indices(self, params, idx):
        batch = jax.tree_util.tree_map(lambda x: jnp.take(x, idx, axis=0), self.data)
        return self.per_example_loss(params, batch)

    def _chunk(self, params) -> int | None:
        if self.config.chunk_size is not None:
            return self.config.chunk_size
        dim = int(sum(np.prod(np.shape(x)) for x in jax.tree_util.tree_leaves(params)))
        return default_chunk_size(False, int(self.indices.shape[0]), dim)

    def init(self, params: PyTree) -> ProbeState:
        """The empty state; ``params`` are the run's initial parameters.

        Args:
            params: the parameters before the first step.

        Returns:
            A :class:`ProbeState` with room for :attr:`capacity` probes.
        """
        dtype = jnp.result_type(*jax.tree_util.tree_leaves(params))
        k = self.capacity
        return ProbeState(
            init_params=params,
            values=jnp.full((k,), jnp.nan, dtype),
            ses=jnp.full((k,), jnp.nan, dtype),
            steps=jnp.full((k,), -1, jnp.int32),
            count=jnp.zeros((), jnp.int32),
        )

    def update(self, state: ProbeState, params: PyTree, step: int | Array) -> ProbeState:
        """Record :math:`\\operatorname{tr}\\Sigma(\\theta)/B` when ``step % every == 0``; else return ``state``.

        Pure and traceable: call it inside a ``jax.jit``-ed step (``step`` a traced
        integer; the measurement runs under ``lax.cond`` only on probed steps) or outside.

        Args:
            state: the probe's state.
            params: the parameters at this step.
            step: the loop's step counter.

        Returns:
            The new state.
        """
        idx = self.indices
        chunk = self._chunk(params)
        boot = self.config.noise_bootstrap
        step = jnp.asarray(step, jnp.int32)

        def record(s: ProbeState) -> ProbeState:
            gn = gradient_noise(
                self._loss_on_indices, params, idx, chunk_size=chunk, num_bootstrap=boot,
                key=jax.random.fold_in(self.keys[1], s.count),
            )
            i = jnp.minimum(s.count, self.capacity - 1)
            keep = s.count < self.capacity  # a full buffer keeps its values; finish() refuses it
            v = jnp.where(keep, gn.trace_cov / self.batch_size, s.values[i]).astype(s.values.dtype)
            e = jnp.where(keep, gn.trace_cov_se / self.batch_size, s.ses[i]).astype(s.ses.dtype)
            t = jnp.where(keep, step, s.steps[i])
            return s._replace(values=s.values.at[i].set(v), ses=s.ses.at[i].set(e), steps=s.steps.at[i].set(t),
                              count=s.count + 1)

        return jax.lax.cond(step % self.every == 0, record, lambda s: s, state)

    def finish(self, state: ProbeState, params: PyTree, **columns: Any) -> dict[str, Any]:
        """One run's row: the caller's columns, the trajectory noise and ``measure``'s columns at ``params``.

        Call it outside ``jit``, once the loop is done.

        Args:
            state: the probe's state after the loop.
            params: the final parameters.
            **columns: the run's own columns (``seed=…``, ``test_acc=…`` …); ``batch_size``
                and ``lr`` are the probe's and must agree when given.

        Returns:
            ``{column: value}``: ``columns``, ``batch_size``, ``lr`` (when known),
            ``probe_steps`` (probes recorded) and every column of ``config.columns``
            (floats; the ``noise_traj_*`` ones from the probed steps).

        Raises:
            ValueError: when nothing was recorded (``update`` was never called on a
                probed step), more probes were recorded than the buffers hold (raise
                ``num_steps``), or ``batch_size`` / ``lr`` in ``columns`` disagree with the probe's.
        """
        count = int(state.count)
        if count == 0:
            raise ValueError(
                "Probe.finish: no probe recorded; call probe.update(state, params, step) in the loop "
                f"(it measures at step % every == 0, every={self.every})"
            )
        if count > self.capacity:
            raise ValueError(
                f"Probe.finish: {count} probes recorded but the buffers hold {self.capacity} "
                f"(num_steps={self.num_steps}, every={self.every}); pass the loop's real number of steps as num_steps"
            )
        for name, mine in (("batch_size", self.batch_size), ("lr", self.lr)):
            if name in columns and mine is not None and not np.isclose(float(columns[name]), float(mine)):
                raise ValueError(f"Probe.finish: {name}={columns[name]!r} disagrees with the probe's {name}={mine!r}")
        vals = np.asarray(state.values[:count], np.float64)
        ses = np.asarray(state.ses[:count], np.float64)
        row: dict[str, Any] = dict(columns)
        row["batch_size"] = self.batch_size
        lr = self.lr if self.lr is not None else columns.get("lr")
        if lr is not None:
            row["lr"] = float(lr)
        row["probe_steps"] = count
        out = _final_measure(params, state.init_params, self.indices, self.data, self.keys[2],
                             loss=self.per_example_loss, config=self.config, num_train=self.num_train)
        measured = {c: float(v) for c, v in out.items()}
        if "noise" in self.config.mediators:
            t = float("nan") if lr is None else float(sgd_temperature(float(lr), self.batch_size))
            measured["noise_temperature"] = t
            measured["noise_temperature_scaled"] = t * self.num_train
            measured["noise_temperature_se"] = 0.0
            measured["noise_temperature_scaled_se"] = 0.0
            measured["noise_traj_mean"] = float(vals.mean())
            measured["noise_traj_mean_se"] = float(np.sqrt(np.sum(ses**2)) / count)
            measured["noise_traj_final"] = float(vals[-1])
            measured["noise_traj_final_se"] = float(ses[-1])
        for c in self.config.columns:
            row[c] = measured[c]
        return row


@dataclasses.dataclass(frozen=True)
class _LossTask:
    """The two attributes of a Task that :func:`measure_params` reads, for a user's loss on indices."""

    per_example_loss: Callable[..., Any]
    kind: str = "tabular"


@functools.partial(jax.jit, static_argnames=("loss", "config", "num_train"))
def _final_measure(params, init_params, idx, data, key, *, loss, config, num_train):
    """``measure_params`` on the user's loss; one compilation per loss function, settings and shapes (runs share it)."""
    task = _LossTask(lambda p, i: loss(p, jax.tree_util.tree_map(lambda x: jnp.take(x, i, axis=0), data)))
    return measure_params(task, params, init_params, idx, key=key, config=config, num_train=num_train)


def probe(
    per_example_loss: Callable[..., Any],
    data: PyTree,
    *,
    batch_size: int,
    every: int,
    num_steps: int,
    key: jax.Array,
    lr: float | None = None,
    mediators: Sequence[str] = MEDIATORS,
    **config: Any,
) -> Probe:
    """A :class:`Probe` for one run of a user's own training loop (see the module docstring).

    Args:
        per_example_loss: ``(params, batch) -> (b,)`` losses; ``batch`` is a pytree of arrays
            with a leading example axis, like ``data``. Use the loss in eval mode (no dropout):
            the measurements must be deterministic functions of the parameters.
        data: the training examples (e.g. ``(x_train, y_train)``), ≥ 2 of them.
        batch_size: the run's batch size ``B`` (``N = tr Σ / B``).
        every: probe every ``every`` steps (≥ 1).
        num_steps: how many steps the loop runs (sizes the buffers).
        key: PRNG key (keyword-only): bootstrap weights, Lanczos and trace probes.
        lr: the run's learning rate, for ``noise_temperature`` (NaN without it).
        mediators: subset of ``("noise", "sharpness", "complexity")`` measured at the end.
        **config: other fields of :class:`~hgcnet_jax.mediators.MeasureConfig`
            (``num_examples``, ``lanczos_steps``, ``slq_probes``, ``noise_bootstrap`` …).

    Returns:
        The :class:`Probe`.

    Raises:
        ValueError: for a bad setting, naming it.
        TypeError: for an unknown setting.
    """
    cfg = make_config("probe", mediators, config)
    for name, val in (("batch_size", batch_size), ("every", every), ("num_steps", num_steps)):
        if isinstance(val, bool) or not isinstance(val, (int, np.integer)) or val < 1:
            raise ValueError(f"probe: {name} must be a positive int, got {val!r}")
    if "noise" in cfg.mediators:  # the probe always has a trajectory: list its columns
        cfg = dataclasses.replace(cfg, trajectory=True)
    if cfg.noise_bootstrap == 0:
        raise ValueError("probe: noise_bootstrap must be >= 2: the trajectory noise needs its standard error")
    if lr is not None and not (isinstance(lr, (int, float, np.floating)) and lr > 0):
        raise ValueError(f"probe: lr must be a positive number or None, got {lr!r}")
    if not callable(per_example_loss):
        raise TypeError(f"probe: per_example_loss must be a function (params, batch) -> (b,), got {type(per_example_loss).__name__}")
    n = _leading_size(data, "probe: data")
    if n < 2:
        raise ValueError(f"probe: data needs at least 2 examples, got {n}")
    key = check_key(key, where="probe")
    k_sub = jax.random.split(key, 3)[0]  # Probe.keys[0]
    m = cfg.num_examples
    idx = np.arange(n) if m is None or m >= n else np.sort(np.asarray(jax.random.choice(k_sub, n, (m,), replace=False)))
    return Probe(per_example_loss, data, int(batch_size), int(every), int(num_steps), key,
                 None if lr is None else float(lr), cfg, idx.astype(np.int32))


def probe_table(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The runs table of several probed runs: one row per run, as :func:`~hgcnet_jax.mediators.measure` writes it.

    Args:
        rows: the rows of :meth:`Probe.finish`, one per run (batch size × seed).

    Returns:
        A DataFrame with ``run_id`` (0, 1, … unless the rows have one) first, then the
        caller's columns, ``batch_size``, ``lr``, ``probe_steps``
        and ``measure``'s columns, each value followed by its error column.

    Raises:
        ValueError: for no rows, rows with different columns (naming them), or a
            repeated ``run_id``.
    """
    rows = [dict(r) for r in rows]
    if not rows:
        raise ValueError("probe_table: no rows; pass the rows of probe.finish(...), one per run")
    cols = list(rows[0])
    for i, r in enumerate(rows[1:], start=1):
        if set(r) != set(cols):
            diff = sorted(set(r) ^ set(cols))
            raise ValueError(f"probe_table: row {i} has other columns than row 0 ({diff}); "
                             "finish every run with the same columns")
    table = pd.DataFrame(rows, columns=cols)
    if "run_id" not in table:
        table.insert(0, "run_id", np.arange(len(table)))
    elif table["run_id"].duplicated().any():
        dup = table.loc[table["run_id"].duplicated(), "run_id"].tolist()
        raise ValueError(f"probe_table: run_id {dup} repeated; give each run its own run_id or none")
    return table
