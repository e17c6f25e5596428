"""Bad tables and bad arguments fail with clear errors before any inference starts."""

import dataclasses

import jax
import numpy as np
import pytest

from hgcnet_jax import causal
from hgcnet_jax.causal import DataError, FitConfig, Hypergraph, prepare
from hgcnet_jax.causal import inference as inference_module

GRAPH = Hypergraph.paper()


@pytest.fixture
def table():
    return causal.SyntheticSCM().sample(60, key=jax.random.key(0))


@pytest.fixture
def no_inference(monkeypatch):
    """Make any attempt to start inference fail loudly."""

    def boom(*a, **k):
        raise AssertionError("inference started although the input was invalid")

    monkeypatch.setattr(inference_module, "_nuts_program", boom)
    monkeypatch.setattr(inference_module, "_svi", boom)


def _bad(table, **changes):
    t = table.copy()
    for col, fn in changes.items():
        t[col] = fn(t[col])
    return t


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda t: t.drop(columns=["S"]), r"missing column\(s\) 'S' \(for S\)"),
        (lambda t: _bad(t, C=lambda c: c.where(c.index != 7, np.nan)), r"column 'C' \(variable C\) has 1 non-finite value.*row 7"),
        (lambda t: _bad(t, G=lambda c: c.where(c.index != 3, np.inf)), r"column 'G'.*non-finite.*row 3"),
        (lambda t: _bad(t, B=lambda c: c * 0 + 64), r"column 'B' \(treatment B\) is constant"),
        (lambda t: _bad(t, N=lambda c: c * 0 + 1.5), r"column 'N' \(mediator N\) is constant"),
        (lambda t: _bad(t, B=lambda c: c.where(c.index != 2, 0)), r"outside the domain of its 'log2' transform.*row 2"),
        (lambda t: t.iloc[:5], r"5 rows; at least 10"),
        (lambda t: _bad(t, S=lambda c: c.astype(str).where(c.index != 0, "oops")), r"column 'S' \(variable S\) must be numeric"),
    ],
)
def test_bad_tables(table, no_inference, mutate, match):
    with pytest.raises(DataError, match=match):
        causal.fit(GRAPH, mutate(table), key=jax.random.key(0))


def test_cut_column_must_be_boolean(table, no_inference):
    g = Hypergraph.paper(cut_columns={"N": "noise_set"})
    with pytest.raises(DataError, match="missing column.*'noise_set' \\(for N\\)"):
        causal.fit(g, table, key=jax.random.key(0))
    t = table.assign(noise_set=np.where(np.arange(len(table)) % 2, "yes", "no"))
    with pytest.raises(DataError, match="cut column 'noise_set'.*must be boolean"):
        causal.fit(g, t, key=jax.random.key(0))


def test_bad_arguments(table, no_inference):
    with pytest.raises(TypeError, match="pandas DataFrame"):
        causal.fit(GRAPH, table.to_numpy(), key=jax.random.key(0))
    with pytest.raises(TypeError, match="Hypergraph"):
        causal.fit("B->G", table, key=jax.random.key(0))
    with pytest.raises(TypeError, match="PRNG key"):
        causal.fit(GRAPH, table, key=0)
    with pytest.raises(TypeError, match="single PRNG key"):
        causal.fit(GRAPH, table, key=jax.random.split(jax.random.key(0), 2))
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['num_draws'\]"):
        causal.fit(GRAPH, table, key=jax.random.key(0), num_draws=10)
    with pytest.raises(ValueError, match="FitConfig.method"):
        causal.fit(GRAPH, table, key=jax.random.key(0), method="mcmc")


@pytest.mark.parametrize(
    "field, value",
    [("num_samples", 0), ("num_chains", 1.5), ("target_accept_prob", 1.0), ("svi_lr", -1.0), ("max_r_hat", 0.9), ("num_warmup", -1)],
)
def test_fit_config_validation_names_the_field(field, value):
    with pytest.raises(ValueError, match=f"FitConfig.{field}"):
        FitConfig(**{field: value})


def test_prepare_standardises_and_maps_back(table):
    inputs, observed, scaling = prepare(GRAPH, table)
    assert set(observed) == set("BNSCG")
    for v, z in observed.items():
        assert z.dtype == np.float32
        np.testing.assert_allclose(float(z.mean()), 0.0, atol=1e-5)
        np.testing.assert_allclose(float(z.std()), 1.0, atol=1e-5)
    # B is log2-transformed before standardisation; raw units round-trip.
    lb = np.log2(table["B"].to_numpy())
    np.testing.assert_allclose(scaling.to_model(GRAPH, "B", 16), (4.0 - lb.mean()) / lb.std(), rtol=1e-6)
    np.testing.assert_allclose(scaling.to_raw(GRAPH, "B", scaling.to_model(GRAPH, "B", 128.0)), 128.0, rtol=1e-9)
    np.testing.assert_allclose(scaling.to_raw(GRAPH, "G", observed["G"]), table["G"], rtol=1e-5)
    assert inputs["rows"].shape == (60,)
    with pytest.raises(ValueError, match="must be values > 0"):
        scaling.to_model(GRAPH, "B", -4)


def test_categorical_covariate_levels(table):
    g = Hypergraph.paper(covariates=["dataset"])
    t = table.assign(dataset=np.where(np.arange(len(table)) % 3 == 0, "cora", "pubmed"))
    inputs, _, scaling = prepare(g, t)
    assert scaling.levels["dataset"] == ("cora", "pubmed")
    np.testing.assert_array_equal(np.asarray(inputs["dataset"]), (np.arange(len(table)) % 3 != 0).astype(int))
    t.loc[4, "dataset"] = None
    with pytest.raises(DataError, match="missing labels, e.g. at row 4"):
        prepare(g, t)


def test_frozen_config():
    with pytest.raises(dataclasses.FrozenInstanceError):
        FitConfig().num_samples = 3
