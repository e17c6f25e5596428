"""Lanczos tridiagonalisation on pytrees, and the extreme eigenvalues of a curvature operator.

Everything runs inside ``lax`` loops, so a whole eigenvalue computation (every
Hessian-vector product included) is one compiled program that ``jit`` and ``vmap``
(over a leading replica axis of ``params``) transform like any other function.

Memory: the Lanczos basis is stored only when it is needed — for full
reorthogonalisation (the default) or when asked for (``return_basis=True`` or
eigenvectors). It takes ``(num_steps + 1) × P`` numbers for ``P`` parameters;
without it the recurrence keeps three vectors (``O(P)``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Float, Int

from hgcnet_jax import _keys
from hgcnet_jax.curvature.operators import as_operator

__all__ = [
    "LanczosResult",
    "Eigenpairs",
    "lanczos",
    "tridiagonal",
    "top_eigenvalues",
]

PyTree = Any

# A restart (breakdown) is declared when the new residual is below this multiple of
# eps·‖T‖; anything larger is harmless, because the twice-reorthogonalised
# normalised residual is a valid new basis direction with a tiny coupling.
_BREAKDOWN_FACTOR = 10.0


class LanczosResult(NamedTuple):
    """The output of :func:`lanczos`.

    Attributes:
        alphas: ``(m,)`` diagonal of the tridiagonal matrix ``T``.
        betas: ``(m - 1,)`` off-diagonal of ``T`` (0 where the iteration restarted after
            an invariant subspace was found).
        residual_norm: ``β_m``, the norm of the last residual; ``|β_m s_{m,i}|`` bounds the
            residual ``‖A y_i − θ_i y_i‖`` of the Ritz pair ``(θ_i, y_i = Q s_i)``.
        basis: the Lanczos vectors ``q_1 … q_m`` as a pytree with a leading axis ``m``
            (orthonormal), or ``None`` when not requested.
    """

    alphas: Float[Array, " m"]
    betas: Float[Array, " m1"]
    residual_norm: Float[Array, ""]
    basis: PyTree | None


class Eigenpairs(NamedTuple):
    """Extreme eigenvalues of a curvature operator.

    Attributes:
        eigenvalues: ``(k,)``; descending for ``which="largest"``, ascending for ``"smallest"``.
        eigenvectors: pytree with a leading axis ``k`` (unit norm), or ``None``.
        residuals: ``(k,)`` Ritz residual norms ``‖A y − θ y‖``: each eigenvalue lies
            within this distance of a true eigenvalue (and within ``residual² / gap``
            of it when the spectral gap is known).
        num_steps: number of Lanczos steps (operator products) used.
    """

    eigenvalues: Float[Array, " k"]
    eigenvectors: PyTree | None
    residuals: Float[Array, " k"]
    num_steps: Int[Array, ""]


def tridiagonal(alphas: Float[Array, " m"], betas: Float[Array, " m1"]) -> Float[Array, "m m"]:
    """The dense symmetric tridiagonal matrix with diagonal ``alphas`` and off-diagonal ``betas``."""
    return jnp.diag(alphas) + jnp.diag(betas, 1) + jnp.diag(betas, -1)


_BLOCK = 8  # basis rows per block of the reorthogonalisation


def _orthogonalize(Q, w, n_rows):
    """Remove from ``w`` its components along the first ``n_rows`` rows of ``Q``.

    Block Gram-Schmidt over blocks of ``_BLOCK`` rows, applied twice ("twice is
    enough", Giraud, Langou & Rozložník 2005). The loop runs over the filled blocks
    only, so step ``j`` costs ``O(jP)``, not ``O(mP)``; rows not yet filled are zero.
    """
    num_blocks = (n_rows + _BLOCK - 1) // _BLOCK

    def block(b, w):  # w: (P,) or (c, P), rows are vectors
        Qb = jax.lax.dynamic_slice_in_dim(Q, b * _BLOCK, _BLOCK, axis=0)
        return w - (w @ Qb.T) @ Qb

    for _ in range(2):
        w = jax.lax.fori_loop(0, num_blocks, block, w)
    return w


def _lanczos_flat(
    matvec: Callable[[Array], Array],
    v0: Array,
    num_steps: int,
    *,
    reorthogonalize: bool,
    keep_basis: bool,
    key: Array,
    stop: Callable[[Array, Array, Array], Array] | None = None,
):
    """Lanczos on flat vectors; returns (alphas, betas (m,), basis (m+1, P) | None, steps)."""
    P = v0.shape[0]
    dtype = v0.dtype
    eps = jnp.finfo(dtype).eps
    m = num_steps
    q0 = v0 / jnp.linalg.norm(v0)
    rows = -(-(m + 1) // _BLOCK) * _BLOCK  # padded to whole blocks
    Q = jnp.zeros((rows, P), dtype).at[0].set(q0) if keep_basis else None

    # Restart directions (used only after a breakdown) are shifts of one random vector,
    # orthogonalised together with the residual in the same pass over the basis, so the
    # restart costs nothing extra even under vmap (where a lax.cond would run both branches).
    r0 = jax.random.normal(key, (P,), dtype)

    def body(state):
        j, Q, alphas, betas, q, q_prev, beta_prev, anorm = state
        w = matvec(q)
        alpha = jnp.vdot(q, w)
        w = w - alpha * q - beta_prev * q_prev
        r = jnp.roll(r0, 7919 * j + 1)
        if reorthogonalize:
            w, r = _orthogonalize(Q, jnp.stack([w, r]), j + 1)
        else:
            r = r - jnp.vdot(q, r) * q - jnp.vdot(q_prev, r) * q_prev
        beta = jnp.linalg.norm(w)
        anorm = jnp.maximum(anorm, jnp.abs(alpha) + beta + beta_prev)
        # An invariant subspace was found: continue with a fresh direction orthogonal to
        # the basis and a zero coupling, so T stays exact and NaN-free.
        breakdown = ~(beta > _BREAKDOWN_FACTOR * eps * anorm)
        nr = jnp.linalg.norm(r)
        restart = jnp.where(nr > 0, r / jnp.where(nr > 0, nr, 1), 0.0)
        q_next = jnp.where(breakdown, restart, w / jnp.where(breakdown, 1, beta))
        beta_stored = jnp.where(breakdown, 0.0, beta)
        alphas = alphas.at[j].set(alpha)
        betas = betas.at[j].set(beta_stored)
        if keep_basis:
            Q = Q.at[j + 1].set(q_next, mode="drop")
        return j + 1, Q, alphas, betas, q_next, q, beta_stored, anorm

    def cond(state):
        j, _, alphas, betas = state[:4]
        go = j < m
        if stop is not None:
            go = go & ~stop(alphas, betas, j)
        return go

    zero = jnp.zeros((), dtype)
    state = (jnp.zeros((), jnp.int32), Q, jnp.zeros((m,), dtype), jnp.zeros((m,), dtype), q0, jnp.zeros_like(q0), zero, zero)
    if stop is None:
        state = jax.lax.fori_loop(0, m, lambda i, s: body(s), state)
    else:
        state = jax.lax.while_loop(cond, body, state)
    j, Q, alphas, betas = state[:4]
    return alphas, betas, Q, j


def _check_steps(num_steps: Any, dim: int, name: str = "num_steps") -> int:
    if not isinstance(num_steps, int) or isinstance(num_steps, bool) or num_steps < 1:
        raise ValueError(f"{name} must be a positive int, got {num_steps!r}")
    if num_steps > dim:
        raise ValueError(
            f"{name}={num_steps} exceeds the dimension of the operator ({dim} parameters); "
            f"a Krylov space has at most {dim} dimensions — pass {name} <= {dim}"
        )
    return num_steps


def lanczos(
    matvec: Callable[[PyTree], PyTree],
    v0: PyTree,
    num_steps: int,
    *,
    reorthogonalize: bool = True,
    return_basis: bool = False,
    key: Array,
) -> LanczosResult:
    r"""Lanczos tridiagonalisation :math:`A Q = Q T + \beta_m q_{m+1} e_m^\top` on pytrees.

    Builds an orthonormal basis :math:`Q = (q_1, \dots, q_m)` of the Krylov space
    :math:`\mathcal K_m(A, v_0)` and the symmetric tridiagonal :math:`T = Q^\top A Q`
    (Lanczos 1950). With ``reorthogonalize=True`` every new vector is orthogonalised
    against all previous ones by classical Gram-Schmidt applied twice, which keeps
    :math:`Q` orthonormal to working precision (no ghost eigenvalues) at a cost of
    :math:`O(mP)` per step and :math:`(m+1)P` memory. If the Krylov space becomes
    invariant (:math:`\beta_j \approx 0`, e.g. a rank-deficient operator), the
    iteration restarts from a random vector orthogonal to the basis and records a zero
    coupling, so ``T`` has no NaNs and its eigenvalues remain Ritz values of ``A``.

    Args:
        matvec: the symmetric linear map ``v -> A v`` on pytrees shaped like ``v0``.
        v0: starting pytree (need not be normalised; must be nonzero).
        num_steps: ``m``, the number of operator products, ``1 ≤ m ≤ P`` (static).
        reorthogonalize: full reorthogonalisation (needs the basis in memory).
        return_basis: also return the basis (a pytree with a leading axis ``m``).
        key: PRNG key of the restart directions after a breakdown (keyword-only, required;
            it changes the result only when an invariant subspace is hit).

    Returns:
        A :class:`LanczosResult`.

    Raises:
        ValueError: if ``num_steps`` is not in ``[1, P]``.
    """
    flat, unravel = ravel_pytree(v0)
    m = _check_steps(num_steps, flat.shape[0])
    key = _keys.check_key(key, where="lanczos")

    def matvec_flat(x):
        return ravel_pytree(matvec(unravel(x)))[0].astype(flat.dtype)

    alphas, betas, Q, _ = _lanczos_flat(
        matvec_flat, flat, m, reorthogonalize=reorthogonalize, keep_basis=reorthogonalize or return_basis, key=key
    )
    basis = jax.vmap(unravel)(Q[:m]) if return_basis else None  # rows beyond m are padding
    return LanczosResult(alphas, betas[:-1], betas[-1], basis)


@jax.custom_batching.custom_vmap
def symmetric_eigh(T: Float[Array, "m m"]) -> tuple[Float[Array, " m"], Float[Array, "m m"]]:
    """``jnp.linalg.eigh`` of one small symmetric matrix, whose ``vmap`` is a map on a CPU.

    A batched ``eigh`` on XLA:CPU is LAPACK's ``syevd`` fanned out over the batch on the
    intra-op thread pool by a kernel that waits for it while running on that pool; when
    every pool thread runs such a kernel (a program sharded over as many host devices as
    there are cores, each batching the Lanczos matrices of its SLQ probes) none is left to
    do the work, and the program hangs. Under ``vmap`` this function therefore solves the
    matrices one after another (``lax.map``) on a CPU; the Lanczos matrices are small, so
    it costs little. On GPU/TPU the batched solver is used.
    """
    w, v = jnp.linalg.eigh(T)
    return w, v


@symmetric_eigh.def_vmap
def _symmetric_eigh_vmap(axis_size, in_batched, T):
    (batched,) = in_batched
    if not batched:
        out = symmetric_eigh(T)
        return out, (False, False)
    if jax.default_backend() == "cpu":
        return jax.lax.map(symmetric_eigh, T), (True, True)
    w, v = jnp.linalg.eigh(T)
    return (w, v), (True, True)


def _masked_eigh(alphas, betas, n, *, low: bool):
    """eigh of the leading n×n block of T; the rest is pushed outside the spectrum."""
    m = alphas.shape[0]
    idx = jnp.arange(m)
    active = idx < n
    off = jnp.where(idx[:-1] < n - 1, betas[:-1], 0.0)
    bound = jnp.max(jnp.where(active, jnp.abs(alphas), 0.0)) + 2 * jnp.max(jnp.abs(off), initial=0.0) + 1.0
    sentinel = -3 * bound if low else 3 * bound
    diag = jnp.where(active, alphas, sentinel)
    theta, S = symmetric_eigh(tridiagonal(diag, off))
    S = jnp.where(active[:, None], S, 0.0)
    return theta, S


def _select(theta, S, k, which):
    if which == "largest":
        return theta[::-1][:k], S[:, ::-1][:, :k]
    return theta[:k], S[:, :k]


def top_eigenvalues(
    loss_fn: Any,
    params: PyTree,
    k: int = 1,
    *,
    key: Array,
    num_steps: int | None = None,
    tol: float | None = None,
    which: str = "largest",
    return_eigenvectors: bool = False,
    check_every: int = 1,
) -> Eigenpairs:
    r"""The ``k`` largest (or smallest) eigenvalues of the Hessian (or another operator).

    Runs fully reorthogonalised Lanczos from a random start inside one ``while_loop``
    and stops as soon as each of the ``k`` Ritz pairs has a residual
    :math:`r_i = |\beta_j s_{j,i}| \le \mathrm{tol} \cdot |\theta_i|`, which guarantees a true
    eigenvalue within a relative distance ``tol`` of each :math:`\theta_i`
    (Parlett 1998, §13.2; in practice the error is nearer :math:`r_i^2/\mathrm{gap}`),
    or after ``num_steps`` products. Like any single-vector Krylov method it finds one
    copy of an eigenvalue of multiplicity > 1 (in exact arithmetic).

    Args:
        loss_fn: ``params -> scalar``, a :class:`~hgcnet_jax.curvature.DataLoss`, or a
            curvature operator (:class:`~hgcnet_jax.curvature.GaussNewton`, ...).
        params: the point (pytree). Its dtype sets the precision (float32 by default;
            float64 params under ``jax.experimental.enable_x64()`` give float64).
        k: number of eigenvalues (static).
        key: PRNG key for the random start vector (keyword-only).
        num_steps: maximum Krylov dimension; default ``min(P, max(64, 12 k))``. Memory
            ``(num_steps + 1) × P`` for the basis.
        tol: relative residual tolerance for early stopping; default
            :math:`\sqrt{\varepsilon}` of the dtype (3.5e-4 float32, 1.5e-8 float64);
            ``0`` runs all ``num_steps``.
        which: ``"largest"`` (descending) or ``"smallest"`` (ascending; negative curvature).
        return_eigenvectors: also return unit-norm Ritz vectors as a pytree with a
            leading axis ``k``.
        check_every: test convergence every this many steps (each test is an ``eigh``
            of the ``num_steps × num_steps`` tridiagonal; raise it when operator products
            are cheap compared with that).

    Returns:
        :class:`Eigenpairs`.

    Raises:
        ValueError: for a bad ``k``, ``which``, ``num_steps`` or ``tol``.
    """
    op = as_operator(loss_fn)
    flat, unravel = ravel_pytree(params)
    P = flat.shape[0]
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    if which not in ("largest", "smallest"):
        raise ValueError(f"which must be 'largest' or 'smallest', got {which!r}")
    if num_steps is None:
        num_steps = min(P, max(64, 12 * k))
    m = _check_steps(num_steps, P)
    if k > m:
        raise ValueError(f"k={k} exceeds num_steps={m}; raise num_steps (at most {P})")
    dtype = flat.dtype
    if tol is None:
        tol = float(jnp.finfo(dtype).eps) ** 0.5
    if not (tol >= 0):
        raise ValueError(f"tol must be >= 0, got {tol!r}")
    if not isinstance(check_every, int) or check_every < 1:
        raise ValueError(f"check_every must be a positive int, got {check_every!r}")
    low = which == "largest"  # sentinel below the spectrum when we want the top
    min_steps = min(m, 2 * k)

    def matvec_flat(x):
        return ravel_pytree(op.matvec(params, unravel(x)))[0].astype(dtype)

    def converged(alphas, betas, j):
        theta, S = _masked_eigh(alphas, betas, j, low=low)
        theta, S = _select(theta, S, k, which)
        last = jnp.take(S, jnp.maximum(j - 1, 0), axis=0)
        res = jnp.abs(jnp.take(betas, jnp.maximum(j - 1, 0)) * last)
        return jnp.all(res <= tol * jnp.abs(theta))

    def stop(alphas, betas, j):
        due = (j >= min_steps) & ((j - min_steps) % check_every == 0)
        return jax.lax.cond(due, lambda: converged(alphas, betas, j), lambda: jnp.asarray(False))

    v0 = jax.random.normal(key, (P,), dtype)
    alphas, betas, Q, n = _lanczos_flat(
        matvec_flat, v0, m, reorthogonalize=True, keep_basis=True, key=jax.random.fold_in(key, 1),
        stop=stop if tol > 0 else None,
    )
    theta, S = _masked_eigh(alphas, betas, n, low=low)
    theta, S = _select(theta, S, k, which)
    residuals = jnp.abs(jnp.take(betas, n - 1) * jnp.take(S, n - 1, axis=0))
    vecs = None
    if return_eigenvectors:
        Y = S.T @ Q[:m]  # (k, P)
        Y = Y / jnp.linalg.norm(Y, axis=1, keepdims=True)
        vecs = jax.vmap(unravel)(Y)
    return Eigenpairs(theta, vecs, residuals, n)
