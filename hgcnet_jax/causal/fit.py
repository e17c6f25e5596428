"""A fitted structural causal model (:class:`Fit`) and the settings that made it (:class:`FitConfig`).

A :class:`Fit` is a value: the graph, the table, the generated model and its posterior.
The queries (:mod:`~hgcnet_jax.causal.effects`, :mod:`~hgcnet_jax.causal.compare`,
:mod:`~hgcnet_jax.causal.refute`, :mod:`~hgcnet_jax.causal.recommend`) are functions
of a Fit, and inference (:mod:`~hgcnet_jax.causal.inference`) makes one; this module
imports neither.

A fit's posterior records what the rest of the Fit is rebuilt from: its attributes hold
the settings (``fit_config``, JSON) and the PRNG key (``fit_key_data``, the key's
``uint32`` words, and ``fit_key_impl``, its implementation; empty for a raw
``PRNGKey`` array). So a posterior saved to netCDF, with the graph and the table,
gives back the Fit (:meth:`Fit.from_idata`): nothing re-derives its key.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from typing import Any, Literal

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from .convergence import extreme, summarise
from .data import Inputs, Scaling, prepare
from .hypergraph import Hypergraph
from .identify import identification
from .model import Layout, make_model

__all__ = ["FitConfig", "Fit", "posterior_attrs"]

_CONFIG_ATTR = "fit_config"
_KEY_DATA_ATTR = "fit_key_data"
_KEY_IMPL_ATTR = "fit_key_impl"


def posterior_attrs(config: FitConfig, key: jax.Array) -> dict[str, Any]:
    """What a fit's posterior records about it: its settings and PRNG key, netCDF-serialisable.

    Args:
        config: The fit's settings.
        key: The fit's key: typed (``jax.random.key``) or raw (``jax.random.PRNGKey``).

    Returns:
        ``{"fit_config": json, "fit_key_data": [uint32 …], "fit_key_impl": name or ""}``.
    """
    typed = jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
    words = np.asarray(jax.random.key_data(key) if typed else key, dtype=np.uint32).ravel()
    return {
        _CONFIG_ATTR: config.to_json(),
        _KEY_DATA_ATTR: [int(w) for w in words],
        _KEY_IMPL_ATTR: str(jax.random.key_impl(key)) if typed else "",
    }


def _key_from_attrs(attrs: Mapping[str, Any]) -> jax.Array:
    """The inverse of the key part of :func:`posterior_attrs`."""
    words = np.atleast_1d(np.asarray(attrs[_KEY_DATA_ATTR])).astype(np.uint32)
    impl = str(attrs[_KEY_IMPL_ATTR])
    return jax.random.wrap_key_data(words, impl=impl) if impl else jnp.asarray(words, dtype=jnp.uint32)


@dataclasses.dataclass(frozen=True)
class FitConfig:
    """Inference settings (validated; errors name the field).

    Attributes:
        method: ``"nuts"`` (several chains vectorised) or ``"svi"`` (a multivariate
            Normal guide; fast on large tables, approximate).
        num_warmup: NUTS warm-up steps per chain.
        num_samples: Posterior draws per chain (NUTS) or in total (SVI).
        num_chains: NUTS chains, run vectorised in one program.
        target_accept_prob: NUTS step-size adaptation target.
        svi_steps: Optimisation steps for SVI.
        svi_lr: Adam learning rate for SVI.
        max_r_hat: Warn when any parameter's split-r_hat exceeds this.
        min_ess_per_chain: Warn when any parameter's effective sample size is below
            this times the number of chains (Vehtari et al. 2021 suggest 100).
    """

    method: Literal["nuts", "svi"] = "nuts"
    num_warmup: int = 500
    num_samples: int = 1000
    num_chains: int = 2
    target_accept_prob: float = 0.85
    svi_steps: int = 4000
    svi_lr: float = 0.01
    max_r_hat: float = 1.01
    min_ess_per_chain: float = 100.0

    def __post_init__(self) -> None:
        if self.method not in ("nuts", "svi"):
            raise ValueError(f"FitConfig.method must be 'nuts' or 'svi', got {self.method!r}")
        for f in ("num_warmup", "num_samples", "num_chains", "svi_steps"):
            val = getattr(self, f)
            lo = 0 if f == "num_warmup" else 1
            if not isinstance(val, (int, np.integer)) or isinstance(val, bool) or val < lo:
                raise ValueError(f"FitConfig.{f} must be an int >= {lo}, got {val!r}")
        if not 0.0 < self.target_accept_prob < 1.0:
            raise ValueError(f"FitConfig.target_accept_prob must be in (0, 1), got {self.target_accept_prob!r}")
        if not self.svi_lr > 0:
            raise ValueError(f"FitConfig.svi_lr must be > 0, got {self.svi_lr!r}")
        if not self.max_r_hat >= 1.0:
            raise ValueError(f"FitConfig.max_r_hat must be >= 1, got {self.max_r_hat!r}")
        if not self.min_ess_per_chain >= 0:
            raise ValueError(f"FitConfig.min_ess_per_chain must be >= 0, got {self.min_ess_per_chain!r}")

    def to_json(self) -> str:
        """The settings as a JSON object (what a fit's posterior records)."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> FitConfig:
        """The inverse of :meth:`to_json` (validated as any FitConfig).

        Raises:
            ValueError: if ``text`` is not a JSON object of FitConfig fields.
        """
        try:
            fields = json.loads(text)
            return cls(**fields)
        except (TypeError, json.JSONDecodeError) as e:
            raise ValueError(f"not a FitConfig in JSON ({e}): {text[:200]!r}") from None


@dataclasses.dataclass(frozen=True)
class Fit:
    """A fitted structural causal model.

    Queries are functions of a Fit (``causal.ate(fit, "B", 16, 512, "G")`` …), not methods:
    the Fit stays a leaf that the queries import.

    Attributes:
        graph: The hypergraph.
        data: The runs table it was fitted on.
        config: The inference settings.
        model: The generated NumPyro model (unconditioned).
        layout: Where each readable parameter lives in the model's sites.
        inputs: Covariates and cut masks, as passed to ``model``.
        observed: Standardised observed values of the endogenous variables.
        scaling: Raw ↔ model scale per variable.
        samples: Posterior draws of every parameter site, flattened over chains:
            ``{site: array (num_draws, ...)}``.
        idata: The posterior as ArviZ ``InferenceData`` with groups ``posterior``,
            ``log_likelihood`` (``"joint"``: per-run log density of all endogenous
            variables, and one entry per variable), ``observed_data`` and
            ``sample_stats`` (NUTS: ``diverging`` and ``n_steps``, the leapfrog steps
            of each draw). Its posterior's attributes record the fit's settings and key
            (see :meth:`from_idata`).
        diagnostics: One row per scalar parameter: ``site, mean, sd, r_hat, ess,
            ess_tail`` (:func:`hgcnet_jax.causal.convergence.summarise`);
            :func:`hgcnet_jax.causal.diagnostics` reads the verdict off it.
        num_divergences: Divergent NUTS transitions after warm-up (0 for SVI).
        wall_time_s: Seconds spent in inference.
        key: The PRNG key the fit used (refutations derive theirs from it).
        identification: One row per mediator, its measurement error against its spread
            across arms (:func:`~hgcnet_jax.causal.identify.identification`); the fit
            warned (:class:`~hgcnet_jax.causal.MediatorNotIdentifiedWarning`) for each
            row with ``identified`` false.
    """

    graph: Hypergraph
    data: pd.DataFrame
    config: FitConfig
    model: Callable = dataclasses.field(repr=False)
    layout: Layout = dataclasses.field(repr=False)
    inputs: Inputs = dataclasses.field(repr=False)
    observed: dict = dataclasses.field(repr=False)
    scaling: Scaling = dataclasses.field(repr=False)
    samples: dict = dataclasses.field(repr=False)
    idata: az.InferenceData = dataclasses.field(repr=False)
    diagnostics: pd.DataFrame = dataclasses.field(repr=False)
    num_divergences: int
    wall_time_s: float
    key: jax.Array = dataclasses.field(repr=False)
    identification: pd.DataFrame | None = dataclasses.field(default=None, repr=False)

    @property
    def num_draws(self) -> int:
        return int(next(iter(self.samples.values())).shape[0])

    @property
    def num_rows(self) -> int:
        return int(self.inputs["rows"].shape[0])

    @property
    def max_r_hat(self) -> float:
        """Worst split-R-hat in :attr:`diagnostics` (NaN when there is none)."""
        return extreme(self.diagnostics, "r_hat", "max")[0]

    @property
    def min_ess(self) -> float:
        """Smallest bulk effective sample size in :attr:`diagnostics` (NaN when there is none)."""
        return extreme(self.diagnostics, "ess", "min")[0]

    @classmethod
    def from_idata(
        cls,
        idata: az.InferenceData,
        graph: Hypergraph,
        data: pd.DataFrame,
        *,
        wall_time_s: float = float("nan"),
    ) -> Fit:
        """Rebuild the :class:`Fit` whose posterior is ``idata``, without inference.

        ``data`` and ``graph`` must be the table and graph that were fitted:
        :func:`~hgcnet_jax.causal.data.prepare` and
        :func:`~hgcnet_jax.causal.model.make_model` rebuild the model, its inputs and
        scaling; :meth:`Layout.unname` recovers the draws of the model's own sites from
        the posterior's readable names; the settings and the PRNG key come from the
        posterior's attributes (written by :func:`hgcnet_jax.causal.fit`). Every query
        then gives what it gave on the original fit, up to float32 rounding of that
        inversion.

        Args:
            idata: The fit's posterior, e.g. ``arviz.from_netcdf(path)`` of a saved ``fit.idata``.
            graph: The fitted hypergraph.
            data: The fitted runs table.
            wall_time_s: Seconds the original inference took, when known.

        Returns:
            The rebuilt :class:`Fit`.

        Raises:
            TypeError: if ``idata`` is not ArviZ ``InferenceData`` with a posterior.
            ValueError: if the posterior does not record its fit's settings and key
                (written before fits recorded them: fit again), or was fitted on
                another graph or another number of runs.
            DataError: as :func:`~hgcnet_jax.causal.data.prepare`, for a bad table.
        """
        if not isinstance(idata, az.InferenceData) or "posterior" not in idata.groups():
            raise TypeError(f"idata must be ArviZ InferenceData with a posterior, got {type(idata).__name__}")
        post = idata.posterior
        missing = [a for a in (_CONFIG_ATTR, _KEY_DATA_ATTR, _KEY_IMPL_ATTR) if a not in post.attrs]
        if missing:
            raise ValueError(
                f"the posterior does not record its fit's settings and PRNG key (attribute(s) {missing}): it was "
                "written before hgcnet_jax fits recorded them, so the fit cannot be rebuilt; fit again "
                "(in a study folder: delete summary.json and posterior_*.nc, then run the study again)"
            )
        fitted_graph = idata.observed_data.attrs.get("graph") if "observed_data" in idata.groups() else None
        if fitted_graph is not None and fitted_graph != graph.name:
            raise ValueError(f"the posterior is of graph {fitted_graph!r}, not of {graph.name!r}")
        inputs, observed, scaling = prepare(graph, data)
        if "observed_data" in idata.groups():
            sizes = {int(np.asarray(idata.observed_data[v]).shape[-1]) for v in idata.observed_data.data_vars}
            if sizes and sizes != {len(data)}:
                raise ValueError(f"the posterior was fitted on {sorted(sizes)} runs, the table has {len(data)}")
        scm = make_model(graph, scaling)
        grouped = scm.layout.unname(post)
        stats = idata.sample_stats if "sample_stats" in idata.groups() else None
        return cls(
            graph=graph,
            data=data,
            config=FitConfig.from_json(str(post.attrs[_CONFIG_ATTR])),
            model=scm.model,
            layout=scm.layout,
            inputs=inputs,
            observed=observed,
            scaling=scaling,
            samples={k: jnp.asarray(v.reshape((-1,) + v.shape[2:])) for k, v in grouped.items()},
            idata=idata,
            diagnostics=summarise(post),
            num_divergences=int(np.asarray(stats["diverging"]).sum()) if stats is not None and "diverging" in stats else 0,
            wall_time_s=float(wall_time_s),
            key=_key_from_attrs(post.attrs),
            identification=identification(graph, data),
        )

    def __repr__(self) -> str:
        return (
            f"Fit(graph={self.graph.name!r}, method={self.config.method!r}, rows={self.num_rows}, "
            f"draws={self.num_draws}, max_r_hat={self.max_r_hat:.3f}, min_ess={self.min_ess:.0f}, "
            f"divergences={self.num_divergences}, wall_time_s={self.wall_time_s:.1f})"
        )
