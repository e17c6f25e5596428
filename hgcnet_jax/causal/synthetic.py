"""A synthetic structural causal model with known ground truth, for tests and demos.

The true equations (``lb`` is the centred log batch size, ``ε ~ N(0, 1)`` independent):

.. math::

    lb &= (\\log_2 B - 6.5) / 1.5 \\\\
    N &= -a_{BN}\\, lb + s_N ε_N \\\\
    S &= a_{NS}\\, N + s_S ε_S \\\\
    C &= a_{NC}\\, N + a_{SC}\\, S + γ\\, N S + s_C ε_C \\\\
    G &= g_0 + g_1 (-a_{CG}\\, C - d\\, lb + s_G ε_G)

``B`` is drawn uniformly from ``batch_sizes``. The model is non-linear in the raw
batch size (through ``log₂``) and, when ``γ ≠ 0``, has the ``{N, S} → C`` interaction
of the HGCNet hypergraph; ``d ≠ 0`` adds a direct ``B → G`` path so that natural
direct and indirect effects are both non-zero. True effects are computed by Monte
Carlo from the same equations with shared noise (cross-world counterfactuals).
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pandas as pd

from .hypergraph import Hypergraph

__all__ = ["SyntheticSCM", "TrueEffects"]


@dataclasses.dataclass(frozen=True)
class TrueEffects:
    """Ground-truth effects of ``do(B=a)`` against ``do(B=b)`` on ``G`` (raw units).

    ``ate = E[G(a)] − E[G(b)]``; ``nde = E[G(a, M(b))] − E[G(b, M(b))]``;
    ``nie = E[G(a, M(a))] − E[G(a, M(b))]`` (so ``ate = nde + nie``); ``pse`` maps a
    mediator ``m`` to ``E[G(b, m = m(a))] − E[G(b)]`` (see
    :func:`hgcnet_jax.causal.mediation`). ``mean_a``, ``mean_b``: ``E[G(a)]``, ``E[G(b)]``.
    """

    ate: float
    nde: float
    nie: float
    pse: dict
    mean_a: float
    mean_b: float


@dataclasses.dataclass(frozen=True)
class SyntheticSCM:
    """Known non-linear SCM over ``B, N, S, C, G`` (see the module docstring).

    Attributes:
        interaction: ``γ``, the ``N·S`` coefficient in ``C`` (0 gives an additive truth).
        direct: ``d``, the direct ``B → G`` effect (0 gives no direct path).
        a_bn, a_ns, a_nc, a_sc, a_cg: Path coefficients.
        s_n, s_s, s_c, s_g: Noise scales.
        g0, g1: Location and scale of ``G`` (an accuracy-like outcome).
        batch_sizes: Support of ``B``.
    """

    interaction: float = 0.5
    direct: float = 0.3
    a_bn: float = 0.8
    a_ns: float = 0.7
    a_nc: float = 0.4
    a_sc: float = 0.4
    a_cg: float = 0.6
    s_n: float = 0.6
    s_s: float = 0.7
    s_c: float = 0.5
    s_g: float = 0.5
    g0: float = 70.0
    g1: float = 4.0
    batch_sizes: tuple[int, ...] = (16, 32, 64, 128, 256, 512)

    def __post_init__(self) -> None:
        for f in ("s_n", "s_s", "s_c", "s_g", "g1"):
            if not getattr(self, f) > 0:
                raise ValueError(f"SyntheticSCM.{f} must be > 0, got {getattr(self, f)!r}")
        bs = tuple(self.batch_sizes)
        if len(bs) < 2 or any(b <= 0 for b in bs):
            raise ValueError(f"SyntheticSCM.batch_sizes needs >= 2 positive values, got {bs!r}")
        object.__setattr__(self, "batch_sizes", bs)

    # ---------------------------------------------------------------- equations
    @staticmethod
    def _lb(b: np.ndarray) -> np.ndarray:
        return (np.log2(b) - 6.5) / 1.5

    def _n(self, b, e):
        return -self.a_bn * self._lb(b) + self.s_n * e

    def _s(self, n, e):
        return self.a_ns * n + self.s_s * e

    def _c(self, n, s, e):
        return self.a_nc * n + self.a_sc * s + self.interaction * n * s + self.s_c * e

    def _g(self, b, c, e):
        return self.g0 + self.g1 * (-self.a_cg * c - self.direct * self._lb(b) + self.s_g * e)

    def _noise(self, key: jax.Array, n: int) -> np.ndarray:
        return np.asarray(jax.random.normal(key, (4, n)), dtype=np.float64)

    def sample(self, n: int, *, key: jax.Array, return_noise: bool = False):
        """Draw a table of ``n`` observational runs with columns ``B, N, S, C, G``.

        Args:
            n: Number of runs.
            key: PRNG key.
            return_noise: Also return the ``(4, n)`` standard-Normal noise
                ``(ε_N, ε_S, ε_C, ε_G)`` of each run, for sample-specific effects
                (:meth:`effects` with ``noise=``).

        Returns:
            The table, or ``(table, noise)``.
        """
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}")
        kb, ke = jax.random.split(key)
        b = np.asarray(self.batch_sizes, dtype=np.float64)[
            np.asarray(jax.random.randint(kb, (n,), 0, len(self.batch_sizes)))
        ]
        e = self._noise(ke, n)
        nn = self._n(b, e[0])
        s = self._s(nn, e[1])
        c = self._c(nn, s, e[2])
        g = self._g(b, c, e[3])
        table = pd.DataFrame({"B": b.astype(np.int64), "N": nn, "S": s, "C": c, "G": g})
        return (table, e) if return_noise else table

    def effects(
        self, a: float, b: float, *, key: jax.Array | None = None, num: int = 400_000, noise: np.ndarray | None = None
    ) -> TrueEffects:
        """True ATE, NDE, NIE and path-specific effects (cross-world, shared noise).

        Args:
            a, b: Treatment and reference batch sizes.
            key: PRNG key for Monte Carlo noise (population effects).
            num: Monte Carlo population size.
            noise: Instead of ``key``, the ``(4, n)`` noise of a sampled table
                (``sample(..., return_noise=True)``): the effects *on those runs*
                (sample-average effects), exact rather than Monte Carlo.
        """
        if noise is None:
            if key is None:
                raise ValueError("effects() needs key= (population effects) or noise= (sample effects)")
            e = self._noise(key, num)
        else:
            e = np.asarray(noise, dtype=np.float64)
            if e.ndim != 2 or e.shape[0] != 4:
                raise ValueError(f"noise must have shape (4, n), got {e.shape}")
            num = e.shape[1]
        fa, fb = np.full(num, float(a)), np.full(num, float(b))

        def world(b_n, b_g, n_fix=None, s_fix=None, c_fix=None):
            nn = self._n(b_n, e[0]) if n_fix is None else n_fix
            s = self._s(nn, e[1]) if s_fix is None else s_fix
            c = self._c(nn, s, e[2]) if c_fix is None else c_fix
            return nn, s, c, self._g(b_g, c, e[3])

        na, sa, ca, ga = world(fa, fa)
        nb, sb, cb, gb = world(fb, fb)
        g_a_mb = world(fb, fa, nb, sb, cb)[3]
        pse = {
            "N": world(fb, fb, n_fix=na)[3].mean() - gb.mean(),
            "S": world(fb, fb, s_fix=sa)[3].mean() - gb.mean(),
            "C": world(fb, fb, c_fix=ca)[3].mean() - gb.mean(),
        }
        return TrueEffects(
            ate=float(ga.mean() - gb.mean()),
            nde=float(g_a_mb.mean() - gb.mean()),
            nie=float(ga.mean() - g_a_mb.mean()),
            pse={k: float(v) for k, v in pse.items()},
            mean_a=float(ga.mean()),
            mean_b=float(gb.mean()),
        )

    def graph(self, **kwargs) -> Hypergraph:
        """The matching :meth:`Hypergraph.paper` spec (direct edge iff ``direct != 0``)."""
        kwargs.setdefault("direct", self.direct != 0)
        return Hypergraph.paper(**kwargs)
