"""Complexity measures of a trained network.

Each is a pure function of the parameters (and, where stated, of the initial
parameters or the Hessian spectrum), jit- and vmap-able over a replica axis.

* :func:`l2_norm` — :math:`\\|\\theta\\|_2` (weight-decay view; Bartlett 1998).
* :func:`distance_from_init` — :math:`\\|\\theta-\\theta_0\\|_2` (Nagarajan & Kolter 2019;
  Jiang et al. 2020 "Fantastic generalization measures and where to find them").
* :func:`spectral_norm_product` — :math:`\\prod_l \\|W_l\\|_2` over the weight matrices
  (Bartlett, Foster & Telgarsky 2017; Neyshabur et al. 2018).
* :func:`pac_bayes_bound` — a sharpness-scaled PAC-Bayes bound (McAllester 1999;
  Neyshabur et al. 2017 "Exploring generalization in deep learning"; Dziugaite & Roy
  2017; Jiang et al. 2020), with the posterior width set by the Hessian trace.
* :func:`effective_parameters` — :math:`\\sum_i \\lambda_i/(\\lambda_i+\\alpha)` (MacKay 1992;
  Maddox, Benton & Wilson 2020 "Rethinking parameter counting in deep models").
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from hgcnet_jax.curvature.density import SpectralDensity

__all__ = [
    "l2_norm",
    "distance_from_init",
    "weight_matrices",
    "spectral_norm",
    "spectral_norm_product",
    "log_spectral_norm_product_bound",
    "pac_bayes_bound",
    "effective_parameters",
]

PyTree = Any


def l2_norm(params: PyTree) -> Float[Array, ""]:
    """:math:`\\|\\theta\\|_2 = (\\sum_j \\theta_j^2)^{1/2}` over every parameter."""
    return jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in jax.tree_util.tree_leaves(params)))


def distance_from_init(params: PyTree, init_params: PyTree) -> Float[Array, ""]:
    """:math:`\\|\\theta - \\theta_0\\|_2`.

    Raises:
        ValueError: if the two pytrees differ in structure.
    """
    s1, s2 = jax.tree_util.tree_structure(params), jax.tree_util.tree_structure(init_params)
    if s1 != s2:
        raise ValueError(f"distance_from_init: params and init_params differ in structure: {s1} vs {s2}")
    return l2_norm(jax.tree_util.tree_map(jnp.subtract, params, init_params))


def _path_name(path) -> str:
    return "/".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path)


def weight_matrices(params: PyTree) -> dict[str, Array]:
    """The weight matrices of a network, as 2-D arrays, by their pytree path.

    Leaves named ``kernel`` (flax's convention) when there are any, else every leaf with
    ``ndim >= 2``. A kernel of shape ``(..., d_in, d_out)`` — e.g. a convolution
    ``(kh, kw, c_in, c_out)`` — is reshaped to ``(prod(...) · d_in, d_out)``: its spectral
    norm is that of the convolution applied to a single patch, a standard surrogate for
    the operator norm of the convolution (which is larger by at most ``sqrt(kh·kw)``;
    Sedghi, Gupta & Long 2019 give the exact one).
    """
    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    named = [(_path_name(p), x) for p, x in flat if jnp.ndim(x) >= 2]
    kernels = [(n, x) for n, x in named if n.split("/")[-1] == "kernel"]
    chosen = kernels or named
    return {n: x.reshape(-1, x.shape[-1]) for n, x in chosen}


def spectral_norm(w: Float[Array, "m n"], *, key: Array, num_iters: int = 50) -> Float[Array, ""]:
    """Largest singular value of ``w`` by power iteration on :math:`W^\\top W`.

    Converges at rate :math:`(\\sigma_2/\\sigma_1)^{2k}`; 50 iterations give ~1e-6 relative
    accuracy unless the top two singular values nearly coincide (then it is a lower bound
    that is still close).
    """
    return jnp.linalg.norm(w @ _power_iterate(w, key, num_iters))


def _power_iterate(w: Float[Array, "m n"], key: Array, num_iters: int) -> Float[Array, " n"]:
    """The power iterate of :math:`W^\top W` after ``num_iters`` steps from a random start (unit norm)."""
    v = jax.random.normal(key, (w.shape[1],), w.dtype)
    v = v / jnp.linalg.norm(v)

    def body(_, v):
        u = w.T @ (w @ v)
        return u / jnp.maximum(jnp.linalg.norm(u), jnp.finfo(w.dtype).tiny)

    return jax.lax.fori_loop(0, num_iters, body, v)


def spectral_norm_product(params: PyTree, *, key: Array, num_iters: int = 50, log: bool = False) -> Float[Array, ""]:
    """:math:`\\prod_l \\|W_l\\|_2` over :func:`weight_matrices` (or its log with ``log=True``).

    The Lipschitz constant of a network with 1-Lipschitz activations is at most this
    product; norm-based generalisation bounds scale with it (Bartlett et al. 2017).

    Raises:
        ValueError: if ``params`` has no weight matrix.
    """
    mats = weight_matrices(params)
    if not mats:
        raise ValueError("spectral_norm_product: params has no 2-D (or higher) weight arrays")
    keys = jax.random.split(key, len(mats))
    logs = sum(jnp.log(spectral_norm(w, key=k, num_iters=num_iters)) for w, k in zip(mats.values(), keys, strict=True))
    return logs if log else jnp.exp(logs)


def log_spectral_norm_product_bound(
    params: PyTree, *, key: Array, num_iters: int = 50
) -> tuple[Float[Array, ""], Float[Array, ""]]:
    r""":math:`\log\prod_l \|W_l\|_2` by power iteration, with an a-posteriori error bound.

    For each matrix the power iterate :math:`v` (unit norm) gives the Rayleigh quotient
    :math:`\hat\sigma^2 = \|Wv\|^2` of :math:`W^\top W` and its residual
    :math:`r = \|W^\top W v - \hat\sigma^2 v\|`; :math:`W^\top W` has an eigenvalue
    :math:`\sigma_j^2` with :math:`|\hat\sigma^2 - \sigma_j^2| \le r`, so
    :math:`|\log\hat\sigma - \log\sigma_j| \le \tfrac12 \log\frac{\hat\sigma^2}{\hat\sigma^2 - r}`
    (infinite when :math:`r \ge \hat\sigma^2`). The returned bound is the sum over the
    layers. (That :math:`\sigma_j` is the largest singular value is what power iteration
    converges to from a random start; the bound certifies the distance to *a* singular value.)

    Returns:
        ``(log_product, error_bound)``.

    Raises:
        ValueError: if ``params`` has no weight matrix.
    """
    mats = weight_matrices(params)
    if not mats:
        raise ValueError("log_spectral_norm_product_bound: params has no 2-D (or higher) weight arrays")
    keys = jax.random.split(key, len(mats))
    total, err = 0.0, 0.0
    for w, k in zip(mats.values(), keys, strict=True):
        v = _power_iterate(w, k, num_iters)
        v = v / jnp.linalg.norm(v)
        s2 = jnp.sum(jnp.square(w @ v))
        r = jnp.linalg.norm(w.T @ (w @ v) - s2 * v)
        total = total + 0.5 * jnp.log(s2)
        err = err + jnp.where(r < s2, 0.5 * jnp.log(s2 / jnp.maximum(s2 - r, jnp.finfo(w.dtype).tiny)), jnp.inf)
    return total, err


def pac_bayes_bound(
    dist_sq: Float[Array, ""],
    hessian_trace: Float[Array, ""],
    num_examples: int,
    *,
    epsilon: float = 0.1,
    delta: float = 0.05,
) -> Float[Array, ""]:
    r"""Sharpness-scaled PAC-Bayes complexity term.

    Take the posterior :math:`Q = \mathcal N(\theta, \sigma^2 I)` and the prior
    :math:`P = \mathcal N(\theta_0, \sigma^2 I)` centred at initialisation, so that
    :math:`\mathrm{KL}(Q\|P) = \|\theta-\theta_0\|^2 / (2\sigma^2)`. Choose the largest
    :math:`\sigma` whose perturbations raise the training loss by at most
    :math:`\epsilon` to second order: :math:`\mathbb E_u[L(\theta+u)] - L(\theta) \approx
    \tfrac{\sigma^2}{2}\operatorname{tr} H = \epsilon`, i.e.
    :math:`\sigma^2 = 2\epsilon / \operatorname{tr} H` (the flatness-based choice of
    Neyshabur et al. 2017 and Jiang et al. 2020, who find σ by search instead of by the
    Taylor expansion). McAllester's bound (in Maurer's 2004 form) then bounds the
    generalisation gap of :math:`Q` by

    .. math::
        \sqrt{\frac{\mathrm{KL}(Q\|P) + \ln(2\sqrt{m}/\delta)}{2m}}
        = \sqrt{\frac{\|\theta-\theta_0\|^2 \operatorname{tr}H/(4\epsilon) + \ln(2\sqrt m/\delta)}{2m}}.

    Sharper minima (larger trace) and longer distances travelled give larger values.
    A non-positive trace (no positive curvature to second order) is clipped to 0.

    Args:
        dist_sq: :math:`\|\theta-\theta_0\|^2`.
        hessian_trace: :math:`\operatorname{tr} H` of the mean training loss.
        num_examples: :math:`m`, training-set size.
        epsilon: tolerated loss increase.
        delta: confidence level.

    Returns:
        The bound term (a number in loss units, not clipped at 1).

    Raises:
        ValueError: for non-positive ``num_examples``, ``epsilon`` or ``delta`` outside (0, 1).
    """
    if num_examples < 1:
        raise ValueError(f"pac_bayes_bound: num_examples must be >= 1, got {num_examples}")
    if not epsilon > 0:
        raise ValueError(f"pac_bayes_bound: epsilon must be > 0, got {epsilon}")
    if not 0 < delta < 1:
        raise ValueError(f"pac_bayes_bound: delta must be in (0, 1), got {delta}")
    kl = dist_sq * jnp.maximum(hessian_trace, 0.0) / (4.0 * epsilon)
    return jnp.sqrt((kl + math.log(2.0 * math.sqrt(num_examples) / delta)) / (2.0 * num_examples))


def effective_parameters(
    spectrum: SpectralDensity | Float[Array, " n"], alpha: float | Array, *, dim: int | None = None
) -> Float[Array, ""]:
    r"""Effective number of parameters :math:`N_\text{eff}(\alpha) = \sum_i \frac{\lambda_i}{\lambda_i + \alpha}`.

    MacKay (1992) counts the directions the data determine against a Gaussian prior of
    precision :math:`\alpha` (for the Hessian of the *mean* loss over :math:`n` examples,
    :math:`\alpha` plays the role of prior precision / n); Maddox et al. (2020) show it
    tracks generalisation. Negative eigenvalues are clipped to 0 (they determine no
    direction). From an SLQ spectrum it is :math:`P \int \frac{\lambda^+}{\lambda^+ + \alpha}\,d\phi`.

    Args:
        spectrum: a :class:`~hgcnet_jax.curvature.SpectralDensity` or exact eigenvalues.
        alpha: :math:`\alpha > 0`.
        dim: the number of parameters ``P``; required with a :class:`SpectralDensity`.

    Returns:
        :math:`N_\text{eff}`.

    Raises:
        ValueError: if ``dim`` is missing for a density.
    """
    f = lambda lam: jnp.maximum(lam, 0.0) / (jnp.maximum(lam, 0.0) + alpha)  # noqa: E731
    if isinstance(spectrum, SpectralDensity):
        if dim is None:
            raise ValueError("effective_parameters: pass dim= (the number of parameters) with a SpectralDensity")
        return dim * spectrum.expect(f)
    return jnp.sum(f(jnp.asarray(spectrum)))
