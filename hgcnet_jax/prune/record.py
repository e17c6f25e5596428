r"""Training loops for pruning, and the streaming recorder of the Granger regression.

During the *pruning epochs* every replica (seed) is trained with plain SGD while, per
step :math:`t`, the minibatch loss :math:`L_t` (at :math:`\theta_t`, before the step)
and the parameter change :math:`\Delta\theta_t = \theta_{t+1} - \theta_t` of every
prunable weight are recorded. The regression of :mod:`hgcnet_jax.prune.granger` is
then

.. math::  y_t = L_{t+1} - L_t, \qquad X_t = (\Delta\theta_t / \eta)^2 ,

(the authors' consecutive-minibatch target; ``target="same_batch"`` instead uses
:math:`y_t = L(\theta_{t+1}; B_t) - L(\theta_t; B_t)` as their later code does). Dividing
by :math:`\eta^2` only rescales the columns by a common constant (the support of the
Lasso is unchanged once :math:`\alpha` is rescaled, see :func:`alpha_max`); it keeps
the float32 features away from 1e-10.

**Two ways to record.** :meth:`Trainer.record` keeps every :math:`\Delta\theta` on the
host and returns a :class:`Recording`, from which :meth:`Recording.design` builds the
full ``(T, P)`` design of one replica. :meth:`Trainer.record_stats` instead *streams*:
each chunk of steps is folded into a :class:`GrangerStats` as soon as it reaches the
host, per *fit group* (one group for the global Lasso, one per layer for the per-layer
and structured fits), and only what the solver needs is kept:

* for a group of :math:`p` feature columns (:math:`p` = its weights, or 3× with the
  momentum features) with :math:`p \le` ``gram_max_features`` (default 1024): the Gram
  :math:`X^\top X` (``(p, p)`` float64), :math:`X^\top y`, :math:`\sum_t X_{tj}^2` and
  :math:`y^\top y` — what :func:`hgcnet_jax.prune.lasso_gram` (the solvers' public
  covariance-form entry point) and :func:`hgcnet_jax.prune.structured.group_lasso_gram`
  take, in :math:`8p^2` bytes per replica **whatever the number of steps T**;
* for a larger group: :math:`X^\top y` and :math:`\sum_t X_{tj}^2` (:math:`O(p)`) plus
  its raw :math:`\Delta\theta` columns, ``(S, T + 1, P_g)`` float32, either in host
  memory or, with ``spill_dir``, in a memory-mapped file on disk (then resident host
  memory holds one chunk). The Lasso on such a group still materialises its own
  ``(T, p)`` design, one group and one replica at a time, because the solvers' public
  API (``lasso``: working sets / FISTA / SGD) needs the matrix ``X``; bounding that
  too would need a solver that takes the design as row chunks (matvec callbacks).

**Memory bound** of :meth:`Trainer.record_stats` beyond training itself, with ``S``
replicas, chunk ``c`` steps, ``P`` prunable weights:

.. math:: \underbrace{4\,S\,c\,P}_{\text{one chunk on device and host}}
          + \sum_{g:\,p_g \le p_{\max}} 8\,S\,p_g^2
          + \sum_{g:\,p_g > p_{\max}} 4\,S\,(T+1)\,P_g \;(\text{RAM, or disk with spill\_dir})
          + O(S\,(T + P)).

For LeNet-5 (P = 61,470, S = 3, c = 8) with per-layer groups (conv 150, 2,400; dense
48,000, 10,080, 840) and :math:`p_{\max}` = 1024 only the first and last layers are
Gram groups (0.6 + 17 MB); the others keep their columns (T = 188: 137 MB, or on disk).
With :meth:`Trainer.record` everything is kept: ``4·S·(T+1)·P`` bytes (139 MB here, and
:math:`T\times P` grows without bound with the number of pruning steps).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from hgcnet_jax import _keys
from hgcnet_jax.prune.masks import apply_mask, flatten_prunable, masked
from hgcnet_jax.train.optim import replica_optimizer

__all__ = ["Recording", "GrangerStats", "Trainer", "EarlyStopped", "epoch_batches", "n_rows"]

PyTree = Any


def n_rows(n_steps: int, *, target: str = "consecutive", features: str = "sq") -> int:
    r"""Rows of the Granger regression from ``n_steps`` recorded steps (:meth:`Recording.design`).

    ``consecutive``: ``n_steps - 1`` (row t needs :math:`L_{t+1}`); ``same_batch``:
    ``n_steps``; the momentum features keep rows ``0 .. len(y) - 2`` (row t needs
    :math:`\Delta\theta_{t+1}`; with the consecutive target this leaves out one usable
    row, kept as it was so earlier results reproduce).
    """
    if target not in ("consecutive", "same_batch"):
        raise ValueError(f"target must be 'consecutive' or 'same_batch', got {target!r}")
    if features not in ("sq", "momentum"):
        raise ValueError(f"features must be 'sq' or 'momentum', got {features!r}")
    ny = n_steps - 1 if target == "consecutive" else n_steps
    return max(ny - 1, 0) if features == "momentum" else max(ny, 0)


def feature_rows(a: np.ndarray, b: np.ndarray | None, features: str) -> np.ndarray:
    r"""Feature rows from ``Δθ_t`` (``a``, ``(..., p)``) and, for momentum, ``Δθ_{t+1}`` (``b``).

    ``"sq"``: :math:`\Delta\theta_t^2`; ``"momentum"``: :math:`[\Delta\theta_t^2,
    \Delta\theta_{t+1}^2, \Delta\theta_t\Delta\theta_{t+1}]` along the last axis. Computed
    in the dtype of ``a`` (float32), exactly as :meth:`Recording.design` does.
    """
    if features == "sq":
        return np.square(a)
    return np.concatenate([a * a, b * b, a * b], axis=-1)


@dataclass(frozen=True)
class Recording:
    """Per-replica recordings of a pruning phase (host arrays).

    Attributes:
        losses: ``(S, T + 1)`` minibatch losses :math:`L_t` at :math:`\\theta_t`.
        losses_after: ``(S, T + 1)`` :math:`L(\\theta_{t+1}; B_t)` (NaN unless recorded).
        deltas: ``(S, T + 1, P)`` float32 :math:`\\Delta\\theta_t / \\eta` of the prunable
            weights, concatenated in ``jax.tree`` order.
        layer_slices: name → ``slice`` of the ``P`` axis for each prunable leaf.
        lr: the SGD learning rate of the phase.
    """

    losses: np.ndarray
    losses_after: np.ndarray
    deltas: np.ndarray
    layer_slices: dict[str, slice]
    lr: float

    @property
    def nbytes(self) -> int:
        return int(self.losses.nbytes + self.losses_after.nbytes + self.deltas.nbytes)

    def design(self, replica: int, *, target: str = "consecutive", features: str = "sq") -> tuple[np.ndarray, np.ndarray]:
        """The regression ``(X, y)`` of one replica.

        Args:
            replica: which seed.
            target: ``"consecutive"`` (:math:`L_{t+1} - L_t`, T rows) or ``"same_batch"``
                (:math:`L(\\theta_{t+1};B_t) - L(\\theta_t;B_t)`, T + 1 rows).
            features: ``"sq"`` — :math:`\\Delta\\theta_t^2` (P columns); ``"momentum"`` —
                :math:`[\\Delta\\theta_t^2, \\Delta\\theta_{t+1}^2, \\Delta\\theta_t\\Delta\\theta_{t+1}]`
                (3P columns, feature block ``k`` of weight ``j`` at column ``k·P + j``).

        Returns:
            ``(X, y)`` as float32 / float64 numpy arrays.
        """
        d = self.deltas[replica]
        L = self.losses[replica].astype(np.float64)
        if target == "consecutive":
            y = np.diff(L)
        elif target == "same_batch":
            if np.all(np.isnan(self.losses_after[replica])):
                raise ValueError("Recording.design: target='same_batch' needs record(..., same_batch=True)")
            y = self.losses_after[replica].astype(np.float64) - L
        else:
            raise ValueError(f"Recording.design: target must be 'consecutive' or 'same_batch', got {target!r}")
        if features not in ("sq", "momentum"):
            raise ValueError(f"Recording.design: features must be 'sq' or 'momentum', got {features!r}")
        n = n_rows(d.shape[0], target=target, features=features)
        X = feature_rows(d[:n], d[1 : n + 1] if features == "momentum" else None, features)
        y = y[:n]
        return X, y


@dataclass(frozen=True)
class GrangerStats:
    r"""Streamed sufficient statistics of the Granger regression, per fit group (host arrays).

    Built by :meth:`Trainer.record_stats` (or :meth:`from_recording`); see the module
    docstring for what is kept and the memory bound. ``p_g`` is the number of feature
    columns of group ``g``: its weights, or three times that with momentum features
    (column layout as in :meth:`Recording.design` restricted to the group: block ``k``
    of weight ``j`` at ``k·P_g + j``).

    Attributes:
        n: rows of the regression (the same rows as :meth:`Recording.design`).
        target, features: how the rows were built.
        groups: group name → ``slice`` of the ``P`` axis (all prunable weights).
        y: ``(S, n)`` float64 targets (:math:`O(S\,T)`; kept for the design groups and checks).
        yty: ``(S,)`` :math:`y^\top y`.
        xty: name → ``(S, p_g)`` float64 :math:`X_g^\top y`.
        sumsq: name → ``(S, p_g)`` float64 :math:`\sum_t X_{tj}^2` (the column scales).
        gram: name → ``(S, p_g, p_g)`` float64 :math:`X_g^\top X_g` for the Gram groups.
        deltas: name → ``(S, steps, P_g)`` float32 :math:`\Delta\theta/\eta` of the other
            groups (a ``numpy.memmap`` when spilled to disk).
        lr: the SGD learning rate of the phase.
    """

    n: int
    target: str
    features: str
    groups: dict[str, slice]
    y: np.ndarray
    yty: np.ndarray
    xty: dict[str, np.ndarray]
    sumsq: dict[str, np.ndarray]
    gram: dict[str, np.ndarray]
    deltas: dict[str, np.ndarray]
    lr: float

    @property
    def nbytes(self) -> int:
        """Bytes held in host memory (memory-mapped deltas count 0)."""
        arrays = [self.y, self.yty, *self.xty.values(), *self.sumsq.values(), *self.gram.values()]
        arrays += [d for d in self.deltas.values() if not isinstance(d, np.memmap)]
        return int(sum(a.nbytes for a in arrays))

    def design(self, replica: int, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(X_g, y)`` of one replica for a group kept as columns (not a Gram group)."""
        if name not in self.deltas:
            raise KeyError(f"GrangerStats.design: group {name!r} has no stored columns "
                           f"(Gram groups: {sorted(self.gram)}; column groups: {sorted(self.deltas)})")
        d = np.asarray(self.deltas[name][replica])
        X = feature_rows(d[: self.n], d[1 : self.n + 1] if self.features == "momentum" else None, self.features)
        return X, self.y[replica]

    @staticmethod
    def from_recording(rec: "Recording", groups: dict[str, slice], *, target: str = "consecutive",
                       features: str = "sq", gram_max_features: int = 1024, chunk_steps: int = 8) -> "GrangerStats":
        """Stream a full :class:`Recording` through the accumulator, ``chunk_steps`` steps at a time.

        The same code path as :meth:`Trainer.record_stats` (used by the tests to show that
        the streamed statistics equal the ones of the full design).
        """
        S, N, P = rec.deltas.shape
        if target == "same_batch" and np.all(np.isnan(rec.losses_after)):
            raise ValueError("GrangerStats.from_recording: target='same_batch' needs record(..., same_batch=True)")
        acc = _StatsAccumulator(S, N, P, groups, target=target, features=features,
                                gram_max_features=gram_max_features, lr=rec.lr)
        for lo in range(0, N, chunk_steps):
            hi = min(N, lo + chunk_steps)
            acc.push(lo, rec.deltas[:, lo:hi], rec.losses[:, lo:hi], rec.losses_after[:, lo:hi])
        return acc.finish()


class _StatsAccumulator:
    r"""Folds chunks of recorded steps into :class:`GrangerStats` (host, float64 sums).

    Row ``t`` needs step ``t + 1`` too when the target is consecutive (:math:`L_{t+1}`)
    or the features are momentum (:math:`\Delta\theta_{t+1}`), so the last step of a
    chunk is carried over to the next (a lag of one step).
    """

    def __init__(self, S: int, N: int, P: int, groups: dict[str, slice], *, target: str, features: str,
                 gram_max_features: int, lr: float, spill_dir: str | None = None):
        if gram_max_features < 0:
            raise ValueError(f"gram_max_features must be >= 0, got {gram_max_features}")
        self.S, self.N, self.P = S, N, P
        self.groups = dict(groups)
        self.target, self.features, self.lr = target, features, float(lr)
        self.n = n_rows(N, target=target, features=features)
        self.lag = 1 if (target == "consecutive" or features == "momentum") else 0
        k = 3 if features == "momentum" else 1
        self.width = {g: k * (sl.stop - sl.start) for g, sl in self.groups.items()}
        self.y = np.zeros((S, self.n), np.float64)
        self.xty = {g: np.zeros((S, w), np.float64) for g, w in self.width.items()}
        self.sumsq = {g: np.zeros((S, w), np.float64) for g, w in self.width.items()}
        self.gram = {g: np.zeros((S, w, w), np.float64) for g, w in self.width.items() if w <= gram_max_features}
        self.deltas: dict[str, np.ndarray] = {}
        for g, sl in self.groups.items():
            if g in self.gram:
                continue
            shape = (S, N, sl.stop - sl.start)
            if spill_dir is None:
                self.deltas[g] = np.zeros(shape, np.float32)
            else:
                import os
                import tempfile

                fd, path = tempfile.mkstemp(prefix="granger-", suffix=".f32", dir=spill_dir)
                os.close(fd)
                try:
                    self.deltas[g] = np.memmap(path, np.float32, mode="w+", shape=shape)
                finally:
                    os.unlink(path)       # the mapping keeps the data; the file goes with it
        self.next_row = 0
        self.tail: tuple[int, np.ndarray, np.ndarray, np.ndarray] | None = None

    def push(self, lo: int, d: np.ndarray, loss: np.ndarray, after: np.ndarray) -> None:
        """Fold steps ``lo .. lo + c - 1``: ``d (S, c, P)``, ``loss`` and ``after`` ``(S, c)``."""
        c = d.shape[1]
        hi = lo + c
        for g, buf in self.deltas.items():
            sl = self.groups[g]
            buf[:, lo:hi] = d[:, :, sl]
        if self.tail is not None:
            t_lo, td, tl, ta = self.tail
            d = np.concatenate([td, d], axis=1)
            loss = np.concatenate([tl, loss], axis=1)
            after = np.concatenate([ta, after], axis=1)
            base = t_lo
        else:
            base = lo
        end = min(hi - self.lag, self.n)             # rows t < end have all their steps
        r0 = self.next_row
        if end > r0:
            i0, i1 = r0 - base, end - base
            L = loss.astype(np.float64)
            if self.target == "consecutive":
                y = L[:, i0 + 1 : i1 + 1] - L[:, i0:i1]
            else:
                y = after[:, i0:i1].astype(np.float64) - L[:, i0:i1]
            self.y[:, r0:end] = y
            a = d[:, i0:i1]
            b = d[:, i0 + 1 : i1 + 1] if self.features == "momentum" else None
            for g, sl in self.groups.items():
                X = feature_rows(a[..., sl], None if b is None else b[..., sl], self.features).astype(np.float64)
                self.xty[g] += np.einsum("st,stp->sp", y, X)
                self.sumsq[g] += np.einsum("stp,stp->sp", X, X)
                if g in self.gram:
                    self.gram[g] += np.einsum("stp,stq->spq", X, X)
            self.next_row = end
        if self.lag:
            self.tail = (hi - 1, d[:, -1:].copy(), loss[:, -1:].copy(), after[:, -1:].copy())

    def finish(self) -> GrangerStats:
        if self.next_row != self.n:
            raise RuntimeError(f"_StatsAccumulator: {self.next_row} of {self.n} rows folded (steps missing)")
        for buf in self.deltas.values():
            if isinstance(buf, np.memmap):
                buf.flush()
        return GrangerStats(self.n, self.target, self.features, self.groups, self.y,
                            np.einsum("st,st->s", self.y, self.y), self.xty, self.sumsq, self.gram, self.deltas, self.lr)


def epoch_batches(key, train_idx: np.ndarray, batch_size: int, n_steps: int) -> jax.Array:
    """``(n_steps, batch_size)`` indices: consecutive epochs of fresh permutations (remainder dropped)."""
    n = int(train_idx.shape[0])
    if batch_size > n:
        raise ValueError(f"batch_size {batch_size} exceeds the {n} training examples")
    per_epoch = n // batch_size
    n_epochs = -(-n_steps // per_epoch)
    keys = jax.random.split(key, n_epochs)
    perms = jax.vmap(lambda k: jax.random.permutation(k, jnp.asarray(train_idx)))(keys)
    perms = perms[:, : per_epoch * batch_size].reshape(n_epochs * per_epoch, batch_size)
    return perms[:n_steps]


@dataclass(frozen=True)
class EarlyStopped:
    """The outcome of :meth:`Trainer.train_early_stopping`.

    Attributes:
        params: ``(S, ...)`` the best-validation parameters of every replica.
        best_step: ``(S,)`` the step of each replica's best validation accuracy (0: the start).
        best_val: ``(S,)`` that accuracy.
        steps_run: steps trained in all (every replica trains until the last one stops).
        history: ``(evaluations, S)`` validation accuracy at steps ``0, eval_every, …``.
    """

    params: PyTree
    best_step: np.ndarray
    best_val: np.ndarray
    steps_run: int
    history: np.ndarray


class Trainer:
    """Jitted, replica-vmapped masked training for one task (built once, reused by every method).

    Args:
        task: anything with ``init(key)``, ``loss(params, idx, *, key, train)``,
            ``accuracy(params, idx)`` and ``splits`` (``"train"``, ``"test"``) — a
            :class:`hgcnet_jax.train.Task` or a test double.
        which: :func:`hgcnet_jax.prune.masks.prunable` of the unstacked params.
        batch_size: minibatch size.
    """

    def __init__(self, task: Any, which: PyTree, batch_size: int):
        if batch_size < 1:
            raise ValueError(f"Trainer: batch_size must be >= 1, got {batch_size}")
        self.task = task
        self.which = which
        self.batch_size = int(batch_size)
        self.train_idx = np.asarray(task.splits["train"])
        self._fns: dict[Any, Callable] = {}

    # -- one compiled program per (optimizer spec, record) ---------------------------------
    def _opt(self, spec: tuple, mask):
        """The package's one optimiser (:func:`hgcnet_jax.train.optim.replica_optimizer`,
        which the sweep runs too) as plain SGD or Adam, with the updates masked."""
        kind, lr = spec
        return masked(replica_optimizer(lr, is_adam=kind == "adam"), mask)

    def _program(self, spec: tuple, record: bool, same_batch: bool):
        k = (spec, record, same_batch)
        if k in self._fns:
            return self._fns[k]
        task, which, lr = self.task, self.which, spec[1]

        def one(params, opt_state, mask, key, batches):
            opt = self._opt(spec, mask)

            def step(carry, batch):
                params, opt_state, key = carry
                key, sub = jax.random.split(key)
                loss, grads = jax.value_and_grad(lambda p: task.loss(p, batch, key=sub, train=True))(params)
                updates, opt_state = opt.update(grads, opt_state, params)
                new = optax.apply_updates(params, updates)
                if record:
                    delta = jnp.concatenate(
                        [(a - b) / lr for a, b in zip(flatten_prunable(new, which), flatten_prunable(params, which))]
                    )
                    after = task.loss(new, batch, key=sub, train=True) if same_batch else jnp.nan * loss
                    out = (loss, after, delta.astype(jnp.float32))
                else:
                    out = loss
                return (new, opt_state, key), out

            (params, opt_state, key), outs = jax.lax.scan(step, (params, opt_state, key), batches)
            return params, opt_state, key, outs

        fn = jax.jit(jax.vmap(one))
        self._fns[k] = fn
        return fn

    def init_opt(self, spec: tuple, params, mask):
        return jax.vmap(lambda p, m: self._opt(spec, m).init(p))(params, mask)

    def train(self, params, mask, *, key, steps: int, opt: tuple, chunk_steps: int = 50) -> tuple[PyTree, np.ndarray]:
        """Train masked steps from ``params * mask``; returns ``(params, losses (S, steps'))``.

        The steps run as jitted scans of ``chunk_steps`` steps (one compiled program per
        optimiser, whatever ``steps``), so ``steps`` is rounded up to whole chunks.
        """
        params = jax.vmap(apply_mask)(params, mask)
        params, _, losses = self.resume(params, self.init_opt(opt, params, mask), mask, key=key, steps=steps,
                                        opt=opt, chunk_steps=chunk_steps)
        return params, losses

    def resume(self, params, opt_state, mask, *, key, steps: int, opt: tuple,
               chunk_steps: int = 50) -> tuple[PyTree, PyTree, np.ndarray]:
        """:meth:`train` from a given optimiser state; returns ``(params, opt_state, losses)``.

        This is what makes a long training resumable: save ``params`` and ``opt_state``
        after a call and continue with the next call's ``key`` (e.g. one call per
        epoch with ``fold_in(key, epoch)``). ``params`` are taken as they are (already
        masked).
        """
        S = jax.tree.leaves(params)[0].shape[0]
        keys = jax.random.split(key, S)
        chunk = max(1, min(int(chunk_steps), int(steps)))
        n_chunks = -(-int(steps) // chunk)
        batches = jax.vmap(lambda k: epoch_batches(k, self.train_idx, self.batch_size, n_chunks * chunk))(
            jax.vmap(_keys.prune_batches)(keys))
        fn = self._program(opt, False, False)
        out = []
        for c in range(n_chunks):
            params, opt_state, keys, losses = fn(params, opt_state, mask, keys, batches[:, c * chunk : (c + 1) * chunk])
            out.append(np.asarray(losses))
        return params, opt_state, np.concatenate(out, axis=1)

    def train_early_stopping(self, params, mask, *, key, val_idx, opt: tuple, max_steps: int, eval_every: int,
                             patience: int) -> "EarlyStopped":
        """Train to convergence with early stopping on a validation split, every replica on its own.

        The masked model is trained from ``params * mask``; the validation accuracy is
        measured at the start and after every ``eval_every`` steps. Each replica keeps
        the parameters of its best validation accuracy (strictly better than every
        earlier one); training ends when every replica has gone ``patience``
        evaluations without improving, or after ``max_steps`` (rounded up to whole
        evaluation intervals). One compiled program of ``eval_every`` steps.

        Args:
            params, mask: stacked ``(S, ...)`` parameters and mask.
            key: PRNG key (keyword-only) of the batch order and dropout.
            val_idx: the validation examples (never training examples).
            opt: optimiser spec, e.g. ``("adam", 5e-4)``.
            max_steps, eval_every, patience: the budget (all >= 1).

        Returns:
            An :class:`EarlyStopped`.
        """
        for name, v in (("max_steps", max_steps), ("eval_every", eval_every), ("patience", patience)):
            if int(v) < 1:
                raise ValueError(f"train_early_stopping: {name} must be >= 1, got {v}")
        val_idx = np.asarray(val_idx)
        if val_idx.size == 0:
            raise ValueError("train_early_stopping: val_idx is empty; hold a validation split out of the training images")
        if np.intersect1d(val_idx, self.train_idx).size:
            raise ValueError("train_early_stopping: val_idx overlaps the training split; early stopping would "
                             "select on training examples")
        S = jax.tree.leaves(params)[0].shape[0]
        n_evals = -(-int(max_steps) // int(eval_every))
        total = n_evals * int(eval_every)
        params = jax.vmap(apply_mask)(params, mask)
        opt_state = self.init_opt(opt, params, mask)
        keys = jax.random.split(key, S)
        batches = jax.vmap(lambda k: epoch_batches(k, self.train_idx, self.batch_size, total))(
            jax.vmap(_keys.prune_batches)(keys))
        fn = self._program(opt, False, False)
        best = params
        best_val = self.accuracy(params, mask, val_idx)
        best_step = np.zeros(S, np.int64)
        history = [best_val]
        waited = np.zeros(S, np.int64)
        steps_run = 0
        for c in range(n_evals):
            params, opt_state, keys, _ = fn(params, opt_state, mask, keys,
                                            batches[:, c * eval_every : (c + 1) * eval_every])
            steps_run += int(eval_every)
            val = self.accuracy(params, mask, val_idx)
            history.append(val)
            better = val > best_val
            pick = jnp.asarray(better)
            best = jax.tree.map(lambda b, p: jnp.where(pick.reshape((-1,) + (1,) * (p.ndim - 1)), p, b), best, params)
            best_val = np.where(better, val, best_val)
            best_step = np.where(better, steps_run, best_step)
            waited = np.where(better, 0, waited + 1)
            if (waited >= patience).all():
                break
        return EarlyStopped(best, best_step, best_val, steps_run, np.stack(history))

    def _record_loop(self, params, mask, *, key, steps: int, lr: float, chunk_steps: int, same_batch: bool,
                     start: Callable[[int, int, int, list[str], np.ndarray], None],
                     sink: Callable[[int, np.ndarray, np.ndarray, np.ndarray], None],
                     progress: Callable[[int], None] | None):
        """Plain SGD for ``steps + 1`` steps (whole chunks); each chunk goes to ``sink`` on the host."""
        if chunk_steps < 1:
            raise ValueError(f"record: chunk_steps must be >= 1, got {chunk_steps}")
        S = jax.tree.leaves(params)[0].shape[0]
        spec = ("sgd", float(lr))
        params = jax.vmap(apply_mask)(params, mask)
        opt_state = self.init_opt(spec, params, mask)
        keys = jax.random.split(key, S)
        n_chunks = -(-(steps + 1) // chunk_steps)
        total = n_chunks * chunk_steps          # whole chunks: at least steps + 1 rows
        batches = jax.vmap(lambda k: epoch_batches(k, self.train_idx, self.batch_size, total))(
            jax.vmap(_keys.prune_batches)(keys))
        unstacked = jax.tree.map(lambda x: x[0], params)
        sizes = [int(np.size(x)) for x in flatten_prunable(unstacked, self.which)]
        from hgcnet_jax.prune.masks import layer_names

        names = layer_names(unstacked, self.which)
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        start(S, total, int(offsets[-1]), names, offsets)
        fn = self._program(spec, True, same_batch)
        for c in range(n_chunks):
            b = batches[:, c * chunk_steps : (c + 1) * chunk_steps]
            params, opt_state, keys, (l, la, d) = fn(params, opt_state, mask, keys, b)
            sink(c * chunk_steps, np.asarray(d), np.asarray(l), np.asarray(la))
            if progress is not None:
                progress(chunk_steps)
        return params

    def record(self, params, mask, *, key, steps: int, lr: float, chunk_steps: int = 8,
               same_batch: bool = False, progress: Callable[[int], None] | None = None) -> tuple[PyTree, Recording]:
        """Plain SGD for ``steps + 1`` steps (rounded up to whole chunks), keeping every Δθ on the host.

        Memory: ``4·S·(T+1)·P`` bytes (see the module docstring); :meth:`record_stats`
        streams instead.
        """
        box: dict = {}

        def start(S, total, P, names, offsets):
            box["deltas"] = np.empty((S, total, P), np.float32)
            box["losses"] = np.empty((S, total), np.float32)
            box["after"] = np.full((S, total), np.nan, np.float32)
            box["slices"] = {n: slice(int(offsets[i]), int(offsets[i + 1])) for i, n in enumerate(names)}

        def sink(lo, d, l, la):
            hi = lo + d.shape[1]
            box["deltas"][:, lo:hi] = d
            box["losses"][:, lo:hi] = l
            box["after"][:, lo:hi] = la

        params = self._record_loop(params, mask, key=key, steps=steps, lr=lr, chunk_steps=chunk_steps,
                                   same_batch=same_batch, start=start, sink=sink, progress=progress)
        return params, Recording(box["losses"], box["after"], box["deltas"], box["slices"], float(lr))

    def record_stats(self, params, mask, *, key, steps: int, lr: float, scope: str = "global",
                     target: str = "same_batch", features: str = "sq", chunk_steps: int = 8,
                     gram_max_features: int = 1024, spill_dir: str | None = None,
                     progress: Callable[[int], None] | None = None) -> tuple[PyTree, GrangerStats]:
        """Like :meth:`record` (same steps, same trajectory for the same key), but streaming.

        Each chunk is folded into :class:`GrangerStats` as it arrives (module docstring:
        what is kept and the memory bound).

        Args:
            scope: the fit groups: ``"global"`` (one group of all prunable weights) or
                ``"layer"`` (one per prunable leaf; also what the structured fit uses).
            target, features: the regression (:meth:`Recording.design`).
            gram_max_features: groups with at most this many feature columns keep their
                Gram matrix (``8·p²`` bytes per replica); larger ones keep their columns.
            spill_dir: keep the columns of the large groups in a memory-mapped file in
                this folder (deleted when the statistics are garbage-collected) instead
                of host memory.
        """
        if scope not in ("global", "layer"):
            raise ValueError(f"record_stats: scope must be 'global' or 'layer', got {scope!r}")
        n_rows(steps + 1, target=target, features=features)          # validates target / features
        box: dict = {}

        def start(S, total, P, names, offsets):
            groups = ({"all": slice(0, P)} if scope == "global"
                      else {n: slice(int(offsets[i]), int(offsets[i + 1])) for i, n in enumerate(names)})
            box["acc"] = _StatsAccumulator(S, total, P, groups, target=target, features=features,
                                           gram_max_features=gram_max_features, lr=lr, spill_dir=spill_dir)

        params = self._record_loop(params, mask, key=key, steps=steps, lr=lr, chunk_steps=chunk_steps,
                                   same_batch=target == "same_batch", start=start,
                                   sink=lambda lo, d, l, la: box["acc"].push(lo, d, l, la), progress=progress)
        return params, box["acc"].finish()

    def accuracy(self, params, mask, idx) -> np.ndarray:
        """Eval-mode accuracy of every replica on ``idx``."""
        k = ("acc",)
        if k not in self._fns:
            self._fns[k] = jax.jit(jax.vmap(lambda p, m, i: self.task.accuracy(apply_mask(p, m), i), in_axes=(0, 0, None)))
        return np.asarray(self._fns[k](params, mask, jnp.asarray(idx)))
