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
    "TrajectoryNoise",
    "trajectory_noise",
]

PyTree = Any


class GradientNoise(NamedTuple):
    """Gradient-noise statistics, each with its standard error.

    Attributes:
        grad_norm_sq: unbiased estimate of :math:`|G|^2` (may be zero or negative when
            noise dominates: it is a difference of two positive terms).
        trace_cov: unbiased estimate of :math:`\\operatorname{tr}\\Sigma` (never negative).
        b_simple: the simple noise scale from estimates whose sign is guaranteed,
            :math:`\\widehat{\\operatorname{tr}\\Sigma}/|\\bar g|^2 \\ge 0` (see
            :func:`gradient_noise`); never negative, finite unless every gradient is zero.
        grad_hess_grad: unbiased estimate of :math:`G^\\top H G` (NaN if not computed).
        trace_hess_cov: unbiased estimate of :math:`\\operatorname{tr}(H\\Sigma)` (NaN if not computed).
        b_noise: ``trace_hess_cov / grad_hess_grad`` where both are positive, else NaN: an
            explicit missing value, never a negative scale (NaN if not computed).
        num_examples: examples used.
        grad_norm_sq_se, trace_cov_se, b_simple_se: bootstrap standard errors over the
            examples (NaN when ``num_bootstrap=0``).
        trace_hess_cov_se: Monte-Carlo error of the Rademacher probes.
        grad_hess_grad_se, b_noise_se: delta-method errors (see :func:`gradient_noise`).
    """

    grad_norm_sq: Float[Array, ""]
    trace_cov: Float[Array, ""]
    b_simple: Float[Array, ""]
    grad_hess_grad: Float[Array, ""]
    trace_hess_cov: Float[Array, ""]
    b_noise: Float[Array, ""]
    num_examples: Int[Array, ""]
    grad_norm_sq_se: Float[Array, ""] | None = None
    trace_cov_se: Float[Array, ""] | None = None
    b_simple_se: Float[Array, ""] | None = None
    grad_hess_grad_se: Float[Array, ""] | None = None
    trace_hess_cov_se: Float[Array, ""] | None = None
    b_noise_se: Float[Array, ""] | None = None


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
    num_bootstrap: int = 0,
    key: Array | None = None,
) -> GradientNoise:
    r"""Per-example gradient statistics and the noise scales, with their errors, accumulated in chunks.

    With :math:`\bar g = \frac1n\sum_i g_i` and :math:`d_i = g_i - \bar g`:

    * :math:`\widehat{\operatorname{tr}\Sigma} = \frac{1}{n-1}\sum_i |d_i|^2`
      (unbiased for :math:`\operatorname{tr}\Sigma`, never negative),
    * :math:`\widehat{|G|^2} = |\bar g|^2 - \widehat{\operatorname{tr}\Sigma}/n`
      (unbiased, since :math:`\mathbb E|\bar g|^2 = |G|^2 + \operatorname{tr}\Sigma/n`;
      it is negative whenever the noise dominates the mean),
    * :math:`\hat B_\text{simple} = \widehat{\operatorname{tr}\Sigma} / |\bar g|^2`: a ratio
      of two estimates whose sign is guaranteed, so it is never negative and never
      undefined (unless every gradient is exactly zero). It is consistent for
      :math:`\operatorname{tr}\Sigma / (|G|^2 + \operatorname{tr}\Sigma/n)`, i.e.
      :math:`1/\hat B_\text{simple} \to 1/B_\text{simple} + 1/n`: the same increasing map
      of :math:`B_\text{simple}` for every run measured on the same ``n`` examples, equal to
      it up to a factor :math:`1/(1 + B_\text{simple}/n)`. The bias-corrected ratio,
      ``trace_cov / grad_norm_sq``, can be formed from the two columns where it is defined.
    * with ``hessian=True``, :math:`\widehat{\operatorname{tr}(H\Sigma)} = \frac{1}{n-1}\,
      \mathbb E_z\big[u_z^\top H u_z\big]`, :math:`u_z = \sum_i z_i d_i` with Rademacher
      :math:`z\in\{\pm1\}^n` (a Hutchinson estimate of :math:`\sum_i d_i^\top H d_i`
      in example space: one gradient and one HVP per probe), and
      :math:`\widehat{G^\top H G} = \bar g^\top H \bar g - \widehat{\operatorname{tr}(H\Sigma)}/n`;
      ``b_noise`` is their ratio where both are positive, else NaN (:math:`H` is
      indefinite away from a minimum, so no sign is guaranteed: an undefined value is
      reported as missing, never as a negative scale).

    Errors. With ``num_bootstrap = K > 0``, ``grad_norm_sq_se``, ``trace_cov_se`` and
    ``b_simple_se`` are Poisson-bootstrap standard errors over the examples (Hanley &
    MacGibbon 2006): every example gets ``K`` independent Poisson(1) weights, the weighted
    sums ride along the same pass over the per-example gradients (``K × P`` more numbers,
    no second pass), and the standard error is the spread of the ``K`` re-estimates.
    ``trace_hess_cov_se`` is the Monte-Carlo error of the probes (their spread over
    :math:`\sqrt{\text{probes}}`); ``grad_hess_grad_se`` adds to it (divided by ``n``) the
    sampling error of :math:`\bar g^\top H\bar g`, :math:`2\sqrt{(H\bar g)^\top\hat\Sigma (H\bar g)/n}`
    (one forward-mode pass for :math:`d_i^\top H\bar g`), and ``b_noise_se`` is the delta
    method on the two, their covariance neglected.

    :math:`H` is the Hessian of the mean loss over ``data``. Memory: one chunk's
    per-example gradients (``chunk_size × P``) plus ``K × P`` for the bootstrap.

    Args:
        per_example_loss: ``(params, batch) -> (b,)`` losses.
        params: the point.
        data: pytree with a leading example axis (n ≥ 2).
        chunk_size: examples per chunk (``None``: all at once).
        separable: see :func:`per_example_gradients`.
        hessian: also estimate ``trace_hess_cov``, ``grad_hess_grad`` and ``b_noise``.
        num_probes: Rademacher probes for :math:`\operatorname{tr}(H\Sigma)`.
        num_bootstrap: bootstrap replicates for the standard errors (0: none, NaN errors).
        key: PRNG key; required when ``hessian=True`` or ``num_bootstrap > 0``.

    Returns:
        :class:`GradientNoise`.

    Raises:
        ValueError: for fewer than 2 examples, or ``hessian=True`` / ``num_bootstrap > 0``
            without a key.
    """
    n = _leading_size(data, "gradient_noise: data")
    if n < 2:
        raise ValueError("gradient_noise: data needs at least 2 examples to estimate a covariance")
    if hessian and key is None:
        raise ValueError("gradient_noise: hessian=True needs a PRNG `key` for the tr(HΣ) probes")
    if hessian and (not isinstance(num_probes, int) or num_probes < 1):
        raise ValueError(f"gradient_noise: num_probes must be a positive int, got {num_probes!r}")
    if isinstance(num_bootstrap, bool) or not isinstance(num_bootstrap, int) or num_bootstrap < 0:
        raise ValueError(f"gradient_noise: num_bootstrap must be an int >= 0, got {num_bootstrap!r}")
    if num_bootstrap and key is None:
        raise ValueError("gradient_noise: num_bootstrap > 0 needs a PRNG `key` for the bootstrap weights")
    dtype = _dtype_of(params)
    cs = n if chunk_size is None else min(chunk_size, n)
    chunks, mask = chunk_data(data, jnp.ones((n,), dtype), cs)
    K = num_bootstrap
    k_probe, k_boot = jax.random.split(key) if key is not None else (None, None)
    nan = jnp.full((), jnp.nan, dtype)

    def step(acc, c):
        batch, m, ci = c
        g = per_example_gradients(per_example_loss, params, batch, separable=separable)
        sq_i = m * sum(jnp.sum(jnp.square(x).reshape(x.shape[0], -1), axis=1) for x in jax.tree_util.tree_leaves(g))
        gsum = jax.tree_util.tree_map(lambda x: jnp.tensordot(m, x, axes=1), g)
        new = [jax.tree_util.tree_map(jnp.add, acc[0], gsum), acc[1] + jnp.sum(sq_i)]
        if K:
            W = m * jax.random.poisson(jax.random.fold_in(k_boot, ci), 1.0, (K, cs)).astype(dtype)
            new += [
                jax.tree_util.tree_map(lambda a, x: a + jnp.tensordot(W, x, axes=1), acc[2], g),
                acc[3] + W @ sq_i,
                acc[4] + jnp.sum(W, axis=1),
            ]
        return tuple(new), None

    zero = (jax.tree_util.tree_map(jnp.zeros_like, params), jnp.zeros((), dtype))
    if K:
        zero += (jax.tree_util.tree_map(lambda x: jnp.zeros((K,) + x.shape, x.dtype), params),
                 jnp.zeros((K,), dtype), jnp.zeros((K,), dtype))
    acc, _ = jax.lax.scan(step, zero, (chunks, mask, jnp.arange(mask.shape[0])))
    gsum, sqsum = acc[0], acc[1]
    gbar = jax.tree_util.tree_map(lambda x: x / n, gsum)
    gbar_sq = _sq_norm(gbar)
    trace_cov = (sqsum - n * gbar_sq) / (n - 1)
    grad_norm_sq = gbar_sq - trace_cov / n
    b_simple = trace_cov / gbar_sq
    g2_se = tc_se = bs_se = nan
    if K:
        bsum, bsq, bn = acc[2], acc[3], acc[4]
        bn_safe = jnp.maximum(bn, 2.0)  # a replicate with < 2 examples (tiny n) is left out below
        bg_sq = sum(jnp.sum(jnp.square(x).reshape(K, -1), axis=1) for x in jax.tree_util.tree_leaves(bsum)) / bn_safe**2
        btc = (bsq - bn_safe * bg_sq) / (bn_safe - 1)
        ok = bn >= 2

        def se(x):
            x = jnp.where(ok, x, jnp.nan)
            return jnp.nanstd(x, ddof=1)

        g2_se, tc_se, bs_se = se(bg_sq - btc / bn_safe), se(btc), se(btc / bg_sq)
    ghg = thc = b_noise = ghg_se = thc_se = bn_se = nan
    if hessian:
        loss = DataLoss(per_example_loss, data, chunk_size=chunk_size)
        Z = jax.random.rademacher(k_probe, (num_probes, n), dtype)

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

        samples = jax.lax.map(probe, Z) / (n - 1)
        thc = jnp.mean(samples)
        thc_se = jnp.std(samples, ddof=1) / jnp.sqrt(num_probes) if num_probes > 1 else nan
        hg = hvp(loss, params, gbar)
        ghg = _vdot(gbar, hg) - thc / n

        # sampling error of ḡᵀHḡ: d_iᵀ(Hḡ) for every example by one forward-mode pass
        def jvp_step(acc, c):
            batch, m = c
            dl = jax.jvp(lambda p: per_example_loss(p, batch), (params,), (hg,))[1]
            return (acc[0] + jnp.sum(m * dl), acc[1] + jnp.sum(m * dl**2)), None

        (s1, s2), _ = jax.lax.scan(jvp_step, (jnp.zeros((), dtype), jnp.zeros((), dtype)), (chunks, mask))
        var_hg = jnp.maximum(s2 - s1**2 / n, 0.0) / (n - 1)  # (Hḡ)ᵀ Σ̂ (Hḡ)
        ghg_se = jnp.sqrt(4.0 * var_hg / n + (thc_se / n) ** 2)
        defined = (thc > 0) & (ghg > 0)
        b_noise = jnp.where(defined, thc / ghg, jnp.nan)
        bn_se = jnp.where(defined, jnp.abs(b_noise) * jnp.hypot(thc_se / thc, ghg_se / ghg), jnp.nan)
    return GradientNoise(
        grad_norm_sq, trace_cov, b_simple, ghg, thc, b_noise, jnp.asarray(n),
        g2_se, tc_se, bs_se, ghg_se, thc_se, bn_se,
    )


class TrajectoryNoise(NamedTuple):
    """The gradient noise a run experienced along its trajectory (see :func:`trajectory_noise`).

    Attributes:
        mean: :math:`\\frac1K\\sum_k \\operatorname{tr}\\Sigma(\\theta_k)/B` over the ``K`` checkpoints.
        mean_se: its standard error (the checkpoints' bootstrap errors, independent).
        final: the value at the last checkpoint.
        final_se: its standard error.
        per_checkpoint: ``(K,)`` the values :math:`\\operatorname{tr}\\Sigma(\\theta_k)/B`.
        per_checkpoint_se: ``(K,)`` their standard errors.
    """

    mean: Float[Array, ""]
    mean_se: Float[Array, ""]
    final: Float[Array, ""]
    final_se: Float[Array, ""]
    per_checkpoint: Float[Array, " k"]
    per_checkpoint_se: Float[Array, " k"]


def trajectory_noise(
    per_example_loss: Callable[..., Float[Array, " b"]],
    checkpoints: PyTree,
    data: PyTree,
    batch_size: int | float | Array,
    *,
    key: Array,
    chunk_size: int | None = None,
    separable: bool = True,
    num_bootstrap: int = 32,
    dropout: bool = False,
    states: PyTree | None = None,
) -> TrajectoryNoise:
    r"""Minibatch gradient noise :math:`N = \operatorname{tr}\Sigma / B` along a trajectory.

    The noise a run experienced is that of its minibatch gradients during training,
    :math:`\mathbb E|g_B - G|^2 = \operatorname{tr}\Sigma(\theta_t)/B`, not at its end point.
    Given the parameters at ``K`` checkpoints (a pytree with a leading axis ``K``, e.g. saved
    during the sweep), this estimates :math:`\operatorname{tr}\Sigma(\theta_k)` at each with
    :func:`gradient_noise` (unbiased, bootstrap error) and reports the trajectory mean and
    the final value, each with its standard error.

    Args:
        per_example_loss: ``(params, batch) -> (b,)``; with ``dropout=True`` it is called as
            ``per_example_loss(params, batch, key=k)`` and must apply dropout as in training
            (e.g. ``functools.partial(task.per_example_loss, train=True)``), one key per
            checkpoint (a node task's examples then share one mask, as a training step's do).
        checkpoints: parameters with a leading checkpoint axis ``K ≥ 1``.
        data: examples with a leading axis (n ≥ 2).
        batch_size: the run's ``B``.
        key: PRNG key (keyword-only).
        chunk_size, separable: see :func:`gradient_noise`.
        num_bootstrap: bootstrap replicates per checkpoint (≥ 2).
        dropout: pass a per-checkpoint dropout key to ``per_example_loss``.
        states: optional non-differentiable model state (batch-norm statistics) at each
            checkpoint, leading axis ``K``; when given, ``per_example_loss`` is called with
            ``state=`` the checkpoint's state (no gradient is taken with respect to it).

    Returns:
        :class:`TrajectoryNoise`.

    Raises:
        ValueError: for a non-positive ``batch_size`` or fewer than 2 replicates.
    """
    if isinstance(batch_size, (int, float)) and not batch_size > 0:
        raise ValueError(f"trajectory_noise: batch_size must be > 0, got {batch_size!r}")
    if isinstance(num_bootstrap, bool) or not isinstance(num_bootstrap, int) or num_bootstrap < 2:
        raise ValueError(f"trajectory_noise: num_bootstrap must be an int >= 2, got {num_bootstrap!r}")
    leaves = jax.tree_util.tree_leaves(checkpoints)
    if not leaves or jnp.ndim(leaves[0]) < 1:
        raise ValueError("trajectory_noise: checkpoints needs a leading checkpoint axis")
    K = int(jnp.shape(leaves[0])[0])

    def at(args):
        params, k, state = args
        k_drop, k_boot = jax.random.split(k)
        kw = ({"key": k_drop} if dropout else {}) | ({"state": state} if states is not None else {})
        loss = (lambda p, b: per_example_loss(p, b, **kw)) if kw else per_example_loss  # noqa: E731
        gn = gradient_noise(loss, params, data, chunk_size=chunk_size, separable=separable,
                            num_bootstrap=num_bootstrap, key=k_boot)
        return gn.trace_cov / batch_size, gn.trace_cov_se / batch_size

    vals, ses = jax.lax.map(at, (checkpoints, jax.random.split(key, K), states))
    return TrajectoryNoise(
        jnp.mean(vals), jnp.sqrt(jnp.sum(jnp.square(ses))) / K, vals[-1], ses[-1], vals, ses
    )


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
