"""Queries through effect handlers: ATE, mediation, abduction, subgroups, recommendation, LOO."""

import jax
import numpy as np
import pytest

from hgcnet_jax import causal

A, B = 16, 512  # the paper's contrast: do(B=16) against do(B=512)
SCM = causal.SyntheticSCM()  # the truth behind the conftest tables


def test_abduction_replays_the_observed_runs(direct_fit):
    """Abduction then prediction without an action reproduces every observed value."""
    sim = causal.simulate(direct_fit, key=jax.random.key(0), noise="abducted")
    for v, obs in direct_fit.observed.items():
        np.testing.assert_allclose(np.asarray(sim[v]), np.broadcast_to(obs, sim[v].shape), atol=2e-4)


def test_ate_is_the_difference_of_interventional_means(direct_fit):
    k = jax.random.key(4)
    e = causal.ate(direct_fit, "B", A, B, "G", key=k)
    ma = causal.interventional_mean(direct_fit, "G", {"B": A}, key=k)
    mb = causal.interventional_mean(direct_fit, "G", {"B": B}, key=k)
    np.testing.assert_allclose(e.draws, ma.draws - mb.draws, rtol=1e-9, atol=1e-9)
    assert e.lower < e.mean < e.upper and 0.5 <= e.p_sign <= 1.0
    assert e.query == {"B": (A, B)} and e.name == "ATE"
    assert causal.ate(direct_fit, "B", 64, 64, "G").mean == 0.0
    # Raw units: E[G | do(B)] is on the accuracy scale of the table (≈ 70).
    assert 60 < ma.mean < 80


def test_mediation_decomposition(direct_fit):
    m = causal.mediation(direct_fit, "B", A, B, "G")
    assert m.mediators == ("N", "S", "C") and m.noise == "abducted"
    np.testing.assert_allclose(m.total.draws, m.nde.draws + m.nie.draws, atol=1e-9)
    # G is additive in B and C and C depends on B only through N: the effect through
    # N (and through C) is exactly the indirect effect, draw by draw.
    np.testing.assert_allclose(m.pse["N"].draws, m.nie.draws, atol=1e-6)
    np.testing.assert_allclose(m.pse["C"].draws, m.nie.draws, atol=1e-6)
    # The planted signs: direct effect of small batches positive, indirect negative.
    truth = SCM.effects(A, B, key=jax.random.key(9), num=100_000)
    assert truth.nde > 0 > truth.nie
    assert m.nde.p_positive > 0.99 and m.nie.p_positive < 0.01
    assert np.sign(m.pse["S"].mean) == np.sign(truth.pse["S"])
    t = m.table()
    assert list(t["name"]) == ["ATE", "NDE", "NIE", "PSE[N]", "PSE[S]", "PSE[C]"]


def test_mediation_without_path_raises(direct_fit):
    with pytest.raises(ValueError, match="no directed path from 'G' to 'B'"):
        causal.mediation(direct_fit, "G", 60, 70, "B")
    with pytest.raises(ValueError, match="paths: 'G' is not a mediator"):
        causal.mediation(direct_fit, "B", A, B, "G", paths=["G"])


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda f: causal.ate(f, "Q", 1, 2, "G"), "treatment 'Q' is not a variable"),
        (lambda f: causal.ate(f, "B", 0, 512, "G"), r"do\['B'\].*values > 0"),
        (lambda f: causal.ate(f, "B", 16, 512, "B"), "must differ"),
        (lambda f: causal.ate(f, "B", 16, 512, "G", prob=1.5), "prob must be in"),
        (lambda f: causal.interventional_mean(f, "G", {}), "non-empty mapping"),
        (lambda f: causal.interventional_mean(f, "G", {"G": 3.0}), "cannot also be intervened"),
        (lambda f: causal.interventional_mean(f, "G", {"B": [16, 32]}), "must be a scalar"),
        (lambda f: causal.ate(f, "B", 16, 512, "G", noise="fresh"), "noise must be"),
        (lambda f: causal.ate(f, "B", 16, 512, "G", rows=np.array([], dtype=int)), "selects no runs"),
        (lambda f: causal.conditional_ate(f, "B", 16, 512, "G", by="dataset"), "by: column 'dataset'"),
        (lambda f: causal.ate("fit", "B", 16, 512, "G"), "must be a hgcnet_jax.causal.Fit"),
    ],
)
def test_query_errors(direct_fit, call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call(direct_fit)


def test_conditional_ate_partitions_runs(direct_fit):
    f = direct_fit
    data = f.data.assign(half=np.where(np.arange(f.num_rows) < 80, "first", "second"))
    import dataclasses

    f2 = dataclasses.replace(f, data=data)
    t = causal.conditional_ate(f2, "B", A, B, "G", by="half")
    assert list(t["half"]) == ["first", "second"] and list(t["n_runs"]) == [80, 120]
    # Row subsets are respected: the same rows give the same answer directly.
    e = causal.ate(f2, "B", A, B, "G", rows=np.arange(f.num_rows) < 80)
    np.testing.assert_allclose(t.loc[0, "mean"], e.mean)


def test_simulate_under_jit_matches_eager(direct_fit):
    z = float(direct_fit.scaling.to_model(direct_fit.graph, "B", 32))
    eager = causal.simulate(direct_fit, {"B": z}, key=jax.random.key(1))["G"]
    jitted = jax.jit(lambda k: causal.simulate(direct_fit, {"B": z}, key=k)["G"])(jax.random.key(1))
    np.testing.assert_allclose(np.asarray(jitted), np.asarray(eager), rtol=1e-5, atol=1e-5)
    res = jax.jit(lambda: causal.abduct(direct_fit))()
    np.testing.assert_allclose(np.asarray(res["G"]), np.asarray(causal.abduct(direct_fit)["G"]), atol=1e-5)


def test_recommend(direct_fit):
    cands = [16, 64, 256, 512]
    r = causal.recommend(direct_fit, cands, current=512, key=jax.random.key(3))
    means = {c: causal.interventional_mean(direct_fit, "G", {"B": c}, key=jax.random.key(3)).mean for c in cands}
    assert r.best == max(means, key=means.get)
    np.testing.assert_allclose(r.table.set_index("value").loc[r.best, "mean"], means[r.best])
    np.testing.assert_allclose(r.table["p_best"].sum(), 1.0)
    assert list(r.table["mean"]) == sorted(r.table["mean"], reverse=True)
    assert 0.0 <= r.p_beats_current <= 1.0
    np.testing.assert_allclose(r.gain, means[r.best] - means[512])
    with pytest.raises(ValueError, match="duplicates"):
        causal.recommend(direct_fit, [16, 16])


def test_loo_prefers_the_hypergraph_on_one_table(direct_fit, pairwise_fits):
    c = causal.loo_compare(direct_fit, pairwise_fits[0])
    assert c.name_a == "hgcnet-direct" and c.name_b == "hgcnet-direct-pairwise"
    assert c.prefers_a() and c.z > 2
    np.testing.assert_allclose(c.diff, c.elpd_a - c.elpd_b, rtol=1e-6)
    assert set(c.table.index) == {c.name_a, c.name_b}
    with pytest.raises(TypeError, match="fit_b must be"):
        causal.loo_compare(direct_fit, "pairwise")
