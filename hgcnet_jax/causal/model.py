"""The NumPyro structural causal model generated from a :class:`Hypergraph`.

For every endogenous variable ``v`` (topological order) the generated model has one
sample site named ``v`` with the additive-noise structural equation

.. math::

    v = \\alpha_v + \\sum_{p \\to v} f_{pv}(p) + \\sum_{H \\Rightarrow v} g_{Hv}(x_H)
        + \\sum_{\\text{covariates } z} h_{zv}(z) + \\sigma_v \\varepsilon_v,

on standardised data, with :math:`\\varepsilon_v` standard Normal or Student-t. With
``graph.noise_scale == "parents"`` the equation is location-scale (heteroscedastic):
:math:`\\log\\sigma_v(x) = \\log\\sigma_v + \\sum_{p} \\eta_{pv}\\, p` over its
non-categorical parents, with ``η ~ N(0, 0.5)`` (site ``"eta"``, names ``"logscale[p->v]"``).
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

The model is one plain function ``model(inputs)`` with *unobserved* variable sites;
:func:`make_model` returns it with its :class:`Layout` as an :class:`SCM`. Fitting
(:mod:`hgcnet_jax.causal.inference`) conditions it on the table
(:func:`numpyro.handlers.condition`); every query in :mod:`hgcnet_jax.causal.effects`
wraps the same function in ``do``, ``substitute``, ``seed`` and ``trace`` — no query
rewrites the model.

A variable with an :attr:`~hgcnet_jax.causal.Variable.error_column` has its standard errors in
``inputs["se:<name>"]`` (model scale): its observation's scale is ``sqrt(σ_v(x)² + se²)``, so
less precisely measured runs weigh less. The queries in :mod:`hgcnet_jax.causal.effects`
drop those inputs: interventions act on the structural equation, without measurement error.

Rows where an experiment set a mediator (its :attr:`Variable.cut_column` is true)
enter with that mediator's equation cut: :func:`numpyro.handlers.mask` drops its
likelihood term on those rows while the observed value still feeds its children.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jaxtyping import Array, Float
from numpyro import handlers

from .data import Inputs, Scaling
from .hypergraph import Hypergraph

__all__ = ["Layout", "SCM", "make_model", "pointwise_log_likelihood"]


# ------------------------------------------------------------------------ terms
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
    label: str = ""  # rbf: the edge's label


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
                terms.append(_Term("rbf", (p,), names, basis=e.num_basis, rbf_index=n_rbf, label=e.label))
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
    coefficient = prior scale × w, radial-basis ones also × their edge's
    ``rbf_scale``), ``"sigma"`` (one noise scale per endogenous variable),
    ``"rbf_scale"`` (one per radial-basis edge), ``"nu"`` (Student-t degrees of
    freedom) and ``"mlp[…]"`` sites. :meth:`named` turns draws of those into one array
    per readable name (``"coef[B->N]"``, ``"sigma[G]"`` …); :meth:`unname` is its inverse.

    Attributes:
        coef_names: One readable name per entry of ``"w"``.
        coef_scales: The prior scale of each entry of ``"w"``.
        coef_rbf: For each entry of ``"w"``, its position in ``"rbf_scale"`` (``-1``:
            not a radial-basis weight).
        endogenous: The endogenous variables, in the order of ``"sigma"`` and ``"nu"``.
        rbf_labels: The radial-basis edges, in the order of ``"rbf_scale"``.
        student: Whether the noise is Student-t (a ``"nu"`` site).
        scale_names: One readable name per entry of ``"eta"`` (heteroscedastic
            equations: ``"logscale[p->v]"``); empty for constant noise scales.
    """

    coef_names: tuple[str, ...]
    coef_scales: tuple[float, ...]
    coef_rbf: tuple[int, ...]
    endogenous: tuple[str, ...]
    rbf_labels: tuple[str, ...]
    student: bool
    scale_names: tuple[str, ...] = ()

    def named(self, samples: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Draws keyed by readable parameter name (effective, scaled coefficients).

        Args:
            samples: Draws of the model's sites, ``{site: (..., site shape)}``.

        Returns:
            ``{readable name: (...)}`` (``"mlp*"`` sites keep their shape).
        """
        out: dict[str, np.ndarray] = {}
        w = np.asarray(samples["w"])
        tau = np.asarray(samples["rbf_scale"]) if "rbf_scale" in samples else None
        for i, (name, sc, r) in enumerate(zip(self.coef_names, self.coef_scales, self.coef_rbf, strict=True)):
            val = w[..., i] * sc
            if r >= 0 and tau is not None:
                val = val * tau[..., r]
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
        if self.scale_names and "eta" in samples:
            eta = np.asarray(samples["eta"])
            for j, name in enumerate(self.scale_names):
                out[name] = eta[..., j]
        for k, val in samples.items():
            if k.startswith("mlp"):
                out[k] = np.asarray(val)
        return out

    def unname(self, named: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """The inverse of :meth:`named`: draws of the model's own sites, as float32.

        Exact up to float32 rounding (a coefficient is divided by its prior scale and,
        for radial-basis weights, by its edge's ``rbf_scale``).

        Args:
            named: Draws keyed by readable name, e.g. an ArviZ posterior
                (``{name: (chain, draw, ...)}``).

        Returns:
            ``{site: (..., site shape)}`` for ``"w"``, ``"sigma"`` and, where the model
            has them, ``"rbf_scale"``, ``"nu"`` and ``"mlp*"`` sites.

        Raises:
            KeyError: if a readable name of this layout is missing from ``named``.
        """
        post = {k: np.asarray(named[k]) for k in named}
        need = (*self.coef_names, *(f"sigma[{v}]" for v in self.endogenous), *self.scale_names)
        missing = [k for k in need if k not in post]
        if missing:
            raise KeyError(f"these draws lack parameter(s) {missing[:5]} of the model (another graph's posterior?)")
        out: dict[str, np.ndarray] = {}
        if self.rbf_labels:
            out["rbf_scale"] = np.stack([post[f"rbf_scale[{lab}]"] for lab in self.rbf_labels], axis=-1)
        cols = []
        for name, sc, r in zip(self.coef_names, self.coef_scales, self.coef_rbf, strict=True):
            val = post[name] / sc
            if r >= 0 and "rbf_scale" in out:
                val = val / out["rbf_scale"][..., r]
            cols.append(val)
        out["w"] = np.stack(cols, axis=-1)
        out["sigma"] = np.stack([post[f"sigma[{v}]"] for v in self.endogenous], axis=-1)
        if self.student and all(f"nu[{v}]" in post for v in self.endogenous):
            out["nu"] = np.stack([post[f"nu[{v}]"] for v in self.endogenous], axis=-1)
        if self.scale_names:
            out["eta"] = np.stack([post[k] for k in self.scale_names], axis=-1)
        out.update({k: v for k, v in post.items() if k.startswith("mlp")})
        return {k: v.astype(np.float32) for k, v in out.items()}


class SCM(NamedTuple):
    """What :func:`make_model` returns: the generated model and the layout of its parameters.

    Attributes:
        model: ``model(inputs) -> {variable: values}``, a plain NumPyro model.
        layout: Where each readable coefficient lives in the model's parameter sites.
    """

    model: Callable[[Inputs], dict]
    layout: Layout


def make_model(graph: Hypergraph, scaling: Scaling | None = None) -> SCM:
    """Build the NumPyro model of ``graph`` (see the module docstring).

    Args:
        graph: The hypergraph.
        scaling: Needed only for categorical covariates (their levels).

    Returns:
        An :class:`SCM` ``(model, layout)``: ``model(inputs) -> dict`` maps every
        endogenous variable to the value it took (the intervened value under ``do``);
        ``inputs`` is the first output of :func:`~hgcnet_jax.causal.data.prepare`.
        Variable sites are unobserved: condition them with
        :func:`numpyro.handlers.condition` to fit. ``layout`` is the :class:`Layout`
        of its parameters.

    Raises:
        ValueError: if a categorical covariate has no levels in ``scaling``.
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
    rbf_labels = tuple(t.label for v in order for t in rbf_terms[v])
    coef_rbf = tuple(t.rbf_index if t.kind == "rbf" else -1 for v in order for t in terms[v] for _ in t.names)
    mlps = {v: graph.hyperedges_into(v) for v in order}
    mlps = {v: [h for h in hs if h.form == "mlp"] for v, hs in mlps.items()}
    scale_vec = np.asarray(scales, dtype=np.float32)
    categorical = {v.name for v in graph.variables if v.categorical}
    scale_parents: dict[str, tuple[str, ...]] = {}
    scale_slices, scale_names, k0 = {}, [], 0
    for v in order:
        ps = () if graph.noise_scale == "constant" else tuple(p for p in graph.parents(v) if p not in categorical)
        scale_parents[v] = ps
        scale_slices[v] = (k0, k0 + len(ps))
        k0 += len(ps)
        scale_names.extend(f"logscale[{p}->{v}]" for p in ps)
    num_scale = k0
    layout = Layout(tuple(names), tuple(scales), coef_rbf, order, rbf_labels, student, tuple(scale_names))

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
        if num_scale:
            eta = numpyro.sample("eta", dist.Normal(0.0, 0.5).expand([num_scale]).to_event(1))
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
            scale = sigma[j]
            if scale_parents[v]:  # location-scale: log sigma_v(x) = log sigma_v + eta . x_parents
                a, b = scale_slices[v]
                xs = jnp.stack([values[p] for p in scale_parents[v]], axis=-1)
                scale = sigma[j] * jnp.exp(jnp.clip(xs @ eta[a:b], -8.0, 8.0))
            if f"se:{v}" in inputs:  # measured with a known standard error: e ~ N(0, se^2) on top of the noise
                scale = jnp.sqrt(jnp.square(scale) + jnp.square(inputs[f"se:{v}"]))
            noise = dist.StudentT(nu[j], mu, scale) if student else dist.Normal(mu, scale)
            keep = ~inputs[f"cut:{v}"] if f"cut:{v}" in inputs else True
            with numpyro.plate("runs", n, dim=-1), handlers.mask(mask=keep):
                # broadcast: under ``do`` the site returns the intervention, maybe a scalar
                values[v] = jnp.broadcast_to(numpyro.sample(v, noise), (n,))
        return {v: values[v] for v in order}

    model.__name__ = f"scm_{graph.name.replace('-', '_')}"
    model.__doc__ = f"NumPyro SCM generated from:\n{graph.summary()}"
    return SCM(model, layout)


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
