"""Cross-library check: the same Hessian operator through matfree gives the same answers."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from hgcnet_jax import curvature as cv

matfree = pytest.importorskip("matfree")
from matfree import decomp, funm  # noqa: E402


def test_lanczos_matches_matfree_tridiag_sym(problems, x64):
    pb = problems["cnn"]
    m = 40
    mv = lambda v, p: cv.hvp(pb.loss, p, v)  # noqa: E731  (matfree's matvec(v, *params))
    v0 = jax.tree_util.tree_map(lambda x: jnp.cos(jnp.arange(x.size, dtype=x.dtype) + 1.0).reshape(x.shape), pb.params)

    ours = jax.jit(lambda p: cv.lanczos(lambda v: mv(v, p), v0, m, key=jax.random.key(0)))(pb.params)
    theirs = jax.jit(lambda p: decomp.tridiag_sym(m, materialize=True, reortho="full")(mv, v0, p))(pb.params)
    T_ours = np.asarray(cv.tridiagonal(ours.alphas, ours.betas))
    T_theirs = np.asarray(theirs.J_small)
    scale = np.abs(pb.eigenvalues).max()
    np.testing.assert_allclose(np.linalg.eigvalsh(T_ours), np.linalg.eigvalsh(T_theirs), rtol=0, atol=1e-6 * scale)
    # the tridiagonals themselves agree (betas positive in both)
    np.testing.assert_allclose(T_ours, T_theirs, rtol=0, atol=1e-6 * scale)


def test_slq_quadrature_matches_matfree(problems, x64):
    pb = problems["gcn"]
    m = 30
    flat, unravel = ravel_pytree(pb.params)
    mv = lambda v, p: cv.hvp(pb.loss, p, v)  # noqa: E731
    sd = cv.spectral_density(pb.loss, pb.params, key=jax.random.key(0), num_probes=3, num_steps=m)
    probes = cv.probe_vectors(jax.random.split(jax.random.key(0))[0], 3, flat.size, flat.dtype)
    funcs = {"identity": lambda x: x, "square": lambda x: x**2, "exp": jnp.exp}
    for fname, f in funcs.items():
        integrand = funm.monte_carlo_funm_sym(funm.dense_funm_sym_eigh(f), decomp.tridiag_sym(m, reortho="full"))
        theirs = np.asarray(jax.jit(jax.vmap(lambda z: integrand(mv, unravel(z), pb.params)))(probes))  # |z|² e1ᵀ f(T) e1
        ours = np.asarray(jnp.sum(sd.weights * f(sd.nodes), axis=1)) * flat.size  # |z|² = P for ±1 probes
        np.testing.assert_allclose(ours, theirs, rtol=1e-6, err_msg=fname)
