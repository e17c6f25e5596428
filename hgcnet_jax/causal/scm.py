"""A NumPyro structural causal model generated from a :class:`Hypergraph`, and its fit.

For every endogenous variable ``v`` (topological order) the generated model has one
sample site named ``v`` with the additive-noise structural equation

.. math::

    v = \\alpha_v + \\sum_{p \\to v} f_{pv}(p) + \\sum_{H \\Rightarrow v} g_{Hv}(x_H)
        + \\sum_{\\text{covariates } z} h_{zv}(z) + \\sigma_v \\varepsilon_v,

on standardised data, with :math:`\\varepsilon_v` standard Normal or Student-t.
``f`` is linear or a linear term plus radial basis functions (the flexible, "deep"
edge); ``g`` is the sum of all products of two or more hyperedge members, or a
one-hidden-layer ``tanh`` network; categorical covariates add one offset per level
(the first level is the reference). Priors are weakly informative on the
standardised scale: ``α, β ~ N(0, 1)``, interactions ``γ ~ N(0, 0.5)``,
``σ ~ HalfNormal(1)``, Student-t degrees of freedom ``ν ~ Gamma(2, 0.1)``.

Parameters live in a few vector sites (``"w"``: every coefficient, non-centred with
its prior scale; ``"sigma"``; ``"rbf_scale"``; ``"nu"``; ``"mlp_*[…]"``), which keeps
tracing and compilation fast; :class:`Layout` names every coefficient
(``"intercept[N]"``, ``"coef[B->N]"``, ``"inter[N*S->C]"``, ``"sigma[G]"`` …) and the
ArviZ posterior and diagnostics use those readable names.

The model is one plain function ``model(inputs)`` with *unobserved* variable sites.
Fitting conditions it on the table (:func:`numpyro.handlers.condition`); every query
in :mod:`hgcnet_jax.causal.effects` wraps the same function in ``do``, ``substitute``,
``seed`` and ``trace`` — no query rewrites the model.

Rows where an experiment set a mediator (its :attr:`Variable.cut_column` is true)
enter with that mediator's equation cut: :func:`numpyro.handlers.mask` drops its
likelihood term on those rows while the observed value still feeds its children.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
import warnings
from collections.abc import Callable, Mapping
from typing import Any, Literal

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pandas as pd
from jaxtyping import Array, Float
from numpyro import handlers
from numpyro.diagnostics import summary as _np_summary
from numpyro.infer import SVI, Trace_ELBO, autoguide
from numpyro.infer.hmc import hmc
from numpyro.infer.util import initialize_model

from .hypergraph import Hypergraph

__all__ = [
    "MIN_ROWS",
    "ConvergenceWarning",
    "DataError",
    "Scaling",
    "FitConfig",
    "Fit",
    "prepare",
    "make_model",
    "fit",
    "fit_many",
    "pointwise_log_likelihood",
    "Layout",
]

#: Fewest rows :func:`fit` accepts.
MIN_ROWS = 10

Inputs = dict[str, Any]


class DataError(ValueError):
    """A runs table that cannot be fitted (missing column, non-finite value …)."""


class ConvergenceWarning(UserWarning):
    """MCMC diagnostics look bad (r_hat, effective sample size or divergences)."""


# --------------------------------------------------------------------------- data
@dataclasses.dataclass(frozen=True)
class Scaling:
    """How raw columns map to the model's standardised scale, per variable.

    ``model = (transform(raw) − mean) / std``. Categorical covariates store their
    ``levels`` instead (codes are positions in that tuple).
    """

    mean: Mapping[str, float]
    std: Mapping[str, float]
    levels: Mapping[str, tuple]

    def to_model(self, graph: Hypergraph, name: str, raw: Any) -> np.ndarray:
        """Raw values of variable ``name`` → standardised model scale.

        Raises:
            ValueError: if a value is outside the variable's transform domain.
        """
        var = graph.variable(name)
        raw = np.asarray(raw, dtype=np.float64)
        if not np.all(np.isfinite(raw)):
            raise ValueError(f"value for {name!r} must be finite, got {raw}")
        if not np.all(var.in_domain(raw)):
            raise ValueError(f"value for {name!r} must be {var.domain_text} (transform {var.transform!r}), got {raw}")
        return (var.forward(raw) - self.mean[name]) / self.std[name]

    def to_raw(self, graph: Hypergraph, name: str, z: Any) -> np.ndarray:
        """Standardised model scale → raw units of variable ``name``."""
        var = graph.variable(name)
        return var.inverse(np.asarray(z, dtype=np.float64) * self.std[name] + self.mean[name])


def prepare(graph: Hypergraph, data: pd.DataFrame, *, min_rows: int = MIN_ROWS) -> tuple[Inputs, dict, Scaling]:
    """Validate a runs table against ``graph`` and standardise it.

    Every check runs here, before any inference: each error names the column or
    variable and what to do.

    Args:
        graph: The hypergraph.
        data: One row per run.
        min_rows: Fewest rows accepted.

    Returns:
        ``(inputs, observed, scaling)``: ``inputs`` holds the covariates (float32
        standardised, or int32 codes for categorical ones) and the cut masks
        (``"cut:<var>"``, bool); ``observed`` maps every endogenous variable to its
        standardised float32 values; ``scaling`` maps back to raw units.

    Raises:
        TypeError: if ``data`` is not a DataFrame.
        DataError: on missing columns, too few rows, non-finite values, values
            outside a transform's domain, a constant treatment (or any constant
            endogenous column), or a cut column that is not boolean.
    """
    if not isinstance(graph, Hypergraph):
        raise TypeError(f"graph must be a Hypergraph, got {type(graph).__name__}")
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame (one row per run), got {type(data).__name__}")
    needed = [(v.name, v.column) for v in graph.variables] + [
        (v.name, v.cut_column) for v in graph.variables if v.cut_column
    ]
    missing = [f"{col!r} (for {name})" for name, col in needed if col not in data.columns]
    if missing:
        raise DataError(
            f"data is missing column(s) {', '.join(missing)}; available: {list(map(str, data.columns))}. "
            "Rename the columns or pass the column names to the Variable/Hypergraph.paper(columns=...)."
        )
    n = len(data)
    if n < min_rows:
        raise DataError(f"data has {n} rows; at least {min_rows} runs are needed to fit the model")
    inputs: Inputs = {}
    observed: dict[str, jnp.ndarray] = {}
    mean: dict[str, float] = {}
    std: dict[str, float] = {}
    levels: dict[str, tuple] = {}
    for v in graph.variables:
        col = data[v.column]
        if v.categorical:
            if col.isna().any():
                bad = int(np.flatnonzero(col.isna().to_numpy())[0])
                raise DataError(f"column {v.column!r} (covariate {v.name}) has missing labels, e.g. at row {bad}")
            codes, uniques = pd.factorize(col, sort=True)
            levels[v.name] = tuple(uniques.tolist())
            inputs[v.name] = jnp.asarray(codes, dtype=jnp.int32)
            continue
        try:
            raw = pd.to_numeric(col, errors="raise").to_numpy(dtype=np.float64)
        except (TypeError, ValueError):
            hint = "; mark it categorical=True if it holds labels" if v.role == "covariate" else ""
            raise DataError(f"column {v.column!r} (variable {v.name}) must be numeric{hint}") from None
        bad = np.flatnonzero(~np.isfinite(raw))
        if bad.size:
            raise DataError(
                f"column {v.column!r} (variable {v.name}) has {bad.size} non-finite value(s) (NaN/inf), "
                f"first at row {int(bad[0])}; drop or impute those runs before fitting"
            )
        out = np.flatnonzero(~v.in_domain(raw))
        if out.size:
            raise DataError(
                f"column {v.column!r} (variable {v.name}) has {out.size} value(s) outside the domain of its "
                f"{v.transform!r} transform ({v.domain_text}), first at row {int(out[0])}: {raw[out[0]]!r}"
            )
        z = v.forward(raw)
        s = float(np.std(z))
        if not s > 1e-12 * max(1.0, float(np.abs(z).max())):
            what = "treatment" if v.role == "treatment" else f"{v.role}"
            raise DataError(
                f"column {v.column!r} ({what} {v.name}) is constant ({raw[0]!r}); "
                + (
                    "a causal effect of a treatment that never varies cannot be estimated"
                    if v.role == "treatment"
                    else "it cannot be standardised or carry any effect; drop it from the graph"
                )
            )
        mean[v.name], std[v.name] = float(np.mean(z)), s
        zs = jnp.asarray((z - mean[v.name]) / s, dtype=jnp.float32)
        if v.role == "covariate":
            inputs[v.name] = zs
        else:
            observed[v.name] = zs
    for v in graph.variables:
        if v.cut_column is None:
            continue
        cut = data[v.cut_column]
        vals = set(pd.unique(cut.dropna()))
        if cut.isna().any() or not vals <= {True, False, 0, 1}:
            raise DataError(
                f"cut column {v.cut_column!r} (marks runs where {v.name} was set by an experiment) must be "
                f"boolean (True/False or 0/1) without missing values; got values {sorted(map(str, vals))[:5]}"
            )
        inputs[f"cut:{v.name}"] = jnp.asarray(cut.to_numpy().astype(bool))
    inputs["rows"] = jnp.arange(n, dtype=jnp.int32)
    return inputs, observed, Scaling(mean, std, levels)


# -------------------------------------------------------------------------- model
def _rbf(x: jnp.ndarray, k: int) -> jnp.ndarray:
    centres = jnp.linspace(-2.0, 2.0, k)
    width = 4.0 / (k - 1)
    return jnp.exp(-0.5 * ((x[..., None] - centres) / width) ** 2)


@dataclasses.dataclass(frozen=True)
class _Term:
    """One block of columns in a variable's design matrix."""

    kind: str  # intercept | linear | categorical | rbf | inter
    parents: tuple[str, ...]
    names: tuple[str, ...]  # one readable name per coefficient
    scale: float = 1.0  # prior scale of the coefficients
    basis: int = 0  # rbf: number of basis functions; categorical: levels - 1
    rbf_index: int = -1  # rbf: position in the rbf_scale vector


def _terms(graph: Hypergraph, levels: Mapping[str, tuple]) -> dict[str, list[_Term]]:
    """The additive terms of every endogenous variable's structural equation."""
    categorical = {v.name for v in graph.variables if v.categorical}
    out: dict[str, list[_Term]] = {}
    n_rbf = 0
    for v in graph.endogenous:
        terms = [_Term("intercept", (), (f"intercept[{v}]",))]
        have: set[str] = set()
        for e in graph.edges_into(v):
            p = e.parent
            have.add(p)
            if p in categorical:
                lv = levels[p]
                terms.append(
                    _Term("categorical", (p,), tuple(f"offset[{p}->{v}][{x}]" for x in lv[1:]), basis=len(lv) - 1)
                )
                continue
            terms.append(_Term("linear", (p,), (f"coef[{e.label}]",)))
            if e.form == "rbf":
                names = tuple(f"rbf[{e.label}][{i}]" for i in range(e.num_basis))
                terms.append(_Term("rbf", (p,), names, basis=e.num_basis, rbf_index=n_rbf))
                n_rbf += 1
        for h in graph.hyperedges_into(v):
            for p in h.parents:
                if p not in have:
                    have.add(p)
                    terms.append(_Term("linear", (p,), (f"coef[{p}->{v}]",)))
            if h.form == "interaction":
                for r in range(2, len(h.parents) + 1):
                    for idx in itertools.combinations(h.parents, r):
                        terms.append(_Term("inter", idx, (f"inter[{'*'.join(idx)}->{v}]",), scale=0.5))
        out[v] = terms
    return out


def _design(terms: list[_Term], values: Mapping[str, jnp.ndarray]) -> jnp.ndarray:
    cols = []
    n = None
    for t in terms:
        if t.kind == "intercept":
            continue
        x = values[t.parents[0]]
        if t.kind == "linear":
            cols.append(x[..., None])
        elif t.kind == "categorical":
            cols.append(jax.nn.one_hot(x, t.basis + 1)[..., 1:])
        elif t.kind == "rbf":
            cols.append(_rbf(x, t.basis))
        else:
            cols.append(jnp.prod(jnp.stack([values[p] for p in t.parents], axis=-1), axis=-1)[..., None])
        n = x.shape
    if n is None:
        return None
    cols = [jnp.broadcast_to(c, n + c.shape[-1:]) for c in cols]
    return jnp.concatenate(cols, axis=-1)


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where each readable coefficient lives in the model's parameter vectors.

    The generated model keeps its parameters in a few vector sites (fast to trace
    and compile): ``"w"`` (every coefficient, standard Normal, non-centred:
    coefficient = prior scale × w), ``"sigma"`` (one noise scale per endogenous
    variable), ``"rbf_scale"`` (one per radial-basis edge), ``"nu"`` (Student-t
    degrees of freedom) and ``"mlp[…]"`` sites. :meth:`named` turns draws of those
    into one array per readable name (``"coef[B->N]"``, ``"sigma[G]"`` …).
    """

    coef_names: tuple[str, ...]
    coef_scales: tuple[float, ...]
    endogenous: tuple[str, ...]
    rbf_labels: tuple[str, ...]
    student: bool

    def named(self, samples: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Draws keyed by readable parameter name (effective, scaled coefficients)."""
        out: dict[str, np.ndarray] = {}
        w = np.asarray(samples["w"])
        tau = np.asarray(samples["rbf_scale"]) if "rbf_scale" in samples else None
        rbf_pos = {lab: i for i, lab in enumerate(self.rbf_labels)}
        for i, (name, sc) in enumerate(zip(self.coef_names, self.coef_scales, strict=True)):
            val = w[..., i] * sc
            if name.startswith("rbf[") and tau is not None:
                lab = name[4 : name.index("]")]
                val = val * tau[..., rbf_pos[lab]]
            out[name] = val
        sig = np.asarray(samples["sigma"])
        for j, v in enumerate(self.endogenous):
            out[f"sigma[{v}]"] = sig[..., j]
        if tau is not None:
            for j, lab in enumerate(self.rbf_labels):
                out[f"rbf_scale[{lab}]"] = tau[..., j]
        if self.student and "nu" in samples:
            nu = np.asarray(samples["nu"])
            for j, v in enumerate(self.endogenous):
                out[f"nu[{v}]"] = nu[..., j]
        for k, val in samples.items():
            if k.startswith("mlp"):
                out[k] = np.asarray(val)
        return out


def make_model(graph: Hypergraph, scaling: Scaling | None = None) -> Callable[[Inputs], dict]:
    """Build the NumPyro model of ``graph`` (see the module docstring).

    Args:
        graph: The hypergraph.
        scaling: Needed only for categorical covariates (their levels).

    Returns:
        ``model(inputs) -> dict`` mapping every endogenous variable to the value it
        took (the intervened value under ``do``). ``inputs`` is the first output of
        :func:`prepare`. Variable sites are unobserved: condition them with
        :func:`numpyro.handlers.condition` to fit. ``model.layout`` is the
        :class:`Layout` of its parameters.
    """
    levels = {} if scaling is None else dict(scaling.levels)
    for v in graph.variables:
        if v.categorical and v.name not in levels:
            raise ValueError(f"make_model: categorical covariate {v.name!r} needs a Scaling with its levels")
    order = graph.endogenous
    student = graph.noise == "student"
    terms = _terms(graph, levels)
    slices, names, scales, start = {}, [], [], 0
    for v in order:
        k = sum(len(t.names) for t in terms[v])
        slices[v] = (start, start + k)
        start += k
        for t in terms[v]:
            names.extend(t.names)
            scales.extend([t.scale] * len(t.names))
    num_coef = start
    rbf_terms = {v: [t for t in terms[v] if t.kind == "rbf"] for v in order}
    rbf_labels = tuple(
        t.names[0][4 : t.names[0].index("]")] for v in order for t in rbf_terms[v]
    )
    mlps = {v: graph.hyperedges_into(v) for v in order}
    mlps = {v: [h for h in hs if h.form == "mlp"] for v, hs in mlps.items()}
    scale_vec = np.asarray(scales, dtype=np.float32)
    layout = Layout(tuple(names), tuple(scales), order, rbf_labels, student)

    def model(inputs: Inputs) -> dict:
        n = inputs["rows"].shape[0]
        values: dict[str, jnp.ndarray] = {c: inputs[c] for c in graph.covariates}
        w = numpyro.sample("w", dist.Normal(0.0, 1.0).expand([num_coef]).to_event(1))
        sigma = numpyro.sample("sigma", dist.HalfNormal(1.0).expand([len(order)]).to_event(1))
        coef = w * scale_vec
        if rbf_labels:
            tau = numpyro.sample("rbf_scale", dist.HalfNormal(0.5).expand([len(rbf_labels)]).to_event(1))
        if student:
            nu = numpyro.sample("nu", dist.Gamma(2.0, 0.1).expand([len(order)]).to_event(1))
        for j, v in enumerate(order):
            lo, hi = slices[v]
            c = coef[lo:hi]
            if rbf_terms[v]:  # radial-basis weights are scaled by their edge's rbf_scale
                mult = [
                    jnp.full(len(t.names), tau[t.rbf_index]) if t.kind == "rbf" else jnp.ones(len(t.names))
                    for t in terms[v]
                ]
                c = c * jnp.concatenate(mult)
            x = _design(terms[v], values)
            mu = c[0] * jnp.ones(n) if x is None else c[0] + x @ c[1:]
            for h in mlps[v]:
                k, hid, lab = len(h.parents), h.hidden, h.label
                w1 = numpyro.sample(f"mlp_w1[{lab}]", dist.Normal(0.0, 1.0).expand([k, hid]).to_event(2))
                b1 = numpyro.sample(f"mlp_b1[{lab}]", dist.Normal(0.0, 1.0).expand([hid]).to_event(1))
                w2 = numpyro.sample(f"mlp_w2[{lab}]", dist.Normal(0.0, 1.0 / np.sqrt(hid)).expand([hid]).to_event(1))
                xs = jnp.stack([values[p] for p in h.parents], axis=-1)
                mu = mu + jnp.tanh(xs @ w1 + b1) @ w2
            noise = dist.StudentT(nu[j], mu, sigma[j]) if student else dist.Normal(mu, sigma[j])
            keep = ~inputs[f"cut:{v}"] if f"cut:{v}" in inputs else True
            with numpyro.plate("runs", n, dim=-1), handlers.mask(mask=keep):
                # broadcast: under ``do`` the site returns the intervention, maybe a scalar
                values[v] = jnp.broadcast_to(numpyro.sample(v, noise), (n,))
        return {v: values[v] for v in order}

    model.__name__ = f"scm_{graph.name.replace('-', '_')}"
    model.__doc__ = f"NumPyro SCM generated from:\n{graph.summary()}"
    model.layout = layout
    return model


# ---------------------------------------------------------------------------- fit
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


@dataclasses.dataclass(frozen=True)
class Fit:
    """A fitted structural causal model.

    Attributes:
        graph: The hypergraph.
        data: The runs table it was fitted on.
        config: The inference settings.
        model: The generated NumPyro model (unconditioned).
        inputs: Covariates and cut masks, as passed to ``model``.
        observed: Standardised observed values of the endogenous variables.
        scaling: Raw ↔ model scale per variable.
        samples: Posterior draws of every parameter site, flattened over chains:
            ``{site: array (num_draws, ...)}``.
        idata: The posterior as ArviZ ``InferenceData`` with groups ``posterior``,
            ``log_likelihood`` (``"joint"``: per-run log density of all endogenous
            variables, and one entry per variable), ``observed_data`` and
            ``sample_stats`` (NUTS: ``diverging`` and ``n_steps``, the leapfrog steps
            of each draw).
        diagnostics: One row per scalar parameter: ``mean, sd, r_hat, ess``
            (NUTS), from :func:`numpyro.diagnostics.summary`.
        num_divergences: Divergent NUTS transitions after warm-up (0 for SVI).
        wall_time_s: Seconds spent in inference.
        key: The PRNG key the fit used (refutations derive theirs from it).
    """

    graph: Hypergraph
    data: pd.DataFrame
    config: FitConfig
    model: Callable = dataclasses.field(repr=False)
    inputs: Inputs = dataclasses.field(repr=False)
    observed: dict = dataclasses.field(repr=False)
    scaling: Scaling = dataclasses.field(repr=False)
    samples: dict = dataclasses.field(repr=False)
    idata: az.InferenceData = dataclasses.field(repr=False)
    diagnostics: pd.DataFrame = dataclasses.field(repr=False)
    num_divergences: int
    wall_time_s: float
    key: jax.Array = dataclasses.field(repr=False)

    @property
    def num_draws(self) -> int:
        return int(next(iter(self.samples.values())).shape[0])

    @property
    def num_rows(self) -> int:
        return int(self.inputs["rows"].shape[0])

    @property
    def max_r_hat(self) -> float:
        col = self.diagnostics.get("r_hat")
        return float(np.nanmax(col)) if col is not None and len(col) else float("nan")

    @property
    def min_ess(self) -> float:
        col = self.diagnostics.get("ess")
        return float(np.nanmin(col)) if col is not None and len(col) else float("nan")

    # Convenience delegates; the functions live in effects / compare / refute.
    def interventional_mean(self, outcome: str, do: Mapping[str, Any], **kwargs):
        """See :func:`hgcnet_jax.causal.interventional_mean`."""
        from .effects import interventional_mean

        return interventional_mean(self, outcome, do=do, **kwargs)

    def ate(self, treatment: str, a: Any, b: Any, outcome: str, **kwargs):
        """See :func:`hgcnet_jax.causal.ate`."""
        from .effects import ate

        return ate(self, treatment, a, b, outcome, **kwargs)

    def mediation(self, treatment: str, a: Any, b: Any, outcome: str, **kwargs):
        """See :func:`hgcnet_jax.causal.mediation`."""
        from .effects import mediation

        return mediation(self, treatment, a, b, outcome, **kwargs)

    def __repr__(self) -> str:
        return (
            f"Fit(graph={self.graph.name!r}, method={self.config.method!r}, rows={self.num_rows}, "
            f"draws={self.num_draws}, max_r_hat={self.max_r_hat:.3f}, min_ess={self.min_ess:.0f}, "
            f"divergences={self.num_divergences}, wall_time_s={self.wall_time_s:.1f})"
        )


def pointwise_log_likelihood(
    model: Callable, inputs: Inputs, observed: dict, samples: dict
) -> dict[str, Float[Array, "draws rows"]]:
    """Per-run log density of each endogenous variable under each posterior draw.

    Cut entries (rows where an experiment set the variable) are zero. Vectorised
    over draws with :func:`jax.vmap` over ``trace(substitute(condition(model)))``.

    Returns:
        ``{variable: (draws, rows)}`` plus ``"joint"``, their sum over variables.
    """
    conditioned = handlers.condition(model, data=observed)

    def one(params):
        tr = handlers.trace(handlers.substitute(conditioned, data=params)).get_trace(inputs)
        out = {}
        for name, site in tr.items():
            if site["type"] == "sample" and name in observed:
                lp = site["fn"].log_prob(site["value"])
                cut = inputs.get(f"cut:{name}")
                out[name] = lp if cut is None else jnp.where(cut, 0.0, lp)
        return out

    ll = jax.vmap(one)(samples)
    ll["joint"] = sum(ll[v] for v in observed)
    return ll


def _diagnostics(named: dict, method: str) -> pd.DataFrame:
    """One row per scalar parameter: mean, sd and (NUTS) split-r_hat and ESS."""
    rows = []
    summ = _np_summary({k: np.asarray(v) for k, v in named.items()}, group_by_chain=True)
    for name, stats in summ.items():
        mean = np.ravel(np.asarray(stats["mean"]))
        for i in range(mean.size):
            idx = "" if np.ndim(stats["mean"]) == 0 else str(list(np.unravel_index(i, np.shape(stats["mean"]))))
            row = {"site": name + idx, "mean": float(mean[i]), "sd": float(np.ravel(stats["std"])[i])}
            if method == "nuts":
                row["r_hat"] = float(np.ravel(stats["r_hat"])[i])
                row["ess"] = float(np.ravel(stats["n_eff"])[i])
            rows.append(row)
    return pd.DataFrame(rows)


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
    divergence flags and the leapfrog steps of every transition (warm-up included).
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

    return jax.jit(jax.vmap(one_chain, in_axes=(0, None, None)))


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


def _assemble(graph, data, config, model, inputs, observed, scaling, grouped, diverging, num_steps, wall, key) -> Fit:
    samples = {k: jnp.asarray(np.asarray(v).reshape((-1,) + v.shape[2:])) for k, v in grouped.items()}
    ll = pointwise_log_likelihood(model, inputs, observed, samples)
    n_chain = next(iter(grouped.values())).shape[0]
    ll_grouped = {k: np.asarray(v).reshape((n_chain, -1) + v.shape[1:]) for k, v in ll.items()}
    named = model.layout.named({k: np.asarray(v) for k, v in grouped.items()})
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
    result = Fit(
        graph=graph,
        data=data,
        config=config,
        model=model,
        inputs=inputs,
        observed=observed,
        scaling=scaling,
        samples=samples,
        idata=idata,
        diagnostics=_diagnostics(named, config.method),
        num_divergences=0 if diverging is None else int(np.asarray(diverging).sum()),
        wall_time_s=wall,
        key=key,
    )
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
        A :class:`Fit` with posterior samples, ArviZ data and diagnostics.

    Raises:
        TypeError, DataError, HypergraphError: for bad inputs, before inference.

    Warns:
        ConvergenceWarning: when r_hat exceeds ``config.max_r_hat``, an effective
            sample size falls below ``config.min_ess_per_chain × num_chains`` or
            NUTS reports divergent transitions.
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
            model = make_model(graph, scaling)
            programs[sig] = (model, _nuts_program(model, config) if config.method == "nuts" else None)
        model, program = programs[sig]
        t0 = time.perf_counter()
        if config.method == "nuts":
            grouped, diverging, num_steps = program(jax.random.split(k, config.num_chains), inputs, observed)
            grouped = jax.tree.map(np.asarray, jax.block_until_ready(grouped))
            diverging, num_steps = np.asarray(diverging), np.asarray(num_steps)
        else:
            grouped, diverging, num_steps = _svi(model, config, k, inputs, observed), None, None
        wall = time.perf_counter() - t0
        fits.append(
            _assemble(graph, table, config, model, inputs, observed, scaling, grouped, diverging, num_steps, wall, k)
        )
    return fits


def _svi(model: Callable, config: FitConfig, key: jax.Array, inputs: Inputs, observed: dict) -> dict:
    """SVI with a full-rank Gaussian guide, in one jitted program.

    Returns ``{site: (1, draws, ...)}`` (one pseudo-chain).
    """
    conditioned = handlers.condition(model, data=observed)
    guide = autoguide.AutoMultivariateNormal(conditioned)
    svi = SVI(conditioned, guide, numpyro.optim.Adam(config.svi_lr), Trace_ELBO())

    @jax.jit
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


def _warn_if_bad(result: Fit) -> None:
    cfg = result.config
    problems = []
    if result.max_r_hat > cfg.max_r_hat:
        worst = result.diagnostics.loc[result.diagnostics["r_hat"].idxmax(), "site"]
        problems.append(f"max r_hat {result.max_r_hat:.3f} > {cfg.max_r_hat} (at {worst})")
    min_ess = cfg.min_ess_per_chain * cfg.num_chains
    if result.min_ess < min_ess:
        worst = result.diagnostics.loc[result.diagnostics["ess"].idxmin(), "site"]
        problems.append(f"min effective sample size {result.min_ess:.0f} < {min_ess:.0f} (at {worst})")
    if result.num_divergences > 0:
        problems.append(f"{result.num_divergences} divergent transition(s)")
    if problems:
        warnings.warn(
            f"NUTS on {result.graph.name!r}: "
            + "; ".join(problems)
            + ". Increase num_warmup/num_samples or target_accept_prob, or simplify the graph.",
            ConvergenceWarning,
            stacklevel=4,
        )


def _check_key(key: Any) -> jax.Array:
    """Accept a typed (``jax.random.key``) or raw (``PRNGKey``) single key."""
    if key is None or not hasattr(key, "dtype"):
        raise TypeError(f"key must be a JAX PRNG key, e.g. key=jax.random.key(0); got {type(key).__name__}")
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.shape != ():
            raise TypeError(f"key must be a single PRNG key, got a batch of shape {key.shape}")
        return key
    if key.shape != (2,) or key.dtype != jnp.uint32:
        raise TypeError(
            f"key must be a JAX PRNG key (jax.random.key(0) or jax.random.PRNGKey(0)); "
            f"got an array of shape {key.shape} and dtype {key.dtype}"
        )
    return key
