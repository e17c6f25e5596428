"""Inference: fit the generated model of a :class:`Hypergraph` to runs tables (NUTS or SVI).

:func:`fit` and :func:`fit_many` validate every table (:func:`~hgcnet_jax.causal.data.prepare`),
build the model (:func:`~hgcnet_jax.causal.model.make_model`), condition it on the
table and infer its posterior in one compiled program per table shape: NUTS chains
vectorised with :func:`jax.vmap` inside one :func:`jax.jit` (:func:`_nuts_program`), or
SVI with a full-rank Gaussian guide (:func:`_svi`). The result is a
:class:`~hgcnet_jax.causal.fit.Fit`; a NUTS fit whose
:func:`~hgcnet_jax.causal.diagnostics` find problems warns
(:class:`~hgcnet_jax.causal.ConvergenceWarning`).
"""

from __future__ import annotations

import dataclasses
import functools
import time
import warnings
from collections.abc import Callable
from typing import Any, Literal

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import pandas as pd
from numpyro import handlers
from numpyro.infer import SVI, Trace_ELBO, autoguide
from numpyro.infer.hmc import hmc
from numpyro.infer.util import initialize_model

from hgcnet_jax._keys import check_key as _check_key

from .convergence import ConvergenceWarning, diagnostics, summarise
from .data import Inputs, prepare
from .fit import Fit, FitConfig, posterior_attrs
from .hypergraph import Hypergraph
from .identify import MediatorNotIdentifiedWarning, identification, not_identified_message
from .model import SCM, make_model, pointwise_log_likelihood

__all__ = ["fit", "fit_many"]

#: XLA options for the inference programs. A NUTS or SVI program is a scan of thousands of
#: transitions, so once compiled its run time dominates: it is compiled at XLA's default
#: backend optimisation even where ``XLA_FLAGS`` lowers it for the process to save compile
#: time (the test suite does; measured on one 200-run table, 2 chains x 800 transitions, with
#: the process at ``--xla_backend_optimization_level=0``: 1.22 s per fit unpinned, 0.37 s pinned).
INFERENCE_COMPILER_OPTIONS: dict[str, Any] = {
    "xla_backend_optimization_level": 3,
    "xla_llvm_disable_expensive_passes": False,
}


def _nuts_program(model: Callable, config: FitConfig) -> Callable:
    """One jitted program: initialise, warm up and sample ``num_chains`` NUTS chains.

    Everything (initialisation included) runs inside a single :func:`jax.jit`, and the
    chains are vectorised with :func:`jax.vmap`; calling the returned function again
    on a table of the same shape reuses the compiled program (see :func:`fit_many`).
    Uses NumPyro's functional :func:`numpyro.infer.hmc.hmc` kernel (Hoffman & Gelman
    2014, with NumPyro's multinomial sampling and dual-averaging / mass-matrix warm-up).

    Warm-up and sampling are one :func:`jax.lax.scan` over ``num_warmup + num_samples``
    transitions (the kernel adapts while its step counter is below ``num_warmup``), so
    the NUTS kernel is compiled once rather than once per loop: compiling dominates a
    single fit's time on CPU. The program returns the draws after warm-up, their
    divergence flags and the leapfrog steps of every transition (warm-up included). It is
    compiled with :data:`INFERENCE_COMPILER_OPTIONS`.
    """
    num_warmup, num_samples = config.num_warmup, config.num_samples

    def one_chain(key, inputs, observed):
        conditioned = handlers.condition(model, data=observed)
        k_init, k_run = jax.random.split(key)
        info, potential_fn, postprocess_fn, _ = initialize_model(k_init, conditioned, model_args=(inputs,))
        init_kernel, sample_kernel = hmc(potential_fn, algo="NUTS")
        state = init_kernel(
            info, num_warmup=num_warmup, target_accept_prob=config.target_accept_prob, rng_key=k_run
        )

        def step(s, _):
            s = sample_kernel(s)
            return s, (s.z, s.diverging, s.num_steps)

        _, (zs, diverging, num_steps) = jax.lax.scan(step, state, None, length=num_warmup + num_samples)
        zs = jax.tree.map(lambda x: x[num_warmup:], zs)
        return jax.vmap(postprocess_fn)(zs), diverging[num_warmup:], num_steps

    return jax.jit(jax.vmap(one_chain, in_axes=(0, None, None)), compiler_options=INFERENCE_COMPILER_OPTIONS)


def _check_overrides(config: FitConfig | None, method: str | None, overrides: dict) -> FitConfig:
    config = config or FitConfig()
    if not isinstance(config, FitConfig):
        raise TypeError(f"config must be a FitConfig, got {type(config).__name__}")
    if method is not None:
        overrides["method"] = method
    valid = [f.name for f in dataclasses.fields(FitConfig)]
    bad = sorted(set(overrides) - set(valid))
    if bad:
        raise TypeError(f"fit() got unknown option(s) {bad}; valid: {valid}")
    return dataclasses.replace(config, **overrides)


def _assemble(graph, data, config, scm: SCM, inputs, observed, scaling, grouped, diverging, num_steps, wall, key) -> Fit:
    samples = {k: jnp.asarray(np.asarray(v).reshape((-1,) + v.shape[2:])) for k, v in grouped.items()}
    ll = pointwise_log_likelihood(scm.model, inputs, observed, samples)
    n_chain = next(iter(grouped.values())).shape[0]
    ll_grouped = {k: np.asarray(v).reshape((n_chain, -1) + v.shape[1:]) for k, v in ll.items()}
    named = scm.layout.named({k: np.asarray(v) for k, v in grouped.items()})
    idata = az.from_dict(
        posterior=named,
        log_likelihood=ll_grouped,
        observed_data={k: np.asarray(v) for k, v in observed.items()},
        sample_stats=None
        if diverging is None
        else {"diverging": np.asarray(diverging), "n_steps": np.asarray(num_steps)[:, config.num_warmup :]},
        dims={k: ["run"] for k in list(ll_grouped) + list(observed)},
        attrs={"graph": graph.name, "method": config.method, "inference_library": "numpyro"},
    )
    idata.posterior.attrs.update(posterior_attrs(config, key))
    result = Fit(
        graph=graph,
        data=data,
        config=config,
        model=scm.model,
        layout=scm.layout,
        inputs=inputs,
        observed=observed,
        scaling=scaling,
        samples=samples,
        idata=idata,
        diagnostics=summarise(idata.posterior),
        num_divergences=0 if diverging is None else int(np.asarray(diverging).sum()),
        wall_time_s=wall,
        key=key,
        identification=identification(graph, data),
    )
    _warn_if_not_identified(result)
    if config.method == "nuts":
        _warn_if_bad(result)
    return result


def fit(
    graph: Hypergraph,
    data: pd.DataFrame,
    *,
    key: jax.Array,
    method: Literal["nuts", "svi"] | None = None,
    config: FitConfig | None = None,
    **overrides: Any,
) -> Fit:
    """Fit the structural causal model of ``graph`` to a runs table.

    Args:
        graph: The causal hypergraph.
        data: One row per run, with a column for every variable (and cut column).
        key: PRNG key (keyword-only).
        method: ``"nuts"`` or ``"svi"``; overrides ``config.method``.
        config: Inference settings (defaults: NUTS, 2 chains × 1000 draws after 500
            warm-up steps, chains vectorised in one compiled program).
        **overrides: Any :class:`FitConfig` field, e.g. ``num_samples=300``.

    Returns:
        A :class:`Fit` with posterior samples, ArviZ data (its posterior's attributes
        record ``config`` and ``key``, see :meth:`Fit.from_idata`) and diagnostics.

    Raises:
        TypeError, DataError, HypergraphError: for bad inputs, before inference.

    Warns:
        MediatorNotIdentifiedWarning: for each mediator whose measurement error (its
            ``<column>_se`` / ``<column>_err`` column) is as large as its spread across
            the treatment's arms, naming the column and the runs (recorded on
            ``Fit.identification``; :func:`~hgcnet_jax.causal.criticize` fails on it).
        ConvergenceWarning: with the problems :func:`~hgcnet_jax.causal.diagnostics`
            finds (NUTS): r_hat above ``config.max_r_hat``, a bulk or tail effective
            sample size below ``config.min_ess_per_chain × num_chains``, or divergent
            transitions.
    """
    return fit_many(graph, [data], key=key, method=method, config=config, **overrides)[0]


def fit_many(
    graph: Hypergraph,
    tables: list[pd.DataFrame],
    *,
    key: jax.Array,
    method: Literal["nuts", "svi"] | None = None,
    config: FitConfig | None = None,
    **overrides: Any,
) -> list[Fit]:
    """Fit the same graph to several tables, compiling the NUTS program once.

    Tables with the same number of rows (and the same categorical levels) reuse one
    compiled program: simulation studies, refutations and bootstrap-style analyses
    pay the compile cost once. Every table is validated before any inference.

    Args:
        graph: The causal hypergraph.
        tables: Runs tables.
        key: PRNG key (split into one key per table).
        method, config, **overrides: As for :func:`fit`.

    Returns:
        One :class:`Fit` per table, in order.
    """
    if not isinstance(graph, Hypergraph):
        raise TypeError(f"graph must be a Hypergraph, got {type(graph).__name__}")
    key = _check_key(key)
    config = _check_overrides(config, method, dict(overrides))
    if isinstance(tables, pd.DataFrame) or not isinstance(tables, (list, tuple)):
        raise TypeError(f"tables must be a list of DataFrames, got {type(tables).__name__}")
    prepared = [prepare(graph, t) for t in tables]
    keys = jax.random.split(key, len(tables))
    programs: dict = {}
    fits = []
    for table, (inputs, observed, scaling), k in zip(tables, prepared, keys, strict=True):
        sig = tuple(sorted((name, lv) for name, lv in scaling.levels.items()))
        if sig not in programs:
            scm = make_model(graph, scaling)
            programs[sig] = (scm, _nuts_program(scm.model, config) if config.method == "nuts" else None)
        scm, program = programs[sig]
        t0 = time.perf_counter()
        if config.method == "nuts":
            grouped, diverging, num_steps = program(jax.random.split(k, config.num_chains), inputs, observed)
            grouped = jax.tree.map(np.asarray, jax.block_until_ready(grouped))
            diverging, num_steps = np.asarray(diverging), np.asarray(num_steps)
        else:
            grouped, diverging, num_steps = _svi(scm.model, config, k, inputs, observed), None, None
        wall = time.perf_counter() - t0
        fits.append(
            _assemble(graph, table, config, scm, inputs, observed, scaling, grouped, diverging, num_steps, wall, k)
        )
    return fits


def _svi(model: Callable, config: FitConfig, key: jax.Array, inputs: Inputs, observed: dict) -> dict:
    """SVI with a full-rank Gaussian guide, in one jitted program.

    Returns ``{site: (1, draws, ...)}`` (one pseudo-chain).
    """
    conditioned = handlers.condition(model, data=observed)
    guide = autoguide.AutoMultivariateNormal(conditioned)
    svi = SVI(conditioned, guide, numpyro.optim.Adam(config.svi_lr), Trace_ELBO())

    @functools.partial(jax.jit, compiler_options=INFERENCE_COMPILER_OPTIONS)
    def run(key, inputs):
        k_init, k_draw = jax.random.split(key)
        state = svi.init(k_init, inputs)
        state, losses = jax.lax.scan(lambda s, _: svi.update(s, inputs), state, None, length=config.svi_steps)
        params = svi.get_params(state)
        return guide.sample_posterior(k_draw, params, sample_shape=(config.num_samples,)), losses

    draws, losses = run(key, inputs)
    if not np.isfinite(np.asarray(losses[-1])):
        raise FloatingPointError("SVI diverged (non-finite ELBO); lower svi_lr or use method='nuts'")
    return {k: np.asarray(v)[None] for k, v in draws.items() if k not in observed}


def _warn_if_not_identified(result: Fit) -> None:
    """Warn (:class:`MediatorNotIdentifiedWarning`) once per mediator whose error is as large as its spread."""
    tcol = result.graph.variable(result.graph.treatment).column
    for row in result.identification.itertuples():
        if not row.identified:
            warnings.warn(f"{result.graph.name!r}: " + not_identified_message(row, tcol),
                          MediatorNotIdentifiedWarning, stacklevel=4)


def _warn_if_bad(result: Fit) -> None:
    """Warn (:class:`ConvergenceWarning`) with the problems of :func:`diagnostics`, if any."""
    problems = diagnostics(result).problems
    if problems:
        warnings.warn(
            f"NUTS on {result.graph.name!r}: "
            + "; ".join(problems)
            + ". Increase num_warmup/num_samples or target_accept_prob, or simplify the graph.",
            ConvergenceWarning,
            stacklevel=4,
        )
