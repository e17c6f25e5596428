"""Mediators measured with known standard errors: ``Variable.error_column``.

The planted table: N's structural noise has sd 0.3, and one run in five was measured with a
standard error of 2.0 (the rest with 0.05). Fitted with the error column, N's structural
scale and the slope B -> N come out at their true values, because the imprecise runs weigh
less; fitted without it, the same data inflate N's noise scale several times over.
"""

import warnings

import jax
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from hgcnet_jax import causal
from hgcnet_jax.causal import DataError, Edge, Hypergraph, HypergraphError, Variable
from hgcnet_jax.causal.effects import abduct, simulate

SIGMA_N, SLOPE = 0.3, -0.8


def _table(seed=0, n=150):
    rng = np.random.default_rng(seed)
    b = np.tile([16, 32, 64, 128, 256], n // 5)
    z = np.log2(b) - np.log2(b).mean()
    n_true = 2.0 + SLOPE * z + SIGMA_N * rng.standard_normal(n)
    se = np.where(np.arange(n) % 5 == 0, 2.0, 0.05)
    n_obs = n_true + se * rng.standard_normal(n)
    g = 0.5 * n_true + 0.2 * rng.standard_normal(n)
    return pd.DataFrame({"B": b, "N": n_obs, "N_se": se, "G": g})


def _graph(error_column):
    return Hypergraph((Variable("B", "treatment", transform="log2"),
                       Variable("N", "mediator", error_column=error_column), Variable("G", "outcome")),
                      (Edge("B", "N"), Edge("N", "G")))


def _fit(graph, table):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", causal.ConvergenceWarning)
        return causal.fit(graph, table, key=jax.random.key(0), num_warmup=300, num_samples=300, num_chains=2)


@pytest.fixture(scope="module")
def fits():
    table = _table()
    return table, _fit(_graph("N_se"), table), _fit(_graph(None), table)


def _raw_sigma_and_slope(fit):
    named = fit.layout.named({k: np.asarray(v) for k, v in fit.samples.items()})
    s = fit.scaling
    sigma = named["sigma[N]"] * s.std["N"]                                   # raw units of N
    slope = named["coef[B->N]"] * s.std["N"] / s.std["B"]                    # per unit of log2 B
    return sigma, slope


def test_imprecise_runs_weigh_less(fits):
    _, with_err, without = fits
    sigma, slope = _raw_sigma_and_slope(with_err)
    lo, hi = np.quantile(sigma, [0.03, 0.97])
    assert lo < SIGMA_N < hi, (lo, hi)
    lo, hi = np.quantile(slope, [0.03, 0.97])
    assert lo < SLOPE < hi, (lo, hi)
    sigma0, _ = _raw_sigma_and_slope(without)
    assert np.quantile(sigma0, 0.03) > 2 * SIGMA_N     # ignoring the errors inflates N's noise


def test_the_likelihood_adds_the_standard_error(fits):
    table, f, _ = fits
    named = f.layout.named({k: np.asarray(v) for k, v in f.samples.items()})
    i = 5
    obs = {k: np.asarray(v, dtype=np.float64) for k, v in f.observed.items()}
    se = table["N_se"].to_numpy() / f.scaling.std["N"]
    loc = named["intercept[N]"][i] + named["coef[B->N]"][i] * obs["B"]
    ref = stats.norm.logpdf(obs["N"], loc, np.sqrt(named["sigma[N]"][i] ** 2 + se**2))
    got = np.asarray(f.idata.log_likelihood["N"]).reshape(-1, f.num_rows)[i]
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


def test_queries_act_on_the_structural_equation_and_replicas_on_the_observations(fits):
    table, f, _ = fits
    replay = simulate(f, key=jax.random.key(1), noise="abducted", residuals=abduct(f))
    np.testing.assert_allclose(np.asarray(replay["N"]), np.broadcast_to(np.asarray(f.observed["N"]), replay["N"].shape),
                               atol=2e-4)
    structural = np.asarray(simulate(f, key=jax.random.key(2))["N"])
    observed = np.asarray(simulate(f, key=jax.random.key(2), observe=True)["N"])
    se = table["N_se"].to_numpy() / f.scaling.std["N"]                        # model scale
    extra = observed.var(axis=0) - structural.var(axis=0)                    # per run, over the draws
    noisy = np.arange(f.num_rows) % 5 == 0
    # a replicated observation adds its run's measurement variance; the structural value does not
    np.testing.assert_allclose(extra[noisy].mean(), np.mean(se[noisy] ** 2), rtol=0.2)
    assert abs(extra[~noisy].mean()) < 0.1 * np.mean(se[noisy] ** 2)


def test_bad_error_columns_are_refused_naming_the_column():
    table = _table(n=20)
    with pytest.raises(DataError, match="'N_se'.*negative"):
        causal.prepare(_graph("N_se"), table.assign(N_se=np.r_[-1.0, table["N_se"].to_numpy()[1:]]))
    with pytest.raises(DataError, match="error column 'N_err'"):
        causal.prepare(_graph("N_err"), table)
    with pytest.raises(HypergraphError, match="error_column is only allowed"):
        Variable("B", "treatment", error_column="B_se")
