"""The contextual stochastic block model generator."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hgcnet_jax.data import load, make_csbm
from hgcnet_jax.data.csbm import _tri_decode


def test_fixture_graph(tiny_graph):
    ds = tiny_graph
    assert ds.kind == "node" and ds.x.shape == (120, 16) and ds.num_classes == 3
    assert np.bincount(ds.y).tolist() == [40, 40, 40]
    assert [len(ds.splits[k]) for k in ("train", "val", "test")] == [72, 24, 24]
    g = ds.graph
    assert not np.any(g.senders == g.receivers)
    fwd = g.senders.astype(np.int64) * 120 + g.receivers
    np.testing.assert_array_equal(np.sort(fwd), np.sort(g.receivers.astype(np.int64) * 120 + g.senders))


def test_seeded():
    a = make_csbm(num_nodes=200, num_classes=4, seed=7)
    b = load("csbm", num_nodes=200, num_classes=4, seed=7)
    c = make_csbm(num_nodes=200, num_classes=4, seed=8)
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.graph.senders, b.graph.senders)
    np.testing.assert_array_equal(a.train_idx, b.train_idx)
    assert not np.array_equal(a.y, c.y)


@pytest.mark.parametrize("homophily", [0.1, 0.5, 0.9])
def test_planted_homophily_and_degree_are_recovered(homophily):
    ds = make_csbm(num_nodes=3000, num_classes=3, homophily=homophily, avg_degree=10.0, seed=0)
    # ~15 000 undirected edges: the realised values are within a few standard errors
    assert ds.meta["edge_homophily"] == pytest.approx(homophily, abs=0.02)
    assert ds.meta["mean_degree"] == pytest.approx(10.0, rel=0.03)


def test_feature_snr_controls_separability():
    def nearest_mean_accuracy(snr):
        ds = make_csbm(num_nodes=2000, num_classes=4, num_features=8, feature_snr=snr, seed=1)
        means = ds.meta["class_means"]
        np.testing.assert_allclose(np.linalg.norm(means, axis=1), snr, rtol=1e-5)
        pred = np.argmin(((ds.x[:, None, :] - means[None]) ** 2).sum(-1), axis=1)
        return (pred == ds.y).mean()

    assert nearest_mean_accuracy(0.0) == pytest.approx(0.25, abs=0.05)  # chance
    assert nearest_mean_accuracy(4.0) > 0.95
    # empirical class means sit at the planted means (noise has unit variance per coordinate)
    ds = make_csbm(num_nodes=4000, num_classes=2, num_features=4, feature_snr=1.0, seed=2)
    for c in range(2):
        np.testing.assert_allclose(ds.x[ds.y == c].mean(0), ds.meta["class_means"][c], atol=0.1)


def test_more_classes_than_features():
    ds = make_csbm(num_nodes=100, num_classes=5, num_features=2, seed=0)
    np.testing.assert_allclose(np.linalg.norm(ds.meta["class_means"], axis=1), 2.0, rtol=1e-5)


def test_tri_decode_enumerates_the_upper_triangle():
    for m in (2, 3, 7, 50):
        i, j = _tri_decode(np.arange(m * (m - 1) // 2), m)
        expected = [(a, b) for a in range(m) for b in range(a + 1, m)]
        assert list(zip(i.tolist(), j.tolist(), strict=True)) == expected
    m = 200_000  # float rounding near the end of a large triangle
    i, j = _tri_decode(np.array([m * (m - 1) // 2 - 1, m - 2, m - 1]), m)
    assert (i.tolist(), j.tolist()) == ([m - 2, 0, 1], [m - 1, m - 1, 2])


def test_message_passing_under_jit(tiny_graph):
    g = tiny_graph.graph

    @jax.jit
    def mean_neighbour(x, senders, receivers):
        s = jax.ops.segment_sum(x[senders], receivers, num_segments=x.shape[0])
        d = jax.ops.segment_sum(jnp.ones_like(senders, jnp.float32), receivers, num_segments=x.shape[0])
        return s / jnp.maximum(d, 1.0)[:, None]

    out = np.asarray(mean_neighbour(g.nodes, g.senders, g.receivers))
    a = np.zeros((120, 120), np.float32)
    a[g.receivers, g.senders] = 1.0
    ref = a @ tiny_graph.x / np.maximum(a.sum(1), 1.0)[:, None]
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"num_nodes": 1}, "num_nodes"),
        ({"num_classes": 1}, "num_classes"),
        ({"num_features": 0}, "num_features"),
        ({"homophily": 1.5}, "homophily"),
        ({"avg_degree": 0.0}, "avg_degree"),
        ({"feature_snr": -1.0}, "feature_snr"),
        ({"seed": -1}, "seed"),
        ({"num_nodes": 10, "avg_degree": 8.0, "homophily": 1.0}, "avg_degree"),
        ({"fractions": (0.5, 0.5)}, "fractions"),
        ({"split": "public"}, "split"),
    ],
)
def test_bad_arguments_are_named(kwargs, field):
    with pytest.raises(ValueError, match=field):
        make_csbm(**kwargs)
