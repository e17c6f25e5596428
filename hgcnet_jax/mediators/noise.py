"""Gradient noise: per-example gradient statistics, the noise scales, the SGD temperature.

Notation (McCandlish, Kaplan, Amodei et al. 2018, "An Empirical Model of Large-Batch
Training", App. A): :math:`g_i = \\nabla\\ell_i(\\theta)` the per-example gradients of a
data set regarded as a sample from the data distribution, :math:`G = \\mathbb E[g_i]` the
true gradient, :math:`\\Sigma = \\operatorname{Cov}[g_i]` the per-example covariance, and
:math:`H` the Hessian of the mean loss. A minibatch gradient of size :math:`B` has mean
:math:`G` and covariance :math:`\\Sigma/B`.

* simple noise scale :math:`B_\\text{simple} = \\operatorname{tr}\\Sigma / |G|^2`;
* noise scale :math:`B_\\text{noise} = \\operatorname{tr}(H\\Sigma) / (G^\\top H G)`, the batch
  size at which the optimal step's loss decrease is half its full-batch value;
* SGD temperature :math:`T = \\varepsilon / B` (Smith & Le 2018; Jastrzębski et al. 2017),
  :math:`\\varepsilon N / B` when scaled by the training-set size :math:`N`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from hgcnet_jax.curvature.hvp import DataLoss, _dtype_of, _leading_size, chunk_data, hvp

__all__ = [
    "GradientNoise",
    "per_example_gradients",
    "gradient_noise",
    "two_batch_estimates",
    "two_batch_noise",
    "sgd_temperature",
]

PyTree = Any


class GradientNoise(NamedTuple):
    """Gradient-noise statistics.

    Attributes:
        grad_norm_sq: unbiased estimate of :math:`|G|^2` (may be negative when noise dominates).
        trace_cov: unbiased estimate of :math:`\\operatorname{tr}\\Sigma`.
        b_simple: ``trace_cov / grad_norm_sq``.
        grad_hess_grad: unbiased estimate of :math:`G^\\top H G` (NaN if not computed).
        trace_hess_cov: unbiased estimate of :math:`\\operatorname{tr}(H\\Sigma)` (NaN if not computed).
        b_noise: ``trace_hess_cov / grad_hess_grad`` (NaN if not computed).
        num_examples: examples used.
    """

    grad_norm_sq: Float[Array, ""]
    trace_cov: Float[Array, ""]
    b_simple: Float[Array, ""]
    grad_hess_grad: Float[Array, ""]
    trace_hess_cov: Float[Array, ""]
    b_noise: Float[Array, ""]
    num_examples: Int[Array, ""]


def _sq_norm(tree) -> Array:
    return sum(jnp.sum(jnp.square(x)) for x in jax.tree_util.tree_leaves(tree))


def _vdot(a, b) -> Array:
    return sum(jnp.sum(x * y) for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True))


def per_example_gradients(
    per_example_loss: Callable[[PyTree, PyTree], Float[Array, " b"]],
    params: PyTree,
    batch: PyTree,
    *,
    separable: bool = True,
) -> PyTree:
    """Gradients of every example's loss: a pytree like ``params`` with a leading axis ``b``.

    Args:
        per_example_loss: ``(params, batch) -> (b,)`` losses.
        params: the point.
        batch: pytree with a leading example axis ``b``.
        separable: ``True`` when each loss depends on its own example only (images,
            text, tabular): ``vmap`` of ``grad`` over single examples, cost ``O(b)``
            passes on one example. ``False`` for node tasks, where every node's loss
            needs the full-graph forward: the Jacobian of the loss vector by reverse mode
            (one shared forward, ``b`` backward passes, ``vmap``-ed).

    Returns:
        The per-example gradients.
    """
    if separable:

        def single(ex):
            one = jax.tree_util.tree_map(lambda x: x[None], ex)
            return jax.grad(lambda p: per_example_loss(p, one)[0])(params)

        return jax.vmap(single)(batch)
    return jax.jacrev(lambda p: per_example_loss(p, batch))(params)


def gradient_noise(
    per_example_loss: Callable[[PyTree, PyTree], Float[Array, " b"]],
    params: PyTree,
    data: PyTree,
    *,
    chunk_size: int | None = None,
    separable: bool = True,
    hessian: bool = False,
    num_probes: int = 8,
    key: Array | None = None,
) -> GradientNoise:
    r"""Per-example gradient statistics and the noise scales, accumulated in chunks.

    With :math:`\bar g = \frac1n\sum_i g_i` and :math:`d_i = g_i - \bar g`:

    * :math:`\widehat{\operatorname{tr}\Sigma} = \frac{1}{n-1}\sum_i |d_i|^2`
      (unbiased for :math:`\operatorname{tr}\Sigma`),
    * :math:`\widehat{|G|^2} = |\bar g|^2 - \widehat{\operatorname{tr}\Sigma}/n`
      (unbiased, since :math:`\mathbb E|\bar g|^2 = |G|^2 + \operatorname{tr}\Sigma/n`),
    * with ``hessian=True``, :math:`\widehat{\operatorname{tr}(H\Sigma)} = \frac{1}{n-1}\,
      \mathbb E_z\big[u_z^\top H u_z\big]`, :math:`u_z = \sum_i z_i d_i` with Rademacher
      :math:`z\in\{\pm1\}^n` (a Hutchinson estimate of :math:`\sum_i d_i^\top H d_i`
      in example space: one gradient and one HVP per probe), and
      :math:`\widehat{G^\top H G} = \bar g^\top H \bar g - \widehat{\operatorname{tr}(H\Sigma)}/n`.

    :math:`H` is the Hessian of the mean loss over ``data``. Memory: one chunk's
    per-example gradients (``chunk_size × P``).

    Args:
        per_example_loss: ``(params, batch) -> (b,)`` losses.
        params: the point.
        data: pytree with a leading example axis (n ≥ 2).
        chunk_size: examples per chunk (``None``: all at once).
        separable: see :func:`per_example_gradients`.
        hessian: also estimate ``trace_hess_cov``, ``grad_hess_grad`` and ``b_noise``.
        num_probes: Rademacher probes for :math:`\operatorname{tr}(H\Sigma)`.
        key: PRNG key; required when ``hessian=True``.

    Returns:
        :class:`GradientNoise`.

    Raises:
        ValueError: for fewer than 2 examples, or ``hessian=True`` without a key.
    """
    n = _leading_size(data, "gradient_noise: data")
    if n < 2:
        raise ValueError("gradient_noise: data needs at least 2 examples to estimate a covariance")
    if hessian and key is None:
        raise ValueError("gradient_noise: hessian=True needs a PRNG `key` for the tr(HΣ) probes")
    if hessian and (not isinstance(num_probes, int) or num_probes < 1):
        raise ValueError(f"gradient_noise: num_probes must be a positive int, got {num_probes!r}")
    dtype = _dtype_of(params)
    cs = n if chunk_size is None else min(chunk_size, n)
    chunks, mask = chunk_data(data, jnp.ones((n,), dtype), cs)

    def step(acc, c):
        batch, m = c
        g = per_example_gradients(per_example_loss, params, batch, separable=separable)
        gsum = jax.tree_util.tree_map(lambda x: jnp.tensordot(m, x, axes=1), g)
        sq = sum(jnp.sum(m * jnp.sum(jnp.square(x).reshape(x.shape[0], -1), axis=1)) for x in jax.tree_util.tree_leaves(g))
        return (jax.tree_util.tree_map(jnp.add, acc[0], gsum), acc[1] + sq), None

    zero = (jax.tree_util.tree_map(jnp.zeros_like, params), jnp.zeros((), dtype))
    (gsum, sqsum), _ = jax.lax.scan(step, zero, (chunks, mask))
    gbar = jax.tree_util.tree_map(lambda x: x / n, gsum)
    gbar_sq = _sq_norm(gbar)
    trace_cov = (sqsum - n * gbar_sq) / (n - 1)
    grad_norm_sq = gbar_sq - trace_cov / n
    nan = jnp.full((), jnp.nan, dtype)
    ghg = thc = b_noise = nan
    if hessian:
        loss = DataLoss(per_example_loss, data, chunk_size=chunk_size)
        Z = jax.random.rademacher(key, (num_probes, n), dtype)

        def probe(z):
            zc, _ = chunk_data(z, jnp.ones((n,), dtype), cs)
            zc = jnp.where(mask > 0, zc, 0.0)

            def acc_step(acc, c):
                batch, zz = c
                g = jax.grad(lambda p: jnp.sum(zz * per_example_loss(p, batch)))(params)
                return jax.tree_util.tree_map(jnp.add, acc, g), None

            jz = jax.lax.scan(acc_step, jax.tree_util.tree_map(jnp.zeros_like, params), (chunks, zc))[0]
            u = jax.tree_util.tree_map(lambda a, b: a - jnp.sum(z) * b, jz, gbar)
            return _vdot(u, hvp(loss, params, u))

        thc = jnp.mean(jax.lax.map(probe, Z)) / (n - 1)
        ghg = _vdot(gbar, hvp(loss, params, gbar)) - thc / n
        b_noise = thc / ghg
    return GradientNoise(grad_norm_sq, trace_cov, trace_cov / grad_norm_sq, ghg, thc, b_noise, jnp.asarray(n))


def two_batch_estimates(
    sq_norm_small: Float[Array, "..."],
    sq_norm_big: Float[Array, "..."],
    b_small: int | float,
    b_big: int | float,
) -> tuple[Float[Array, "..."], Float[Array, "..."]]:
    r"""McCandlish et al.'s (2018, App. A.1) unbiased estimators from two batch sizes.

    With :math:`\mathbb E|G_B|^2 = |G|^2 + \operatorname{tr}\Sigma / B` for a batch of
    :math:`B` examples drawn with replacement:

    .. math::
        \widehat{|G|^2} = \frac{B_\text{big}|G_\text{big}|^2 - B_\text{small}|G_\text{small}|^2}
                               {B_\text{big} - B_\text{small}},\qquad
        \widehat{\operatorname{tr}\Sigma} = \frac{|G_\text{small}|^2 - |G_\text{big}|^2}
                               {1/B_\text{small} - 1/B_\text{big}}.

    Args:
        sq_norm_small: :math:`|G_\text{small}|^2` (any shape; elementwise).
        sq_norm_big: :math:`|G_\text{big}|^2`.
        b_small: the small batch size.
        b_big: the big batch size (``> b_small``).

    Returns:
        ``(grad_norm_sq, trace_cov)``.

    Raises:
        ValueError: unless ``0 < b_small < b_big``.
    """
    if not (0 < b_small < b_big):
        raise ValueError(f"two_batch_estimates: need 0 < b_small < b_big, got b_small={b_small}, b_big={b_big}")
    g2 = (b_big * sq_norm_big - b_small * sq_norm_small) / (b_big - b_small)
    s = (sq_norm_small - sq_norm_big) / (1.0 / b_small - 1.0 / b_big)
    return g2, s


def two_batch_noise(
    per_example_loss: Callable[[PyTree, PyTree], Float[Array, " b"]],
    params: PyTree,
    data: PyTree,
    *,
    b_small: int,
    b_big: int,
    key: Array,
    num_pairs: int = 1,
) -> tuple[Float[Array, ""], Float[Array, ""]]:
    r"""Two-batch estimates of :math:`|G|^2` and :math:`\operatorname{tr}\Sigma` from minibatch gradients.

    Draws ``num_pairs`` pairs of batches of sizes ``b_small`` and ``b_big`` with
    replacement from ``data`` (so the population is the data set, with
    :math:`\Sigma` normalised by ``n``), takes the gradients of their mean losses and
    averages :func:`two_batch_estimates` over the pairs. Only ordinary minibatch
    gradients are needed, no per-example gradients, which is why McCandlish et al.
    use it during training.

    Args:
        per_example_loss: ``(params, batch) -> (b,)`` losses (their mean is the batch loss).
        params: the point.
        data: pytree with a leading example axis.
        b_small: small batch size.
        b_big: big batch size.
        key: PRNG key (keyword-only).
        num_pairs: number of independent pairs averaged.

    Returns:
        ``(grad_norm_sq, trace_cov)``.

    Raises:
        ValueError: for bad batch sizes or ``num_pairs``.
    """
    n = _leading_size(data, "two_batch_noise: data")
    if not isinstance(num_pairs, int) or num_pairs < 1:
        raise ValueError(f"two_batch_noise: num_pairs must be a positive int, got {num_pairs!r}")
    two_batch_estimates(0.0, 0.0, b_small, b_big)  # validates the sizes

    def sq(k, b):
        idx = jax.random.randint(k, (b,), 0, n)
        batch = jax.tree_util.tree_map(lambda x: jnp.take(x, idx, axis=0), data)
        return _sq_norm(jax.grad(lambda p: jnp.mean(per_example_loss(p, batch)))(params))

    def pair(k):
        k1, k2 = jax.random.split(k)
        return two_batch_estimates(sq(k1, b_small), sq(k2, b_big), b_small, b_big)

    g2, s = jax.lax.map(pair, jax.random.split(key, num_pairs))
    return jnp.mean(g2), jnp.mean(s)


def sgd_temperature(lr: Any, batch_size: Any, num_train: Any | None = None) -> Any:
    r"""SGD noise temperature :math:`T = \varepsilon/B`, or :math:`\varepsilon N/B` given ``num_train``.

    Smith & Le (2018, "A Bayesian perspective on generalization and stochastic gradient
    descent") show the SGD noise scale :math:`g = \varepsilon(N/B - 1) \approx \varepsilon N/B`
    for :math:`B \ll N`; Jastrzębski et al. (2017) call :math:`\varepsilon/B` the temperature.
    Works elementwise on arrays, pandas Series and scalars.
    """
    t = lr / batch_size
    return t if num_train is None else t * num_train
