"""The generated NumPyro model: site names, do-handlers that cut edges, likelihoods, cuts."""

import warnings

import jax
import numpy as np
import pytest
from numpyro import handlers
from scipy import stats

from hgcnet_jax import causal
from hgcnet_jax.causal import Hypergraph, inference, make_model, prepare


def _params(model, inputs, seed=0):
    """One draw of every parameter site from the prior."""
    tr = handlers.trace(handlers.seed(model, jax.random.key(seed))).get_trace(inputs)
    return {k: s["value"] for k, s in tr.items() if s["type"] == "sample" and k not in "BNSCG"}


@pytest.fixture(scope="module")
def small():
    table = causal.SyntheticSCM().sample(50, key=jax.random.key(1))
    inputs, observed, scaling = prepare(Hypergraph.paper(), table)
    return table, inputs, observed, scaling


def test_sample_sites_are_named_after_variables(small):
    _, inputs, _, scaling = small
    model, layout = make_model(Hypergraph.paper(), scaling)
    tr = handlers.trace(handlers.seed(model, jax.random.key(0))).get_trace(inputs)
    sites = [k for k, s in tr.items() if s["type"] == "sample"]
    assert [s for s in sites if s in "BNSCG"] == ["B", "N", "S", "C", "G"]
    assert set(sites) - set("BNSCG") == {"w", "sigma"}
    assert layout.coef_names == (
        "intercept[B]", "intercept[N]", "coef[B->N]", "intercept[S]", "coef[N->S]",
        "intercept[C]", "coef[N->C]", "coef[S->C]", "inter[N*S->C]", "intercept[G]", "coef[C->G]",
    )  # fmt: skip


def test_do_cuts_incoming_edges_exactly(small):
    """Without a direct edge, do(N = n) makes G a function of noise only: B cannot move it."""
    _, inputs, _, scaling = small
    model = make_model(Hypergraph.paper(), scaling).model
    params = _params(model, inputs)
    run = lambda do, seed=3: handlers.seed(handlers.substitute(handlers.do(model, data=do), params), jax.random.key(seed))(inputs)  # noqa: E731
    g_lo = run({"N": 0.5, "B": -2.0})["G"]
    g_hi = run({"N": 0.5, "B": 2.0})["G"]
    np.testing.assert_array_equal(np.asarray(g_lo), np.asarray(g_hi))
    # ... while without do(N) the same change of B moves G.
    assert not np.allclose(run({"B": -2.0})["G"], run({"B": 2.0})["G"])
    # With a direct B → G edge, do(N) no longer blocks B.
    direct = make_model(Hypergraph.paper(direct=True), scaling).model
    pd_ = _params(direct, inputs)
    run_d = lambda do: handlers.seed(handlers.substitute(handlers.do(direct, data=do), pd_), jax.random.key(3))(inputs)  # noqa: E731
    assert not np.allclose(run_d({"N": 0.5, "B": -2.0})["G"], run_d({"N": 0.5, "B": 2.0})["G"])


def test_do_on_fitted_model_makes_g_independent_of_b(nodirect_fit):
    """On the fitted graph without B → G: B and G correlate, but not under do(N=n)."""
    sim = causal.simulate(nodirect_fit, key=jax.random.key(0))
    b, g = np.asarray(sim["B"]).ravel(), np.asarray(sim["G"]).ravel()
    assert abs(np.corrcoef(b, g)[0, 1]) > 0.1
    sim_do = causal.simulate(nodirect_fit, {"N": 0.3}, key=jax.random.key(0))
    b, g = np.asarray(sim_do["B"]).ravel(), np.asarray(sim_do["G"]).ravel()
    assert abs(np.corrcoef(b, g)[0, 1]) < 0.01  # 80 000 simulated runs
    # Setting B as well changes nothing, draw for draw.
    n_raw = float(nodirect_fit.scaling.to_raw(nodirect_fit.graph, "N", 0.3))
    m16 = causal.interventional_mean(nodirect_fit, "G", {"B": 16, "N": n_raw})
    m512 = causal.interventional_mean(nodirect_fit, "G", {"B": 512, "N": n_raw})
    np.testing.assert_allclose(m16.draws, m512.draws, rtol=0, atol=1e-9)
    assert causal.ate(nodirect_fit, "B", 16, 512, "G").mean != 0.0  # B does act through N


def test_pointwise_log_likelihood_matches_scipy(direct_fit):
    f = direct_fit
    ll = f.idata.log_likelihood
    named = f.layout.named({k: np.asarray(v) for k, v in f.samples.items()})
    i = 17  # one posterior draw
    obs = {k: np.asarray(v, dtype=np.float64) for k, v in f.observed.items()}
    mu_c = (
        named["intercept[C]"][i]
        + named["coef[N->C]"][i] * obs["N"]
        + named["coef[S->C]"][i] * obs["S"]
        + named["inter[N*S->C]"][i] * obs["N"] * obs["S"]
    )
    ref_c = stats.norm.logpdf(obs["C"], mu_c, named["sigma[C]"][i])
    got = np.asarray(ll["C"]).reshape(-1, f.num_rows)[i]
    np.testing.assert_allclose(got, ref_c, rtol=1e-4, atol=1e-4)
    joint = np.asarray(ll["joint"]).reshape(-1, f.num_rows)
    parts = sum(np.asarray(ll[v]).reshape(-1, f.num_rows) for v in "BNSCG")
    np.testing.assert_allclose(joint, parts, rtol=1e-5)


def test_fit_outputs_and_recovery(direct_fit):
    f = direct_fit
    assert set(f.idata.groups()) >= {"posterior", "log_likelihood", "observed_data", "sample_stats"}
    assert f.idata.posterior["inter[N*S->C]"].shape == (2, 400)
    assert {"site", "mean", "sd", "r_hat", "ess"} <= set(f.diagnostics.columns)
    assert f.max_r_hat < 1.05 and f.min_ess > 100 and f.num_draws == 800
    # The planted interaction is recovered (positive, well away from 0).
    d = f.diagnostics.set_index("site")
    assert d.loc["inter[N*S->C]", "mean"] > 5 * d.loc["inter[N*S->C]", "sd"]
    assert "divergences" in repr(f)


def test_convergence_warning(direct_fit):
    import dataclasses

    bad = direct_fit.diagnostics.copy()
    bad.loc[0, "r_hat"] = 1.2
    with pytest.warns(causal.ConvergenceWarning, match=r"r_hat 1.200 > 1.01 \(at intercept\[B\]\)"):
        inference._warn_if_bad(dataclasses.replace(direct_fit, diagnostics=bad))
    with pytest.warns(causal.ConvergenceWarning, match="3 divergent"):
        inference._warn_if_bad(dataclasses.replace(direct_fit, num_divergences=3))
    with warnings.catch_warnings():
        warnings.simplefilter("error", causal.ConvergenceWarning)
        inference._warn_if_bad(dataclasses.replace(direct_fit, diagnostics=direct_fit.diagnostics.assign(r_hat=1.0, ess=1e4)))


def test_svi_agrees_with_nuts_on_shared_equations(direct_fit, nodirect_fit):
    """Same table: the equations of N, S and C are the same in both graphs."""
    a = direct_fit.diagnostics.set_index("site")
    b = nodirect_fit.diagnostics.set_index("site")
    for site in ["coef[B->N]", "coef[N->S]", "coef[N->C]", "coef[S->C]", "inter[N*S->C]", "sigma[C]"]:
        assert abs(a.loc[site, "mean"] - b.loc[site, "mean"]) < 3 * a.loc[site, "sd"] + 0.02, site


@pytest.mark.slow  # one more compiled SVI program (Student-t, MLP hyperedge, rbf edge)
def test_rich_graph_cut_rows_and_covariates():
    """Categorical covariate, Student-t noise, an rbf edge, an MLP hyperedge and a cut column.

    On 40 % of the runs an experiment set N at random (independent of B). Fitting with
    N's equation cut on those rows recovers the observational B → N slope; the cut
    rows contribute nothing to N's likelihood.
    """
    scm = causal.SyntheticSCM()
    t = scm.sample(240, key=jax.random.key(11))
    rng = np.random.default_rng(0)
    t["dataset"] = np.where(np.arange(len(t)) % 2, "cora", "citeseer")
    cut = rng.random(len(t)) < 0.4
    t.loc[cut, "N"] = rng.normal(0, 2.0, cut.sum())
    t["noise_set"] = cut
    g = Hypergraph.paper(covariates=["dataset"], cut_columns={"N": "noise_set"}, noise="student", hyperedge_form="mlp")
    g = g.replace(edges=tuple(causal.Edge(e.parent, e.child, form="rbf") if e.label == "C->G" else e for e in g.edges))
    f = causal.fit(g, t, key=jax.random.key(2), method="svi", svi_steps=2500, num_samples=300)
    ll_n = np.asarray(f.idata.log_likelihood["N"]).reshape(-1, len(t))
    assert np.all(ll_n[:, cut] == 0) and np.all(ll_n[:, ~cut] != 0)
    # True standardised slope of N on B among observational rows.
    lb = np.log2(t["B"].to_numpy())
    true = -scm.a_bn * (lb.std() / 1.5) / t["N"].to_numpy().std()
    est = f.diagnostics.set_index("site").loc["coef[B->N]", "mean"]
    assert abs(est - true) < 0.1, (est, true)
    assert {"offset[dataset->G][cora]", "nu[N]", "rbf_scale[C->G]", "mlp_w1[{N,S}->C]"} <= set(f.idata.posterior)
    by = causal.conditional_ate(f, "B", 16, 512, "G", by="dataset")
    assert sorted(by["dataset"]) == ["citeseer", "cora"] and by["n_runs"].sum() == len(t)
