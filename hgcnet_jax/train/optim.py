r"""The optimiser every training loop of the package runs: one optax transformation.

SGD, heavy-ball momentum and Adam in one :class:`optax.GradientTransformation` whose
hyperparameters may be traced arrays, so that the sweep selects the optimiser *per
replica* inside one compiled program (``is_adam`` is a 0/1 value of the replica axis,
not a Python branch), and pruning's :class:`~hgcnet_jax.prune.Trainer` runs the very
same update:

.. math::

    \mu &\leftarrow \begin{cases} \beta_1 \mu + (1-\beta_1) g & \text{adam} \\
        \beta \mu + g & \text{sgd } (\beta = 0)\text{, momentum} \end{cases} \qquad
    \nu \leftarrow \beta_2 \nu + (1-\beta_2) g^2 \text{ (adam)} \\
    \Delta\theta &= -\eta \Bigl(u + \lambda\, m \odot \theta\Bigr), \qquad
    u = \begin{cases} \hat\mu / (\sqrt{\hat\nu} + \epsilon) & \text{adam} \\ \mu & \text{otherwise} \end{cases}

with Adam's bias corrections :math:`\hat\mu = \mu / (1-\beta_1^t)`, :math:`\hat\nu =
\nu / (1-\beta_2^t)` (optax's ``adam`` with its defaults), and decoupled weight decay
:math:`\lambda` on the leaves where ``decay_mask`` is 1 (AdamW's form; for SGD it is
plain L2 shrinkage). The state is :class:`ReplicaOptState`, the same for every kind,
so replicas of different optimisers share one carry layout.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, ArrayLike, Int

__all__ = ["ReplicaOptState", "replica_optimizer", "B1", "B2", "EPS"]

#: Adam's constants (optax's defaults).
B1, B2, EPS = 0.9, 0.999, 1e-8


class ReplicaOptState(NamedTuple):
    """First and second moments and the step count (the second moment stays 0 without Adam)."""

    mu: Any
    nu: Any
    count: Int[Array, ""]


def replica_optimizer(
    lr: ArrayLike,
    *,
    momentum: ArrayLike = 0.0,
    is_adam: ArrayLike = False,
    weight_decay: ArrayLike = 0.0,
    decay_mask: Any = None,
) -> optax.GradientTransformation:
    """SGD / momentum / Adam (module docstring) as one optax transformation.

    Every argument may be a traced scalar, so the transformation can be built inside a
    jitted, vmapped step from the replica's own hyperparameters.

    Args:
        lr: the learning rate :math:`\\eta`.
        momentum: heavy-ball :math:`\\beta` (ignored by Adam).
        is_adam: true for Adam.
        weight_decay: decoupled decay :math:`\\lambda`.
        decay_mask: a pytree like the params of 0/1 (which leaves decay); default all.

    Returns:
        An :class:`optax.GradientTransformation` with state :class:`ReplicaOptState`.
    """
    adam = jnp.asarray(is_adam) > 0

    def init(params):
        zeros = jax.tree.map(jnp.zeros_like, params)
        return ReplicaOptState(zeros, zeros, jnp.zeros((), jnp.int32))

    def update(grads, state, params=None):
        count = state.count + 1
        mu = jax.tree.map(lambda m, g: jnp.where(adam, B1 * m + (1 - B1) * g, momentum * m + g), state.mu, grads)
        nu = jax.tree.map(lambda v, g: jnp.where(adam, B2 * v + (1 - B2) * g * g, v), state.nu, grads)
        cf = count.astype(jnp.float32)
        bc1, bc2 = 1 - B1**cf, 1 - B2**cf
        u = jax.tree.map(lambda m, v: jnp.where(adam, (m / bc1) / (jnp.sqrt(v / bc2) + EPS), m), mu, nu)
        if params is None:
            updates = jax.tree.map(lambda ui: -lr * ui, u)
        else:
            dm = jax.tree.map(lambda p: jnp.ones((), p.dtype), params) if decay_mask is None else decay_mask
            updates = jax.tree.map(lambda ui, p, m: -lr * ui - lr * weight_decay * m * p, u, params, dm)
        return updates, ReplicaOptState(mu, nu, count)

    return optax.GradientTransformation(init, update)
