"""Heteroscedastic (location-scale) structural equations: ``Hypergraph.noise_scale = "parents"``.

A planted table whose gradient noise N spreads more at large batch sizes (its log noise
scale rises by 0.6 per standard deviation of log2 B) and whose other equations have a
constant scale. One NUTS fit of the paper's graph with parent-dependent scales must
recover the planted log-scale slope, its likelihood must equal a dense scipy reference
with a per-run scale, and abduction must replay the observed runs and, under ``do``,
rescale the inferred noise by the new parents' scale.
"""

import warnings

import jax
import numpy as np
import pandas as pd
import pytest
from numpyro import handlers
from scipy import stats

from hgcnet_jax import causal
from hgcnet_jax.causal import Hypergraph, HypergraphError
from hgcnet_jax.causal.effects import abduct, simulate

ETA_N = 0.6  # planted slope of log sd(N) in standardised log2 B


def _table(seed: int = 0, per_arm: int = 25) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    b = np.repeat([16, 32, 64, 128, 256, 512], per_arm)
    z = np.log2(b)
    z = (z - z.mean()) / z.std()
    n = 1.0 - 0.8 * z + 0.4 * np.exp(ETA_N * z) * rng.standard_normal(b.size)
    s = 0.7 * n + 0.3 * rng.standard_normal(b.size)
    c = n + s + 0.2 * n * s + 0.3 * rng.standard_normal(b.size)
    g = 0.5 * c - 0.2 * z + 0.3 * rng.standard_normal(b.size)
    return pd.DataFrame({"B": b, "N": n, "S": s, "C": c, "G": g})


@pytest.fixture(scope="module")
def hetero_fit():
    table = _table()
    graph = Hypergraph.paper(direct=True, noise_scale="parents")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", causal.ConvergenceWarning)
        return causal.fit(graph, table, key=jax.random.key(0), num_warmup=300, num_samples=300, num_chains=2)


def test_noise_scale_is_validated_and_named_in_the_summary():
    with pytest.raises(HypergraphError, match="noise_scale must be one of"):
        Hypergraph.paper(noise_scale="arm")
    g = Hypergraph.paper(noise_scale="parents")
    assert "scale depends on the parents" in g.summary()
    assert g.pairwise().noise_scale == "parents"      # the twin keeps the noise model


def test_the_planted_log_scale_slope_is_recovered(hetero_fit):
    named = hetero_fit.layout.named({k: np.asarray(v) for k, v in hetero_fit.samples.items()})
    assert set(hetero_fit.layout.scale_names) == {
        "logscale[B->N]", "logscale[N->S]", "logscale[N->C]", "logscale[S->C]", "logscale[C->G]", "logscale[B->G]",
    }
    lo, hi = np.quantile(named["logscale[B->N]"], [0.03, 0.97])
    assert lo < ETA_N < hi and lo > 0.2, (lo, hi)
    lo, hi = np.quantile(named["logscale[N->S]"], [0.03, 0.97])
    assert lo < 0.0 < hi, (lo, hi)                   # S's scale does not depend on N in the truth
    round_trip = hetero_fit.layout.unname(named)
    np.testing.assert_allclose(round_trip["eta"], np.asarray(hetero_fit.samples["eta"]), rtol=1e-6)


def test_the_likelihood_has_a_per_run_scale(hetero_fit):
    f = hetero_fit
    named = f.layout.named({k: np.asarray(v) for k, v in f.samples.items()})
    i = 11
    obs = {k: np.asarray(v, dtype=np.float64) for k, v in f.observed.items()}
    loc = named["intercept[N]"][i] + named["coef[B->N]"][i] * obs["B"]
    scale = named["sigma[N]"][i] * np.exp(named["logscale[B->N]"][i] * obs["B"])
    ref = stats.norm.logpdf(obs["N"], loc, scale)
    got = np.asarray(f.idata.log_likelihood["N"]).reshape(-1, f.num_rows)[i]
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


def test_abduction_replays_the_runs_and_rescales_the_noise_under_do(hetero_fit):
    f = hetero_fit
    res = abduct(f)
    replay = simulate(f, key=jax.random.key(3), noise="abducted", residuals=res)
    for v in "NSCG":
        np.testing.assert_allclose(np.asarray(replay[v]), np.broadcast_to(np.asarray(f.observed[v]),
                                   replay[v].shape), atol=2e-4)
    b = 1.5  # standardised log2 B
    moved = simulate(f, {"B": b}, key=jax.random.key(3), noise="abducted", residuals=res)
    named = f.layout.named({k: np.asarray(v) for k, v in f.samples.items()})
    loc = named["intercept[N]"][:, None] + named["coef[B->N]"][:, None] * b
    scale = named["sigma[N]"][:, None] * np.exp(named["logscale[B->N]"][:, None] * b)
    np.testing.assert_allclose(np.asarray(moved["N"]), loc + scale * np.asarray(res["N"]), rtol=1e-4, atol=1e-4)


def test_constant_scale_models_have_no_scale_site():
    table = _table(per_arm=4)
    inputs, _, scaling = causal.prepare(Hypergraph.paper(), table)
    model, layout = causal.make_model(Hypergraph.paper(), scaling)
    tr = handlers.trace(handlers.seed(model, jax.random.key(0))).get_trace(inputs)
    assert "eta" not in tr and layout.scale_names == ()
