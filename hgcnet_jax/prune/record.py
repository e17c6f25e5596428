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

**Memory bound.** The steps are run by a jitted ``lax.scan`` over chunks of
``chunk_steps`` steps, vmapped over the ``S`` replicas; each chunk's
:math:`\Delta\theta` (``S × chunk_steps × P`` float32 on the device) is copied into a
host buffer of ``S × (T + 1) × P`` float32, where ``P`` counts only prunable weights
and ``T`` is the number of recorded steps. So the recording phase needs
``4·S·(T+1)·P + 4·S·chunk_steps·P`` bytes beyond training itself — for LeNet-5
(P = 61,470), T = 188, S = 3: 139 MB + 5.9 MB at ``chunk_steps=8``. The Lasso then needs
one ``T × P_layer`` slice per fit (a view, no copy for ``features="sq"``). The Gram
alternative (:func:`hgcnet_jax.prune.lasso_gram`, :math:`O(P^2)` whatever ``T``) only
pays off for layers with :math:`P < T`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from hgcnet_jax.prune.masks import apply_mask, flatten_prunable, masked

__all__ = ["Recording", "Trainer", "epoch_batches"]

PyTree = Any


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
            rows = slice(0, d.shape[0] - 1)
        elif target == "same_batch":
            if np.all(np.isnan(self.losses_after[replica])):
                raise ValueError("Recording.design: target='same_batch' needs record(..., same_batch=True)")
            y = self.losses_after[replica].astype(np.float64) - L
            rows = slice(0, d.shape[0])
        else:
            raise ValueError(f"Recording.design: target must be 'consecutive' or 'same_batch', got {target!r}")
        if features == "sq":
            X = np.square(d[rows])
        elif features == "momentum":
            n = y.shape[0] - 1 if target == "same_batch" else y.shape[0] - 1
            a, b = d[:n], d[1 : n + 1]
            X = np.concatenate([a * a, b * b, a * b], axis=1)
            y = y[:n]
        else:
            raise ValueError(f"Recording.design: features must be 'sq' or 'momentum', got {features!r}")
        return X, y


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
        kind, lr = spec
        base = optax.sgd(lr) if kind == "sgd" else optax.adam(lr)
        return masked(base, mask)

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
        S = jax.tree.leaves(params)[0].shape[0]
        params = jax.vmap(apply_mask)(params, mask)
        opt_state = self.init_opt(opt, params, mask)
        keys = jax.random.split(key, S)
        chunk = max(1, min(int(chunk_steps), int(steps)))
        n_chunks = -(-int(steps) // chunk)
        batches = jax.vmap(lambda k: epoch_batches(k, self.train_idx, self.batch_size, n_chunks * chunk))(
            jax.vmap(lambda k: jax.random.fold_in(k, 1))(keys))
        fn = self._program(opt, False, False)
        out = []
        for c in range(n_chunks):
            params, opt_state, keys, losses = fn(params, opt_state, mask, keys, batches[:, c * chunk : (c + 1) * chunk])
            out.append(np.asarray(losses))
        return params, np.concatenate(out, axis=1)

    def record(self, params, mask, *, key, steps: int, lr: float, chunk_steps: int = 8,
               same_batch: bool = False, progress: Callable[[int], None] | None = None) -> tuple[PyTree, Recording]:
        """Plain SGD for ``steps + 1`` steps (rounded up to whole chunks), streaming the recordings to the host."""
        if chunk_steps < 1:
            raise ValueError(f"record: chunk_steps must be >= 1, got {chunk_steps}")
        S = jax.tree.leaves(params)[0].shape[0]
        spec = ("sgd", float(lr))
        params = jax.vmap(apply_mask)(params, mask)
        opt_state = self.init_opt(spec, params, mask)
        keys = jax.random.split(key, S)
        n_chunks = -(-(steps + 1) // chunk_steps)
        total = n_chunks * chunk_steps          # whole chunks: at least steps + 1 rows
        batches = jax.vmap(lambda k: epoch_batches(k, self.train_idx, self.batch_size, n_chunks * chunk_steps))(
            jax.vmap(lambda k: jax.random.fold_in(k, 1))(keys))
        unstacked = jax.tree.map(lambda x: x[0], params)
        sizes = [int(np.size(x)) for x in flatten_prunable(unstacked, self.which)]
        from hgcnet_jax.prune.masks import layer_names

        names = layer_names(unstacked, self.which)
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        P = int(offsets[-1])
        deltas = np.empty((S, total, P), np.float32)
        losses = np.empty((S, total), np.float32)
        after = np.full((S, total), np.nan, np.float32)
        fn = self._program(spec, True, same_batch)
        for c in range(n_chunks):
            b = batches[:, c * chunk_steps : (c + 1) * chunk_steps]
            params, opt_state, keys, (l, la, d) = fn(params, opt_state, mask, keys, b)
            lo, hi = c * chunk_steps, (c + 1) * chunk_steps
            deltas[:, lo:hi] = np.asarray(d)
            losses[:, lo:hi] = np.asarray(l)
            after[:, lo:hi] = np.asarray(la)
            if progress is not None:
                progress(hi - lo)
        slices = {n: slice(int(offsets[i]), int(offsets[i + 1])) for i, n in enumerate(names)}
        return params, Recording(losses, after, deltas, slices, float(lr))

    def accuracy(self, params, mask, idx) -> np.ndarray:
        """Eval-mode accuracy of every replica on ``idx``."""
        k = ("acc",)
        if k not in self._fns:
            self._fns[k] = jax.jit(jax.vmap(lambda p, m, i: self.task.accuracy(apply_mask(p, m), i), in_axes=(0, 0, None)))
        return np.asarray(self._fns[k](params, mask, jnp.asarray(idx)))
