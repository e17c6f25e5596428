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

from .hypergraph import Edge, Hyperedge, Hypergraph, Variable

__all__ = ["SyntheticSCM", "BudgetSCM", "TrueEffects"]


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

    def sample(self, n: int, *, key: jax.Array, return_noise: bool = False, balanced: bool = False):
        """Draw a table of ``n`` observational runs with columns ``B, N, S, C, G``.

        Args:
            n: Number of runs.
            key: PRNG key.
            return_noise: Also return the ``(4, n)`` standard-Normal noise
                ``(ε_N, ε_S, ε_C, ε_G)`` of each run, for sample-specific effects
                (:meth:`effects` with ``noise=``).
            balanced: Every batch size gets ``n / len(batch_sizes)`` runs, as in a sweep
                of batch sizes × seeds (``n`` must be a multiple of the number of batch
                sizes); the table then also has a ``seed`` column (the run's index
                within its arm). By default ``B`` is drawn uniformly per run.

        Returns:
            The table, or ``(table, noise)``.
        """
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}")
        kb, ke = jax.random.split(key)
        k = len(self.batch_sizes)
        if balanced:
            if n % k:
                raise ValueError(f"balanced=True needs n to be a multiple of {k} (the batch sizes), got {n}")
            arm = np.repeat(np.arange(k), n // k)
        else:
            arm = np.asarray(jax.random.randint(kb, (n,), 0, k))
        b = np.asarray(self.batch_sizes, dtype=np.float64)[arm]
        e = self._noise(ke, n)
        nn = self._n(b, e[0])
        s = self._s(nn, e[1])
        c = self._c(nn, s, e[2])
        g = self._g(b, c, e[3])
        table = pd.DataFrame({"B": b.astype(np.int64), "N": nn, "S": s, "C": c, "G": g})
        if balanced:
            table["seed"] = np.tile(np.arange(n // k), k)
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


@dataclasses.dataclass(frozen=True)
class BudgetSCM:
    """A sweep whose truth lies *outside* the paper's graph (issue #14), with known effects.

    A sweep at equal epochs gives small batches many more optimiser steps, and the
    steps drive complexity; sharpness depends on the batch size beyond what the
    noise carries; gradient noise is heavy-tailed; accuracy saturates below 1.
    With ``lb = (log₂ B − 6.5) / 1.5`` and ``ε`` independent (``t`` a Student-t with
    ``nu`` degrees of freedom scaled to unit variance)::

        epochs = max(1, round(E · 2^(s_E ε_E)))           (early stopping varies the budget)
        steps  = epochs · ceil(n_train / B)
        ls     = (log₂ steps − log₂(E · n_train / 2^6.5)) / 1.5
        N = −a_BN lb + s_N t
        S = a_NS N + a_BS lb + s_S ε_S                    (B → S: not in the paper's graph)
        C = a_NC N + a_SC S + γ N S + a_TC ls + s_C ε_C   (B → steps → C: not in it either)
        G = sigmoid(g0 − a_CG C + s_G ε_G)                (bounded in (0, 1))

    The true graph (:meth:`graph`) is the paper's plus ``B → S``, ``B → steps → C`` and
    a logit outcome; the paper's graph misses both budget paths, and its implied
    independences ``S ⊥ B | N`` and ``C ⊥ B | N, S`` fail.

    Attributes:
        a_bn, a_ns, a_bs, a_nc, a_sc, interaction, a_tc, a_cg: Path coefficients
            (``interaction`` is ``γ``).
        s_n, s_s, s_c, s_g, s_epochs: Noise scales.
        nu: Degrees of freedom of the noise of ``N`` (> 2).
        g0: Location of ``G`` on the logit scale.
        epochs, n_train: The budget ``E`` and the training-set size.
        batch_sizes: The arms of the sweep.
    """

    a_bn: float = 0.8
    a_ns: float = 0.7
    a_bs: float = 0.8
    a_nc: float = 0.4
    a_sc: float = 0.4
    interaction: float = 0.3
    a_tc: float = -0.8
    a_cg: float = 1.0
    s_n: float = 0.6
    s_s: float = 0.5
    s_c: float = 0.4
    s_g: float = 0.3
    s_epochs: float = 0.4
    nu: float = 3.0
    g0: float = 2.5
    epochs: int = 100
    n_train: int = 1400
    batch_sizes: tuple[int, ...] = (16, 32, 64, 128, 256, 512)

    def __post_init__(self) -> None:
        for f in ("s_n", "s_s", "s_c", "s_g"):
            if not getattr(self, f) > 0:
                raise ValueError(f"BudgetSCM.{f} must be > 0, got {getattr(self, f)!r}")
        if not self.s_epochs >= 0:
            raise ValueError(f"BudgetSCM.s_epochs must be >= 0, got {self.s_epochs!r}")
        if not self.nu > 2:
            raise ValueError(f"BudgetSCM.nu must be > 2 (finite variance), got {self.nu!r}")
        if not (isinstance(self.epochs, int) and self.epochs >= 1 and isinstance(self.n_train, int) and self.n_train >= 1):
            raise ValueError(f"BudgetSCM.epochs and n_train must be positive ints, got {self.epochs!r}, {self.n_train!r}")
        bs = tuple(self.batch_sizes)
        if len(bs) < 2 or any(b <= 0 for b in bs):
            raise ValueError(f"BudgetSCM.batch_sizes needs >= 2 positive values, got {bs!r}")
        object.__setattr__(self, "batch_sizes", bs)

    def _noise(self, key: jax.Array, n: int) -> np.ndarray:
        k1, k2 = jax.random.split(key)
        e = np.asarray(jax.random.normal(k1, (5, n)), dtype=np.float64)
        t = np.asarray(jax.random.t(k2, self.nu, (n,)), dtype=np.float64)
        e[1] = t * np.sqrt((self.nu - 2.0) / self.nu)  # unit variance, heavy tails
        return e  # (epochs, N, S, C, G)

    def _world(self, b: np.ndarray, e: np.ndarray) -> dict:
        lb = (np.log2(b) - 6.5) / 1.5
        epochs = np.maximum(1.0, np.round(self.epochs * np.power(2.0, self.s_epochs * e[0])))
        steps = epochs * np.ceil(self.n_train / b)
        ls = (np.log2(steps) - np.log2(self.epochs * self.n_train / 2**6.5)) / 1.5
        nn = -self.a_bn * lb + self.s_n * e[1]
        s = self.a_ns * nn + self.a_bs * lb + self.s_s * e[2]
        c = self.a_nc * nn + self.a_sc * s + self.interaction * nn * s + self.a_tc * ls + self.s_c * e[3]
        g = 1.0 / (1.0 + np.exp(-(self.g0 - self.a_cg * c + self.s_g * e[4])))
        return {"steps": steps, "N": nn, "S": s, "C": c, "G": g}

    def sample(self, seeds: int, *, key: jax.Array) -> pd.DataFrame:
        """A sweep: every batch size × ``seeds`` seeds, columns ``B, seed, steps, N, S, C, G``.

        Args:
            seeds: Runs per batch size (>= 2).
            key: PRNG key.

        Returns:
            The runs table, ``len(batch_sizes) × seeds`` rows, arm by arm.
        """
        if not isinstance(seeds, (int, np.integer)) or seeds < 2:
            raise ValueError(f"seeds must be an int >= 2, got {seeds!r}")
        k = len(self.batch_sizes)
        b = np.repeat(np.asarray(self.batch_sizes, dtype=np.float64), seeds)
        w = self._world(b, self._noise(key, k * seeds))
        table = pd.DataFrame({"B": b.astype(np.int64), "seed": np.tile(np.arange(seeds), k)})
        table["steps"] = w["steps"].astype(np.int64)
        for v in "NSCG":
            table[v] = w[v]
        return table

    def effects(self, a: float, b: float, *, key: jax.Array, num: int = 400_000) -> TrueEffects:
        """True ``E[G | do(B=a)]``, ``E[G | do(B=b)]`` and their difference (Monte Carlo, shared noise).

        Only the total effect is filled in: ``nde``, ``nie`` and ``pse`` are NaN / empty
        (the truth has several mediating paths, including the budget's).
        """
        e = self._noise(key, num)
        ga = self._world(np.full(num, float(a)), e)["G"].mean()
        gb = self._world(np.full(num, float(b)), e)["G"].mean()
        return TrueEffects(float(ga - gb), float("nan"), float("nan"), {}, float(ga), float(gb))

    def graph(self, *, noise: str = "student") -> Hypergraph:
        """The true graph: the paper's plus ``B → S``, ``B → steps → C``, ``G`` on a logit scale."""
        variables = (
            Variable("B", "treatment", transform="log2"),
            Variable("steps", "mediator", transform="log2"),
            Variable("N", "mediator"),
            Variable("S", "mediator"),
            Variable("C", "mediator"),
            Variable("G", "outcome", transform="logit"),
        )
        edges = (Edge("B", "N"), Edge("B", "steps"), Edge("N", "S"), Edge("B", "S"), Edge("steps", "C"), Edge("C", "G"))
        return Hypergraph(variables, edges, (Hyperedge(("N", "S"), "C"),), noise=noise, name="budget-truth")
