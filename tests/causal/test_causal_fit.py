"""A Fit rebuilt from its saved posterior: Layout.unname inverts Layout.named; the key and settings travel with it."""

import arviz as az
import jax
import numpy as np
import pandas as pd
import pytest
from numpyro import handlers

from hgcnet_jax import causal
from hgcnet_jax.causal.fit import _key_from_attrs, posterior_attrs


def _rich_graph():
    """Categorical covariate, Student-t noise, a radial-basis edge and an MLP hyperedge."""
    g = causal.Hypergraph.paper(covariates=["dataset"], noise="student", hyperedge_form="mlp")
    return g.replace(edges=tuple(causal.Edge(e.parent, e.child, form="rbf") if e.label == "C->G" else e for e in g.edges))


def test_unname_inverts_named_on_every_kind_of_site():
    t = causal.SyntheticSCM().sample(40, key=jax.random.key(3))
    t["dataset"] = np.where(np.arange(len(t)) % 2, "cora", "citeseer")
    g = _rich_graph()
    inputs, _, scaling = causal.prepare(g, t)
    model, layout = causal.make_model(g, scaling)

    def prior_draw(key):
        tr = handlers.trace(handlers.seed(model, key)).get_trace(inputs)
        return {k: np.asarray(s["value"]) for k, s in tr.items() if s["type"] == "sample" and k not in g.endogenous}

    draws = [prior_draw(k) for k in jax.random.split(jax.random.key(0), 6)]
    sites = {k: np.stack([d[k] for d in draws]).reshape((2, 3) + draws[0][k].shape) for k in draws[0]}
    assert {"w", "sigma", "rbf_scale", "nu"} <= set(sites) and any(k.startswith("mlp") for k in sites)
    named = layout.named(sites)
    assert {"rbf[C->G][0]", "rbf_scale[C->G]", "nu[G]", "offset[dataset->G][cora]"} <= set(named)
    back = layout.unname(named)
    assert set(back) == set(sites)
    for k, v in sites.items():
        np.testing.assert_allclose(back[k], v, rtol=1e-5, atol=1e-6, err_msg=k)
    with pytest.raises(KeyError, match="lack parameter"):
        layout.unname({k: v for k, v in named.items() if k != "coef[B->N]"})


@pytest.mark.parametrize("key", [jax.random.key(7), jax.random.PRNGKey(7), jax.random.key(7, impl="rbg")],
                         ids=["typed", "raw", "rbg"])
def test_key_and_settings_survive_netcdf(key, tmp_path):
    config = causal.FitConfig(num_samples=5, target_accept_prob=0.9)
    idata = az.from_dict(posterior={"a": np.zeros((2, 5))})
    idata.posterior.attrs.update(posterior_attrs(config, key))
    idata.to_netcdf(str(tmp_path / "p.nc"))
    attrs = az.from_netcdf(str(tmp_path / "p.nc")).posterior.attrs
    back = _key_from_attrs(attrs)
    assert back.dtype == key.dtype and back.shape == key.shape
    np.testing.assert_array_equal(jax.random.uniform(back, (4,)), jax.random.uniform(key, (4,)))
    assert causal.FitConfig.from_json(attrs["fit_config"]) == config
    with pytest.raises(ValueError, match="not a FitConfig"):
        causal.FitConfig.from_json('{"num_chain": 2}')


def test_fit_rebuilt_from_its_netcdf_posterior(direct_fit, tmp_path):
    f = direct_fit
    f.idata.to_netcdf(str(tmp_path / "posterior.nc"))
    idata = az.from_netcdf(str(tmp_path / "posterior.nc"))
    back = causal.Fit.from_idata(idata, f.graph, f.data, wall_time_s=1.5)
    assert back.config == f.config and back.wall_time_s == 1.5 and back.num_divergences == f.num_divergences
    np.testing.assert_array_equal(jax.random.key_data(back.key), jax.random.key_data(f.key))
    pd.testing.assert_frame_equal(back.diagnostics, f.diagnostics)
    assert causal.diagnostics(back)[1:] == causal.diagnostics(f)[1:]
    assert set(back.samples) == set(f.samples)
    for k, v in f.samples.items():
        np.testing.assert_allclose(back.samples[k], v, rtol=1e-5, atol=1e-6, err_msg=k)
    # the query's default key derives from the fit's key: the same draws, up to float32 rounding
    a, b = causal.ate(f, "B", 16, 512, "G"), causal.ate(back, "B", 16, 512, "G")
    np.testing.assert_allclose(b.draws, a.draws, rtol=1e-4, atol=1e-5)


def test_fit_from_idata_errors(direct_fit):
    f = direct_fit
    old = f.idata.copy()
    for a in ("fit_key_data", "fit_key_impl", "fit_config"):
        del old.posterior.attrs[a]
    with pytest.raises(ValueError, match="fit again"):
        causal.Fit.from_idata(old, f.graph, f.data)
    with pytest.raises(ValueError, match="posterior is of graph 'hgcnet-direct', not of 'hgcnet'"):
        causal.Fit.from_idata(f.idata, causal.Hypergraph.paper(), f.data)
    with pytest.raises(ValueError, match=r"fitted on \[200\] runs, the table has 150"):
        causal.Fit.from_idata(f.idata, f.graph, f.data.iloc[:150])
    with pytest.raises(TypeError, match="InferenceData"):
        causal.Fit.from_idata(f.idata.posterior, f.graph, f.data)


def test_one_verdict_for_warning_and_diagnostics(direct_fit):
    """The ConvergenceWarning's problems are exactly those of causal.diagnostics."""
    import dataclasses
    import warnings

    bad = direct_fit.diagnostics.copy()
    bad.loc[3, "ess_tail"] = 5.0
    f = dataclasses.replace(direct_fit, diagnostics=bad)
    d = causal.diagnostics(f)
    assert not d.ok and any(p.startswith("min tail effective sample size 5 < 200") for p in d.problems)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        causal.inference._warn_if_bad(f)
    assert len(w) == 1 and all(p in str(w[0].message) for p in d.problems)
    svi = dataclasses.replace(direct_fit, config=dataclasses.replace(direct_fit.config, method="svi"))
    assert not causal.diagnostics(svi).ok  # SVI has no MCMC diagnostics to pass
