"""Curvature of any ``loss_fn(params) -> scalar`` over a pytree, matrix-free.

Hessian-vector products (forward over reverse), Lanczos tridiagonalisation inside
``lax`` loops, the extreme eigenvalues, the spectral density by stochastic Lanczos
quadrature, and Hutchinson / Hutch++ traces. The Gauss-Newton matrix and the empirical
Fisher are available as operators with the same interface. Every function is
jit-able and vmap-able over a leading replica axis of ``params``::

    spectra = jax.jit(jax.vmap(lambda p, k: top_eigenvalues(loss_fn, p, 5, key=k)))(stacked, keys)
"""

from hgcnet_jax.curvature.density import SpectralDensity, probe_vectors, smooth_density, spectral_density
from hgcnet_jax.curvature.hvp import DataLoss, hvp, value_and_grad
from hgcnet_jax.curvature.lanczos import Eigenpairs, LanczosResult, lanczos, top_eigenvalues, tridiagonal
from hgcnet_jax.curvature.operators import CurvatureOperator, EmpiricalFisher, GaussNewton, Hessian, as_operator
from hgcnet_jax.curvature.trace import TraceEstimate, hessian_trace

__all__ = [
    "DataLoss",
    "hvp",
    "value_and_grad",
    "CurvatureOperator",
    "Hessian",
    "GaussNewton",
    "EmpiricalFisher",
    "as_operator",
    "LanczosResult",
    "lanczos",
    "tridiagonal",
    "Eigenpairs",
    "top_eigenvalues",
    "SpectralDensity",
    "spectral_density",
    "smooth_density",
    "probe_vectors",
    "TraceEstimate",
    "hessian_trace",
]
