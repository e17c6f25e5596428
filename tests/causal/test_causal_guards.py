"""Guards at the causal layer's boundary: do-queries outside the fitted range, and cycles named as cycles."""

from __future__ import annotations

import warnings

import jax
import pytest

from hgcnet_jax import causal
from hgcnet_jax.causal.effects import ExtrapolationWarning


@pytest.fixture(scope="module")
def narrow_fit():
    """A quick SVI fit on runs with B in {16, 64} only."""
    scm = causal.SyntheticSCM(batch_sizes=(16, 64))
    table = scm.sample(60, key=jax.random.key(0))
    return causal.fit(causal.Hypergraph.paper(direct=True), table, key=jax.random.key(1), method="svi",
                      svi_steps=200, num_samples=50)


def test_a_do_query_outside_the_fitted_range_warns(narrow_fit):
    with pytest.warns(ExtrapolationWarning, match=r"do\(B=1e\+06\) lies outside .*\[16, 64\].*extrapolate=True"):
        causal.ate(narrow_fit, "B", 16, 10**6, "G")
    with pytest.warns(ExtrapolationWarning, match=r"do\(B=8\)"):
        causal.interventional_mean(narrow_fit, "G", {"B": 8})
    with pytest.warns(ExtrapolationWarning, match=r"do\(B=512\)"):
        causal.mediation(narrow_fit, "B", 16, 512, "G")
    with pytest.warns(ExtrapolationWarning, match=r"do\(B=256\)"):
        causal.recommend(narrow_fit, [16, 64, 256])


def test_extrapolate_true_accepts_it_and_in_range_queries_stay_silent(narrow_fit):
    with warnings.catch_warnings():
        warnings.simplefilter("error", ExtrapolationWarning)
        far = causal.ate(narrow_fit, "B", 16, 10**6, "G", extrapolate=True)
        causal.recommend(narrow_fit, [16, 64, 256], extrapolate=True)
        inside = causal.ate(narrow_fit, "B", 16, 64, "G")
        causal.interventional_mean(narrow_fit, "G", {"B": 32})  # between the fitted values: interpolation
    assert far.mean == far.mean and inside.lower <= inside.mean <= inside.upper


def test_the_warning_can_be_made_an_error_and_invalid_values_only_raise(narrow_fit):
    with warnings.catch_warnings():
        warnings.simplefilter("error", ExtrapolationWarning)
        with pytest.raises(ExtrapolationWarning):
            causal.ate(narrow_fit, "B", 16, 10**6, "G")
        with pytest.raises(ValueError, match=r"do\['B'\]"):  # log2(0): invalid, not an extrapolation
            causal.ate(narrow_fit, "B", 0, 64, "G")


def _vars(*names):
    roles = {"B": "treatment", "G": "outcome"}
    return tuple(causal.Variable(n, roles.get(n, "mediator")) for n in names)


def test_a_cycle_is_named_by_its_own_variables_only():
    edges = (causal.Edge("B", "N"), causal.Edge("N", "S"), causal.Edge("S", "N"), causal.Edge("S", "G"))
    with pytest.raises(causal.HypergraphError) as e:
        causal.Hypergraph(_vars("B", "N", "S", "G"), edges)
    msg = str(e.value)
    assert "among ['N', 'S']: N → S → N" in msg and "'G'" not in msg
    # a longer cycle through a hyperedge: C → N, {B, N} ⇒ C
    with pytest.raises(causal.HypergraphError, match=r"among \['C', 'N'\]: C → N → C"):
        causal.Hypergraph(_vars("B", "N", "C", "G"), (causal.Edge("C", "N"),), (causal.Hyperedge(("B", "N"), "C"),))
    three = (causal.Edge("B", "N"), causal.Edge("N", "S"), causal.Edge("S", "C"), causal.Edge("C", "N"),
             causal.Edge("C", "G"))
    with pytest.raises(causal.HypergraphError, match=r"among \['C', 'N', 'S'\]: C → N → S → C"):
        causal.Hypergraph(_vars("B", "N", "S", "C", "G"), three)
