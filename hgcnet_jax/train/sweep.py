"""Many training runs at once: one compiled ``vmap``/``map`` over replicas of a ``scan`` over steps per batch-size bucket.

Runs with the same batch size (and the same static mediator switches) form a
*bucket*. One compiled program trains a whole bucket: the replica axis is mapped
over a ``lax.scan`` of training steps — one ``jax.vmap`` over all replicas on
GPU/TPU (``vmap(scan(step))``, the same program as ``scan(vmap(step))``), and on
CPU groups of ``vmap_width`` replicas one after another, each scanning its steps
(see :func:`resolve_vmap_width`); the dataset enters once, unbatched, shared by
every replica. Every per-run
hyperparameter (learning rate, optimiser kind, momentum, regularisers, noise,
SAM radius) is a traced array of the replica axis, so one bucket compiles once
whatever its runs' values. The optimiser is a single update rule that covers
SGD, heavy-ball momentum and Adam, selected per replica:

.. math::

    g &\\leftarrow \\nabla L_B(\\theta) + \\lambda_2 m\\odot\\theta + \\lambda_1 m\\odot\\operatorname{sign}\\theta
        + \\sigma \\xi \\\\
    \\mu &\\leftarrow \\begin{cases} \\beta_1 \\mu + (1-\\beta_1) g & \\text{adam} \\\\
        \\beta \\mu + g & \\text{sgd } (\\beta = 0)\\text{, momentum} \\end{cases} \\qquad
    \\nu \\leftarrow \\beta_2 \\nu + (1-\\beta_2) g^2 \\text{ (adam)} \\\\
    \\theta &\\leftarrow \\theta - \\eta\\, u - \\eta\\,\\lambda_{wd}\\, m\\odot\\theta, \\qquad
    u = \\begin{cases} \\hat\\mu / (\\sqrt{\\hat\\nu} + \\epsilon) & \\text{adam} \\\\ \\mu & \\text{otherwise} \\end{cases}

with :math:`m` the ``reg_scope`` mask, Adam's :math:`\\beta_1 = 0.9, \\beta_2 = 0.999,
\\epsilon = 10^{-8}` and bias correction (Kingma & Ba 2015). The update is
:func:`hgcnet_jax.train.optim.replica_optimizer`, the optax transformation that pruning's
trainer runs too (one optimiser for every training loop of the package).

Metrics are computed inside the program at the end of every period of
``budget.cadence`` steps (eval mode: train loss and accuracy, validation and test
loss and accuracy, plus the mean minibatch loss of the period); no host callback
runs per step. The host loops over *chunks* of periods, which is where the
progress bar advances and checkpoints are written.

Early stopping (``Budget(patience=P)``): the carry of each replica holds an ``active``
flag, its best monitored value and the evaluations since it improved; a step runs
only while the replica is active (``lax.cond`` on the flag: a stopped replica's
parameters, optimiser state and batch-norm statistics are frozen, exactly, at the
step of its stop, while it keeps being evaluated), and the flag drops at the end of the
period whose evaluation is the ``P``-th in a row without improvement. Each replica's
stop depends only on its own trajectory, so a run stops where it would alone, and
its final parameters are those of a fixed budget of that many steps with the same key.
Without ``patience`` the program is the fixed-budget one, unchanged.

Divergence: a replica whose minibatch loss or updated parameters are not finite
is frozen at its last finite parameters, flagged ``diverged`` with the step, and
keeps being evaluated; the other replicas of its bucket are unaffected. A replica
whose steps stay finite but whose final evaluated loss (train, validation or test)
is NaN or inf (parameters so large that the full-batch loss overflows) is flagged
``diverged`` too, at the first evaluation of that final non-finite stretch.

Randomness: run ``r`` with seed ``s`` uses ``k = fold_in(key, s)``: its initial
parameters come from ``fold_in(k, 0)``, the permutation of epoch ``e`` from
``fold_in(fold_in(k, 1), e)``, the dropout of step ``t`` from
``fold_in(fold_in(k, 2), t)`` and gradient noise from ``fold_in(fold_in(k, 3), t)``.
A run's result thus depends only on the key and its own intervention, not on
which other runs share its bucket; runs that differ only in, say, the learning
rate share initial parameters and data order (common random numbers).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
from jax.sharding import Mesh, PartitionSpec

from hgcnet_jax import _keys
from hgcnet_jax.compile_cache import CompileClock
from hgcnet_jax.train import sharding as _sharding
from hgcnet_jax.train.checkpoint import BucketCheckpointer, check_fingerprint
from hgcnet_jax.train.interventions import Budget, Intervention, REG_SCOPES, as_interventions
from hgcnet_jax.train.optim import ReplicaOptState, replica_optimizer
from hgcnet_jax.train.task import Task, TaskSpec

__all__ = ["sweep", "SweepResult", "Trajectory", "METRICS", "run_key", "trajectory_steps"]

#: Metrics recorded at every evaluation, in this order.
METRICS = ("batch_loss", "train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc")

_HP = ("lr", "momentum", "is_adam", "weight_decay", "l2", "l1", "noise_std", "sam_rho", "scope")


def run_key(key: jax.Array, seed: int) -> jax.Array:
    """The key of a run with ``seed`` in a sweep started with ``key``."""
    return jax.random.fold_in(key, seed)


def _init_key(key, seed):
    return _keys.sweep_init(run_key(key, seed))


def trajectory_steps(total_steps: int, k: int) -> np.ndarray:
    """The ``k`` evenly spaced steps at which ``sweep(..., trajectory=k)`` saves a run's parameters.

    Step ``s_j = ceil((j + 1) T / k)`` for ``j = 0 … k-1``: the parameters after ``s_j``
    optimiser steps, the last one (``s_{k-1} = T``) being the final parameters.

    Args:
        total_steps: the run's number of steps ``T``.
        k: number of checkpoints, ``1 <= k <= T``.

    Returns:
        ``(k,)`` int64 array of step counts, strictly increasing.

    Raises:
        ValueError: if ``k`` is not an int in ``[1, total_steps]``.
    """
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= total_steps:
        raise ValueError(
            f"sweep: trajectory={k!r} checkpoints do not fit in a run of {total_steps} steps; "
            f"use an int between 1 and {total_steps} (or None for no trajectory)"
        )
    j = np.arange(1, k + 1, dtype=np.int64)
    return (j * total_steps + k - 1) // k


class Trajectory(NamedTuple):
    """A run's parameters saved along training (see :meth:`SweepResult.trajectory`).

    Attributes:
        steps: ``(K,)`` the number of optimiser steps taken at each checkpoint (the last
            is the run's total: its final parameters).
        params: the parameters at those steps, every leaf with a leading axis ``K``.
        model_state: the non-differentiable state (batch-norm statistics) at those
            steps, leading axis ``K``; ``{}`` if the model has none.
    """

    steps: np.ndarray
    params: Any
    model_state: Any


# --------------------------------------------------------------------------------------
# Result
# --------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, eq=False)
class SweepResult:
    """What a sweep returns.

    Attributes:
        task: the :class:`Task` that was trained.
        runs: one row per run: the intervention's values, ``lr_effective``, ``bucket``,
            ``steps`` (the optimiser steps the run took) and ``epochs`` (the same in epochs;
            with early stopping, ``Budget(patience=P)``, they vary from run to run, and the
            table gains ``stopped_early`` (it stopped before the budget's end) and
            ``best_val_acc`` (``best_val_loss`` with ``monitor="val_loss"``): the best
            monitored value among the evaluations it trained through), final metrics (``train_loss``, ``train_acc``, ``val_acc``,
            ``test_acc``, …), ``diverged``, ``diverged_step`` (−1 if none), ``wall_time_s``
            (the bucket's warm wall time — its XLA compilation excluded — divided by its
            number of runs), ``bucket_wall_time_s`` and ``bucket_compile_time_s`` (the
            seconds JAX spent tracing and compiling the bucket's program in this process).
        trajectories: long form ``run_id, step, epoch, metric, value``.
        interventions: the runs' :class:`Intervention` s, indexed by ``run_id``.
        key: the sweep's key.
        trajectory_length: ``K`` of ``sweep(..., trajectory=K)``: the checkpoints saved
            per run (see :meth:`trajectory`); ``None`` if none were saved.
    """

    task: Task
    runs: pd.DataFrame
    trajectories: pd.DataFrame
    interventions: tuple[Intervention, ...]
    key: jax.Array
    _final: dict[int, Any]
    _states: dict[int, Any]
    _where: dict[int, tuple[int, int]]
    trajectory_length: int | None = None
    _traj: dict[int, Any] = dataclasses.field(default_factory=dict)
    _traj_steps: dict[int, np.ndarray] = dataclasses.field(default_factory=dict)

    def _check(self, run_id: int) -> int:
        rid = int(run_id)
        if rid not in self._where:
            raise KeyError(f"run_id {run_id!r} is not in this sweep (0 … {len(self.interventions) - 1})")
        return rid

    def params(self, run_id: int):
        """Final parameters of run ``run_id`` (host numpy arrays)."""
        b, i = self._where[self._check(run_id)]
        return jax.tree.map(lambda a: a[i], self._final[b])

    def model_state(self, run_id: int):
        """Final non-differentiable state (batch-norm statistics) of run ``run_id``; ``{}`` if none."""
        b, i = self._where[self._check(run_id)]
        return jax.tree.map(lambda a: a[i], self._states[b])

    def init_params(self, run_id: int):
        """Initial parameters of run ``run_id`` (recomputed from the sweep key and its seed)."""
        rid = self._check(run_id)
        return self.task.init(_init_key(self.key, self.interventions[rid].seed))

    @property
    def has_trajectory(self) -> bool:
        """Whether the sweep saved checkpoints along training (``sweep(..., trajectory=K)``)."""
        return self.trajectory_length is not None

    def trajectory(self, run_id: int) -> Trajectory:
        """The ``K`` checkpoints of run ``run_id`` saved along training (host numpy arrays).

        Returns:
            A :class:`Trajectory`: ``steps`` ``(K,)`` (see :func:`trajectory_steps`), and
            ``params`` / ``model_state`` with a leading axis ``K``; the last checkpoint is
            :meth:`params` itself.

        Raises:
            KeyError: for a ``run_id`` not in the sweep.
            ValueError: if the sweep was run without ``trajectory``.
        """
        rid = self._check(run_id)
        if not self.has_trajectory:
            raise ValueError("SweepResult.trajectory: this sweep saved no checkpoints; run sweep(..., trajectory=K)")
        b, i = self._where[rid]
        tree = jax.tree.map(lambda a: a[i], self._traj[b])
        return Trajectory(self._traj_steps[b].copy(), tree["params"], tree["mstate"])

    def stacked_params(self, run_ids: Iterable[int] | None = None):
        """Final parameters of ``run_ids`` (default all, in ``run_id`` order) with a leading run axis."""
        ids = list(range(len(self.interventions))) if run_ids is None else [self._check(r) for r in run_ids]
        if not ids:
            raise ValueError("stacked_params: run_ids is empty")
        return jax.tree.map(lambda *xs: np.stack(xs), *[self.params(r) for r in ids])


# --------------------------------------------------------------------------------------
# The training step (one replica) and the bucket program
# --------------------------------------------------------------------------------------
def _reg_masks(params) -> Any:
    """Per-leaf table ``[all, weights, first_layer]`` of regulariser masks (0/1 scalars)."""
    first = next(iter(params)) if isinstance(params, dict) and params else None

    def leaf(path, _):
        names = [getattr(p, "key", getattr(p, "name", str(p))) for p in path]
        is_bias = bool(names) and names[-1] == "bias"
        in_first = bool(names) and names[0] == first
        return jnp.array([1.0, 0.0 if is_bias else 1.0, 1.0 if (in_first and not is_bias) else 0.0], jnp.float32)

    return jax.tree_util.tree_map_with_path(leaf, params)


def _divergence(alive: bool, div_step: int, hist: np.ndarray, steps_at: np.ndarray) -> tuple[bool, int]:
    """``(diverged, step)`` of one run: a non-finite step (``alive`` false), or a non-finite final eval loss."""
    if not alive:
        return True, div_step
    losses = hist[:, [METRICS.index(k) for k in ("train_loss", "val_loss", "test_loss")]]
    finite = np.isfinite(losses).all(axis=1)
    if finite.size == 0 or finite[-1]:
        return False, -1
    last_ok = np.flatnonzero(finite)
    return True, int(steps_at[last_ok[-1] + 1 if last_ok.size else 0])


def _tree_all_finite(tree) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.bool_(True)


def _where(c, a, b):
    return jax.tree.map(lambda x, y: jnp.where(c, x, y), a, b)


@dataclasses.dataclass(frozen=True)
class _Plan:
    """Static shape of one bucket's program."""

    batch_size: int
    n_train: int
    steps_per_epoch: int
    total_steps: int
    cadence: int
    periods: int
    periods_per_chunk: int
    use_sam: bool
    use_noise: bool
    vmap_width: int | None = None
    data_shards: int = 1  # devices of the mesh's data axis that share each step's minibatch
    saves: int = 0  # trajectory slots per chunk (0: no trajectory buffer in the program)
    patience: int | None = None  # early stopping (None: none, the program of a fixed budget)
    monitor: str = "val_acc"

    @property
    def chunks(self) -> int:
        return -(-self.periods // self.periods_per_chunk)


def _over_replicas(fn, width: int | None):
    """``fn`` mapped over the leading (replica) axis of its arguments, ``width`` replicas per ``vmap``.

    ``None`` (or a width of at least the number of replicas) is one ``jax.vmap``
    over all of them. A smaller width is ``lax.map(..., batch_size=width)``:
    groups of ``width`` replicas are vmapped and the groups run one after
    another inside the same program — still one compilation, no Python per step.
    """

    def mapped(*args):
        n = jax.tree.leaves(args)[0].shape[0]
        if width is None or width >= n:
            return jax.vmap(fn)(*args)
        # batch_size=1 would still vmap each replica (a size-1 batch axis); a plain map does not
        return jax.lax.map(lambda a: fn(*a), args, batch_size=None if width == 1 else width)

    return mapped


def resolve_vmap_width(vmap_width: int | None, backend: str | None = None) -> int | None:
    """The replicas per ``vmap`` a sweep uses: ``vmap_width`` if given, else by backend.

    On GPU and TPU all replicas of a bucket are vmapped together (``None``). On CPU
    the default is 1 — each replica of a bucket runs its whole chunk of steps before
    the next one starts, inside the same compiled program — because XLA:CPU executes
    the batched forms of the kernels that dominate these models more slowly *per
    replica* than the unbatched ones: a row gather ``W[cols]`` with a replica dimension (the GCN's sparse first layer)
    ran 3.5× slower per replica, and a convolution whose kernel has a replica axis
    becomes a grouped convolution (LeNet-5: 4.3× per replica). Vectorisation
    across replicas on a CPU comes from sharding the bucket over one host device
    per core (``mesh=make_mesh()`` with ``--xla_force_host_platform_device_count``).
    """
    if vmap_width is not None:
        if isinstance(vmap_width, bool) or not isinstance(vmap_width, int) or vmap_width < 1:
            raise ValueError(f"sweep: vmap_width must be None or an int >= 1, got {vmap_width!r}")
        return vmap_width
    return 1 if (backend or jax.default_backend()) == "cpu" else None


def _program(carry, hp, data, masks, first_period, slots, *, spec: TaskSpec, plan: _Plan):
    """One chunk of a bucket: ``plan.periods_per_chunk`` metric periods from ``first_period``.

    With ``plan.saves > 0`` the chunk also returns, per replica, a buffer of
    ``plan.saves + 1`` copies of ``{"params", "mstate"}``: after step ``t`` the state is
    written to slot ``slots[t]`` (``plan.saves`` is a scratch slot for the steps that are
    not saved). The buffer is an output, never read back into the carry, so the training
    arithmetic is that of the program without it.

    Compiled once per (spec, plan, mesh) and argument shapes by :data:`_compiled`: JAX's
    jit cache keys on the values of the static ``spec`` (the Task's structure, see
    :class:`TaskSpec`) and ``plan``, never on a Task object, and the data is an argument,
    so Tasks of the same model on data of the same shapes share the program and the
    cache keeps none of their arrays alive.
    """
    B, spe, T, E, P = plan.batch_size, plan.steps_per_epoch, plan.total_steps, plan.cadence, plan.periods_per_chunk

    def loss_fn(params, mstate, data, idx, key):
        logits, new_state = spec.apply(params, data, idx, key=key, train=True, state=mstate)
        y = jnp.take(data["y"], idx, axis=0)
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y)), new_state

    value_and_grad = jax.value_and_grad(loss_fn, has_aux=True)
    D = plan.data_shards

    def grad_fn(params, mstate, data, idx, key):
        """Loss and gradient of the minibatch ``idx``; on a ``data`` axis, of this device's slice, averaged.

        The ``D`` slices are equal (``B % D == 0``), so the mean of their mean gradients is
        the minibatch's mean gradient; after ``pmean`` every device of the run holds the
        same loss and gradient, and so takes the same step.
        """
        if D == 1:
            return value_and_grad(params, mstate, data, idx, key)
        shard = jax.lax.axis_index(_sharding.DATA)
        mine = jax.lax.dynamic_slice_in_dim(idx, shard * (B // D), B // D)
        if spec.kind != "node":  # a node task's dropout acts on the whole graph: the same mask on every slice
            key = jax.random.fold_in(key, shard)
        (loss, new_state), g = value_and_grad(params, mstate, data, mine, key)
        return (jax.lax.pmean(loss, _sharding.DATA), new_state), jax.lax.pmean(g, _sharding.DATA)

    def step(c, hp, data, t):
        rkey = jax.random.wrap_key_data(c["key"])
        epoch = t // spe
        perm = jax.lax.cond(
            t % spe == 0,
            lambda: jax.random.permutation(_keys.sweep_permutation(rkey, epoch), data["train"]),
            lambda: c["perm"],
        )
        idx = jax.lax.dynamic_slice_in_dim(perm, (t % spe) * B, B)
        dkey = _keys.sweep_dropout(rkey, t)
        p = c["params"]
        (loss, new_mstate), g = grad_fn(p, c["mstate"], data, idx, dkey)
        if plan.use_sam:
            gn = optax.tree.norm(g)
            scale = hp["sam_rho"] / (gn + 1e-12)
            p_adv = jax.tree.map(lambda a, b: a + scale * b, p, g)
            (_, _), g = grad_fn(p_adv, c["mstate"], data, idx, dkey)
        if plan.use_noise:
            nkey = _keys.sweep_noise(rkey, t)
            leaves, tdef = jax.tree.flatten(g)
            ks = jax.random.split(nkey, len(leaves))
            noise = [jax.random.normal(k, x.shape, x.dtype) for k, x in zip(ks, leaves)]
            g = jax.tree.map(lambda a, z: a + hp["noise_std"] * z, g, jax.tree.unflatten(tdef, noise))
        m = jax.tree.map(lambda tab: tab[hp["scope"]], masks)
        g = jax.tree.map(lambda gi, pi, mi: gi + mi * (hp["l2"] * pi + hp["l1"] * jnp.sign(pi)), g, p, m)
        opt = replica_optimizer(hp["lr"], momentum=hp["momentum"], is_adam=hp["is_adam"],
                                weight_decay=hp["weight_decay"], decay_mask=m)
        updates, st = opt.update(g, ReplicaOptState(c["mu"], c["nu"], c["count"]), p)
        new_p = optax.apply_updates(p, updates)
        finite = jnp.isfinite(loss) & _tree_all_finite(new_p)
        ok = c["alive"] & finite
        return {
            "params": _where(ok, new_p, p),
            "mu": _where(ok, st.mu, c["mu"]),
            "nu": _where(ok, st.nu, c["nu"]),
            "count": jnp.where(ok, st.count, c["count"]),
            "mstate": _where(ok, new_mstate, c["mstate"]),
            "alive": ok,
            "div_step": jnp.where(c["alive"] & ~finite, t, c["div_step"]),
            "perm": perm,
            "key": c["key"],
            "bl_sum": c["bl_sum"] + jnp.where(ok, loss, 0.0),
            "bl_n": c["bl_n"] + ok.astype(jnp.int32),
        }

    def metrics(c, data):
        out = spec.split_metrics(c["params"], data, state=c["mstate"] if spec.stateful else None)
        bl = c["bl_sum"] / jnp.maximum(c["bl_n"], 1).astype(jnp.float32)
        bl = jnp.where(c["bl_n"] > 0, bl, jnp.nan)
        return jnp.stack([bl] + [out[k].astype(jnp.float32) for k in METRICS[1:]])

    def period(cb, pi, hp):  # one replica, one metric period
        def one(cb, t):
            c, buf = cb
            if plan.patience is None:
                c = jax.lax.cond(t < T, lambda c: step(c, hp, data, t), lambda c: c, c)
            else:  # a stopped replica is frozen: no update of parameters, optimiser state or counters
                go = (t < T) & c["active"]
                c = jax.lax.cond(go, lambda c: {**c, **step(c, hp, data, t)}, lambda c: c, c)
                c = dict(c, steps_done=c["steps_done"] + go.astype(jnp.int32))
            if plan.saves:
                now = {"params": c["params"], "mstate": c["mstate"]}
                buf = jax.tree.map(lambda b, x: jax.lax.dynamic_update_index_in_dim(b, x, slots[t], 0), buf, now)
            return (c, buf), None

        (c, buf), _ = jax.lax.scan(one, cb, pi * E + jnp.arange(E))
        ms = metrics(c, data)
        c = dict(c, bl_sum=jnp.zeros_like(c["bl_sum"]), bl_n=jnp.zeros_like(c["bl_n"]))
        if plan.patience is not None:
            # higher is better on the score: val_acc as is, val_loss negated; NaN never improves
            score = ms[METRICS.index(plan.monitor)] * (1.0 if plan.monitor == "val_acc" else -1.0)
            counted = c["active"] & (pi * E < T)  # an evaluation of a running replica within the budget
            better = counted & (score > c["best"])
            since = jnp.where(counted, jnp.where(better, 0, c["since"] + 1), c["since"])
            c = dict(c, best=jnp.where(better, score, c["best"]), since=since,
                     active=c["active"] & (since < plan.patience))
        return (c, buf), ms

    def chunk(c, hp):  # one replica, the whole chunk
        buf = {}
        if plan.saves:
            now = {"params": c["params"], "mstate": c["mstate"]}
            buf = jax.tree.map(lambda x: jnp.zeros((plan.saves + 1,) + x.shape, x.dtype), now)
        (c, buf), ms = jax.lax.scan(lambda cb, pi: period(cb, pi, hp), (c, buf), first_period + jnp.arange(P))
        return (c, buf), ms

    # The replica map sits outside the scan over steps: with a width of 1 (CPU) each
    # replica runs its whole chunk before the next starts, so its parameters and
    # activations stay in cache exactly as in a single run; with a full width it is
    # vmap(scan), which JAX turns into the same program as scan(vmap(step)).
    (carry, saved), ms = _over_replicas(chunk, plan.vmap_width)(carry, hp)
    return carry, jnp.swapaxes(ms, 0, 1), saved  # metrics as (periods, replicas, metric)


def _program_on_mesh(carry, hp, data, masks, first_period, slots, *, spec: TaskSpec, plan: _Plan,
                     mesh: Mesh | None):
    """:func:`_program`, with the replica axis split over ``mesh`` by ``jax.shard_map``.

    Each device runs the same scan over its own slice of replicas (the data is
    replicated), so there is no communication inside a bucket and the local
    program is exactly the unsharded one: per-replica kernels that loop over
    replicas on CPU (see ``models._graph``) stay local instead of being
    gathered across devices by the SPMD partitioner.
    """
    body = functools.partial(_program, spec=spec, plan=plan)
    if mesh is None:
        return body(carry, hp, data, masks, first_period, slots)
    ax = _sharding.check_mesh(mesh)
    # replicas split over the runs axis and whole on every device of a data row (the row's
    # devices train the same replicas, each on its slice of the minibatch, see _program)
    rep, whole = PartitionSpec(ax), PartitionSpec()
    return jax.shard_map(
        body,
        mesh=mesh,
        in_specs=(rep, rep, whole, whole, whole, whole),
        out_specs=(rep, PartitionSpec(None, ax), rep),
        check_vma=False,  # the body never mixes replicas; every output is per-replica
    )(carry, hp, data, masks, first_period, slots)


_compiled = jax.jit(_program_on_mesh, static_argnames=("spec", "plan", "mesh"), donate_argnums=(0,))


# --------------------------------------------------------------------------------------
# Host side
# --------------------------------------------------------------------------------------
def _hp_arrays(runs: Sequence[Intervention]) -> dict[str, np.ndarray]:
    f32 = lambda xs: np.asarray(xs, np.float32)  # noqa: E731
    return {
        "lr": f32([r.effective_lr for r in runs]),
        "momentum": f32([r.momentum for r in runs]),
        "is_adam": f32([r.optimizer == "adam" for r in runs]),
        "weight_decay": f32([r.weight_decay for r in runs]),
        "l2": f32([r.l2 for r in runs]),
        "l1": f32([r.l1 for r in runs]),
        "noise_std": f32([r.noise_std for r in runs]),
        "sam_rho": f32([r.sam_rho for r in runs]),
        "scope": np.asarray([REG_SCOPES.index(r.reg_scope) for r in runs], np.int32),
    }


class _SavePlan(NamedTuple):
    """Where a bucket's trajectory checkpoints fall: see :func:`_save_plan`."""

    steps: np.ndarray  # (K,) step counts of the checkpoints
    per_chunk: list  # per chunk, the checkpoint indices k saved in it, in order
    slots: np.ndarray  # per step t of the padded schedule, its buffer slot in its chunk (saves = scratch)
    saves: int  # the most checkpoints in one chunk (0: no trajectory)


def _save_plan(total_steps: int, chunk_len: int, chunks: int, k: int | None) -> _SavePlan:
    """The buffer slots of a bucket's ``k`` trajectory checkpoints, chunk by chunk.

    The checkpoint after ``s`` steps is written after step ``t = s - 1`` (0-based), into
    slot ``j`` of the buffer of the chunk holding step ``t`` (its ``j``-th checkpoint).
    """
    if k is None:
        return _SavePlan(np.zeros((0,), np.int64), [[] for _ in range(chunks)], np.zeros((1,), np.int32), 0)
    steps = trajectory_steps(total_steps, k)
    per_chunk = [[] for _ in range(chunks)]
    for j, s in enumerate(steps):
        per_chunk[int(s - 1) // chunk_len].append(j)
    saves = max(len(c) for c in per_chunk)
    slots = np.full((chunks * chunk_len,), saves, np.int32)
    for ks in per_chunk:
        for j, kk in enumerate(ks):
            slots[int(steps[kk]) - 1] = j
    return _SavePlan(steps, per_chunk, slots, saves)


def _init_carry_impl(key, seeds, data, *, spec: TaskSpec, n_train: int):
    def one(seed):
        rk = run_key(key, seed)
        ik = _keys.sweep_init(rk)
        params, mstate = spec.init_variables(ik, data)
        zeros = jax.tree.map(jnp.zeros_like, params)
        return {
            "params": params,
            "mu": zeros,
            "nu": zeros,
            "count": jnp.int32(0),
            "mstate": mstate,
            "alive": jnp.bool_(True),
            "div_step": jnp.int32(-1),
            "perm": jnp.zeros((n_train,), jnp.int32),
            "key": jax.random.key_data(rk),
            "bl_sum": jnp.float32(0.0),
            "bl_n": jnp.int32(0),
        }

    return jax.vmap(one)(seeds)


_init_carry_jit = jax.jit(_init_carry_impl, static_argnames=("spec", "n_train"))


def _init_carry(task: Task, key, seeds: np.ndarray, n_train: int):
    return _init_carry_jit(key, jnp.asarray(seeds, jnp.int32), task.data, spec=task.spec, n_train=n_train)


def _replica_axes(tree: dict) -> dict:
    """The replica axis of each part of a bucket checkpoint: ``history`` is (rows, replicas, metrics)."""
    return {k: 1 if k == "history" else 0 for k in tree if k != "wall"}


def _resized(target: dict, replicas: int) -> dict:
    """Host (numpy) restore target of ``target``'s structure with ``replicas`` replicas."""
    out = dict(target)
    for k, ax in _replica_axes(target).items():
        out[k] = jax.tree.map(lambda x, ax=ax: np.zeros(x.shape[:ax] + (replicas,) + x.shape[ax + 1:], x.dtype),
                              target[k])
    return out


def _replica_index(R: int, Rp: int) -> np.ndarray:
    """The run each of a bucket's ``Rp`` replicas trains: its ``R`` runs, then copies of the first.

    Padding replicas (``Rp - R``, up to a multiple of the mesh size) repeat the first run's seed
    and hyper-parameters, so they hold its state, bit for bit, at every step.
    """
    return np.concatenate([np.arange(R), np.zeros(Rp - R, np.int64)])


def _repad(tree: dict, R: int, Rp: int) -> dict:
    """A restored checkpoint cut to its ``R`` runs and padded to ``Rp`` replicas as a fresh bucket is."""
    idx = _replica_index(R, Rp)
    out = dict(tree)
    for k, ax in _replica_axes(tree).items():
        out[k] = jax.tree.map(lambda x, ax=ax: np.take(np.asarray(x), idx, axis=ax), tree[k])
    return out


def _fingerprint(task: Task, runs, budget: Budget, key, chunk_steps: int, width,
                 trajectory: int | None = None, data_shards: int = 1) -> dict[str, Any]:
    ds = task.dataset
    # The trajectory does not change a run's results, but a checkpoint holds the checkpoints
    # saved so far, which a resume with another K could not complete: it is part of the
    # fingerprint when set, and absent otherwise (folders written before it still resume).
    # The device count is not part of it: a sweep sharded over k devices trains the same
    # runs (to float rounding), and a checkpoint saved on one count resumes on another.
    # A data axis splits each minibatch: a node task's steps are the same to float rounding
    # (its dropout masks the whole graph), but an image or text model draws its dropout
    # per slice, so its runs differ: the split is part of such a sweep's fingerprint.
    extra = {} if trajectory is None else {"trajectory": int(trajectory)}
    if data_shards > 1 and task.spec.kind != "node":
        extra["data_shards"] = int(data_shards)
    return {**extra,
        "dataset": {
            "name": ds.name,
            "kind": ds.kind,
            "x_shape": list(np.shape(ds.x)),
            "splits": {k: int(np.size(v)) for k, v in ds.splits.items()},
            "meta_split": str((ds.meta or {}).get("split", "")),
        },
        "model": task.model_name,
        "model_kwargs": {k: repr(v) for k, v in sorted(task.model_kwargs.items())},
        "interventions": [r.as_dict() for r in runs],
        "budget": dict(budget.as_dict()),
        "key": np.asarray(jax.random.key_data(key)).tolist(),
        "chunk_steps": chunk_steps,
        "vmap_width": width,
    }


def _to_host(x):
    if jax.process_count() > 1:  # pragma: no cover - multi-host only
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(jax.device_get(x))


def _progress(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="step", desc="sweep", leave=False)


def sweep(
    task: Task,
    interventions: Intervention | Iterable[Intervention],
    budget: Budget,
    *,
    key: jax.Array,
    mesh: Mesh | None = None,
    checkpoint_dir: str | Path | None = None,
    chunk_steps: int = 500,
    progress: bool = True,
    vmap_width: int | None = None,
    trajectory: int | None = None,
) -> SweepResult:
    """Train every intervention on ``task``, one compiled program per bucket (see the module docstring).

    Args:
        task: from :func:`make_task`.
        interventions: an :class:`Intervention` or an iterable of them (e.g. :func:`grid`);
            ``run_id`` is the position in this list.
        budget: how long each run trains (:class:`Budget`); with ``Budget(patience=P)`` the
            most it may train, each run stopping on its own validation trajectory (see the
            module docstring; the runs table then has each run's ``steps``, ``stopped_early``
            and ``best_val_acc``; final parameters are those at the stop).
        key: the sweep's PRNG key (keyword-only).
        mesh: optional device mesh (:func:`make_mesh`). Its ``runs`` axis splits each
            bucket's replicas (padded to a multiple of its size), the dataset is replicated.
            A ``data`` axis of ``k`` devices (``make_mesh(devices, data=k)``) trains each
            replica on ``k`` devices, each taking ``B / k`` examples of every minibatch and
            the gradients averaged (``B`` must be a multiple of ``k``; a model with batch
            norm is refused): the same run to float rounding, except that an image or text
            model's dropout masks are drawn per slice. The evaluation is repeated on every
            device of a run (replicated), so a data axis pays off where the training step
            dominates.
        checkpoint_dir: folder for orbax checkpoints; a killed sweep re-run with the same
            arguments resumes from the last completed chunk and gives bit-identical results.
        chunk_steps: steps per host round-trip (progress update and checkpoint), rounded to
            whole metric periods.
        progress: show a ``tqdm.auto`` bar (terminal or notebook), advanced once per chunk.
        vmap_width: replicas per ``vmap`` inside a bucket's program; the groups run one
            after another in the same compiled scan. ``None``: all replicas at once on
            GPU/TPU, 1 on CPU (see :func:`resolve_vmap_width`). Results do not depend on it
            beyond float rounding.
        trajectory: ``K`` to save every run's parameters (and model state) after
            ``ceil((j+1) T / K)`` of its ``T`` steps, ``j = 0 … K-1`` (:func:`trajectory_steps`;
            the last is the final parameters), read back with :meth:`SweepResult.trajectory`.
            ``None`` (default): none saved, the program is exactly today's. The training is
            the same either way (the saved copies are an output of the compiled program,
            never fed back), so every result is bit-identical with and without it. Memory:
            ``K ×`` (parameters + state) per run on the host, and on the device one buffer
            of (the most checkpoints falling in one chunk + 1) copies per replica of the
            bucket. A resumable sweep checkpoints the saved ones with its carry, so a
            resumed sweep returns the same checkpoints bit for bit. The steps are those of
            the budget's ``T``; under early stopping a run's checkpoints after its stop are
            its frozen (final) parameters.

    Returns:
        A :class:`SweepResult`.

    Raises:
        TypeError / ValueError: for invalid arguments (a ``key`` that is not one PRNG key:
            TypeError), a batch size larger than the
            training split, a ``trajectory`` that is not an int in ``[1, T]`` for every
            bucket's step count ``T``, ``Budget.patience`` on a task without a validation
            split, or a ``checkpoint_dir`` holding another sweep.
    """
    if not isinstance(task, Task):
        raise TypeError(f"sweep: task must be a Task (see make_task), got {type(task).__name__}")
    runs = as_interventions(interventions)
    if not isinstance(budget, Budget):
        raise TypeError(f"sweep: budget must be a Budget, got {type(budget).__name__}")
    key = _keys.typed_key(key, where="sweep")
    if isinstance(chunk_steps, bool) or not isinstance(chunk_steps, int) or chunk_steps < 1:
        raise ValueError(f"sweep: chunk_steps must be an int >= 1, got {chunk_steps!r}")
    data_shards = 1 if mesh is None else _sharding.mesh_axes(mesh).data_size
    width = resolve_vmap_width(vmap_width)
    n_train = int(task.splits["train"].shape[0])
    for r in runs:
        budget.steps_per_epoch(r.batch_size, n_train)  # raises for a batch larger than the split
    if data_shards > 1:
        if task.spec.stateful:
            raise ValueError(
                f"sweep: the mesh's data axis ({data_shards} devices per run) splits each minibatch, and "
                f"{task.model_name!r} keeps batch-norm statistics, which would then be those of each slice; "
                f"use a mesh without a data axis (make_mesh(devices)) or a model without batch norm")
        odd = sorted({r.batch_size for r in runs if r.batch_size % data_shards})
        if odd:
            raise ValueError(
                f"sweep: batch sizes {odd} do not split evenly over the mesh's data axis of {data_shards} devices; "
                f"use batch sizes that are multiples of {data_shards} or a smaller data axis (make_mesh(devices, data=k))")
    if budget.patience is not None and int(np.size(task.splits.get("val", ()))) == 0:
        raise ValueError(
            "Budget.patience: early stopping monitors the validation split, and this task has none; "
            "give the dataset a 'val' split or drop Budget.patience"
        )
    if trajectory is not None:
        for B in sorted({r.batch_size for r in runs}):
            trajectory_steps(budget.total_steps(B, n_train), trajectory)  # raises for K > T

    root = None
    if checkpoint_dir is not None:
        fp = _fingerprint(task, runs, budget, key, chunk_steps, width, trajectory, data_shards)
        root = check_fingerprint(checkpoint_dir, fp)

    # Buckets: same batch size and same static switches, ordered by batch size.
    groups: dict[tuple, list[int]] = {}
    for rid, r in enumerate(runs):
        groups.setdefault((r.batch_size, r.sam_rho > 0, r.noise_std > 0), []).append(rid)
    bucket_keys = sorted(groups)

    plans, save_plans = [], []
    for bk in bucket_keys:
        B, use_sam, use_noise = bk
        spe = budget.steps_per_epoch(B, n_train)
        T = budget.total_steps(B, n_train)
        E = min(budget.cadence(B, n_train), T)
        periods = -(-T // E)
        ppc = max(1, min(periods, chunk_steps // E))
        sp = _save_plan(T, ppc * E, -(-periods // ppc), trajectory)
        save_plans.append(sp)
        plans.append(_Plan(B, n_train, spe, T, E, periods, ppc, use_sam, use_noise, width, data_shards, sp.saves,
                           budget.patience, budget.monitor))

    data = {**task.data, "train": task.splits["train"], "splits": dict(task.splits)}
    if mesh is not None:
        data = jax.device_put(data, _sharding.replicated_sharding(mesh))
    bar = _progress(sum(p.total_steps for p in plans), progress)

    rows, traj, finals, states, where, saved, saved_steps = [], [], {}, {}, {}, {}, {}
    try:
        for b, (bk, plan, sp) in enumerate(zip(bucket_keys, plans, save_plans)):
            ids = groups[bk]
            brs = [runs[i] for i in ids]
            R = len(ids)
            Rp = _sharding.padded_size(R, mesh)
            replicas = _replica_index(R, Rp)
            hp = {k: v[replicas] for k, v in _hp_arrays(brs).items()}
            seeds = np.asarray([r.seed for r in brs], np.int32)[replicas]
            carry = _init_carry(task, key, seeds, n_train)
            if plan.patience is not None:
                carry = dict(carry, active=jnp.ones((Rp,), bool), best=jnp.full((Rp,), -jnp.inf, jnp.float32),
                             since=jnp.zeros((Rp,), jnp.int32), steps_done=jnp.zeros((Rp,), jnp.int32))
            masks = _reg_masks(jax.eval_shape(task.init, jax.random.key(0)))
            if mesh is not None:
                rs = _sharding.replica_sharding(mesh)
                carry = jax.device_put(carry, rs)
                hp = jax.device_put(hp, rs)
            else:
                hp = jax.tree.map(jnp.asarray, hp)
            n_rows = plan.chunks * plan.periods_per_chunk
            history = np.full((n_rows, Rp, len(METRICS)), np.nan, np.float32)
            # host copy of the checkpoints along training: leaves (replicas, K, ...)
            kept = None if trajectory is None else jax.tree.map(
                lambda x: np.zeros((x.shape[0], trajectory) + tuple(x.shape[1:]), x.dtype),
                {"params": carry["params"], "mstate": carry["mstate"]},
            )
            slots = jnp.asarray(sp.slots)
            start_chunk, wall = 0, 0.0
            ckpt = None
            if root is not None:
                ckpt = BucketCheckpointer(root / f"bucket_{b:03d}")
                last = ckpt.latest()
                if last is not None:
                    target = {"carry": carry, "history": history, "wall": np.float64(0)}
                    if kept is not None:
                        target["trajectory"] = kept
                    saved_rp = ckpt.saved_replicas(last)
                    if saved_rp == Rp:
                        tree = ckpt.restore(last, target)
                    else:  # saved on another device count: its padding differs, the runs do not
                        tree = _repad(ckpt.restore(last, _resized(target, saved_rp)), R, Rp)
                        tree["carry"] = jax.device_put(tree["carry"], rs if mesh is not None else None)
                    carry, history, wall = tree["carry"], np.asarray(tree["history"]), float(tree["wall"])
                    if kept is not None:
                        kept = jax.tree.map(np.array, tree["trajectory"])  # writable copies
                    start_chunk = int(last)
            if bar is not None:
                bar.set_description(f"bucket {b + 1}/{len(plans)} (B={plan.batch_size}, {R} runs)")
                bar.update(min(plan.total_steps, start_chunk * plan.periods_per_chunk * plan.cadence))
            compile_s = 0.0
            for ch in range(start_chunk, plan.chunks):
                t0 = time.perf_counter()
                first = ch * plan.periods_per_chunk
                with CompileClock() as clock:
                    carry, ms, buf = _compiled(carry, hp, data, masks, jnp.int32(first), slots,
                                               spec=task.spec, plan=plan, mesh=mesh)
                    ms = _to_host(ms)
                    if kept is not None and sp.per_chunk[ch]:
                        buf = jax.tree.map(_to_host, buf)
                        for h, x in zip(jax.tree.leaves(kept), jax.tree.leaves(buf)):
                            for j, k in enumerate(sp.per_chunk[ch]):
                                h[:, k] = x[:, j]
                # (periods, replicas, metrics): a wrong replica count would broadcast silently below
                chex.assert_shape(ms, (plan.periods_per_chunk, Rp, len(METRICS)))
                compile_s += clock.seconds
                wall += time.perf_counter() - t0 - clock.seconds
                history[first : first + plan.periods_per_chunk] = ms
                if ckpt is not None:
                    tree = {"carry": carry, "history": history, "wall": np.float64(wall)}
                    if kept is not None:
                        tree["trajectory"] = kept
                    ckpt.save(ch + 1, tree)
                if bar is not None:
                    done_before = first * plan.cadence
                    done_after = min(plan.total_steps, (first + plan.periods_per_chunk) * plan.cadence)
                    bar.update(max(0, done_after - max(done_before, 0)))
            if ckpt is not None:
                ckpt.close()
            final = jax.tree.map(lambda a: _to_host(a)[:R], carry["params"])
            mstate = jax.tree.map(lambda a: _to_host(a)[:R], carry["mstate"])
            alive = _to_host(carry["alive"])[:R]
            div_step = _to_host(carry["div_step"])[:R]
            finals[b], states[b] = final, mstate
            run_steps = [plan.total_steps] * R
            early_columns = lambda i: {}  # noqa: E731
            if plan.patience is not None:
                run_steps = [int(v) for v in _to_host(carry["steps_done"])[:R]]
                best = _to_host(carry["best"])[:R] * (1.0 if plan.monitor == "val_acc" else -1.0)

                def early_columns(i, best=best, run_steps=run_steps, T=plan.total_steps):
                    return {"stopped_early": run_steps[i] < T, f"best_{plan.monitor}": float(best[i])}
            if kept is not None:
                saved[b] = jax.tree.map(lambda a: a[:R], kept)
                saved_steps[b] = sp.steps
            steps_at = np.minimum((np.arange(plan.periods) + 1) * plan.cadence, plan.total_steps)
            hist = history[: plan.periods, :R]
            for i, rid in enumerate(ids):
                where[rid] = (b, i)
                r = runs[rid]
                last_m = dict(zip(METRICS, hist[-1, i].tolist()))
                diverged, diverged_step = _divergence(bool(alive[i]), int(div_step[i]), hist[:, i], steps_at)
                rows.append(
                    {
                        "run_id": rid,
                        "bucket": b,
                        **{k: v for k, v in r.as_dict().items()},
                        "lr_effective": r.effective_lr,
                        "steps": run_steps[i],
                        "epochs": run_steps[i] / plan.steps_per_epoch,
                        **last_m,
                        **early_columns(i),
                        "diverged": diverged,
                        "diverged_step": diverged_step,
                        "wall_time_s": wall / R,
                        "bucket_wall_time_s": wall,
                        "bucket_compile_time_s": compile_s,
                    }
                )
                for j, m in enumerate(METRICS):
                    traj.append(
                        pd.DataFrame(
                            {
                                "run_id": rid,
                                "step": steps_at,
                                "epoch": steps_at / plan.steps_per_epoch,
                                "metric": m,
                                "value": hist[:, i, j].astype(np.float64),
                            }
                        )
                    )
    finally:
        if bar is not None:
            bar.close()

    runs_df = pd.DataFrame(rows).sort_values("run_id").reset_index(drop=True)
    runs_df = runs_df.rename(columns={"optimizer": "optimizer"})
    traj_df = (
        pd.concat(traj, ignore_index=True)
        if traj
        else pd.DataFrame(columns=["run_id", "step", "epoch", "metric", "value"])
    )
    traj_df = traj_df.sort_values(["run_id", "metric", "step"], kind="stable").reset_index(drop=True)
    return SweepResult(
        task=task,
        runs=runs_df,
        trajectories=traj_df,
        interventions=tuple(runs),
        key=key,
        _final=finals,
        _states=states,
        _where=where,
        trajectory_length=trajectory,
        _traj=saved,
        _traj_steps=saved_steps,
    )
