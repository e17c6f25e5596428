"""The Dataset contract, the split helpers and the load() dispatcher."""

from __future__ import annotations

import jraph
import numpy as np
import pytest

from hgcnet_jax.data import Dataset, available, carve_validation, load, stratified_split


def _splits(train, val, test):
    return {k: np.asarray(v, np.int32) for k, v in zip(("train", "val", "test"), (train, val, test), strict=True)}


def _tabular(**over):
    kw = dict(
        name="t",
        kind="tabular",
        x=np.zeros((6, 2), np.float32),
        y=np.array([0, 1, 0, 1, 0, 1], np.int32),
        num_classes=2,
        splits=_splits([0, 1, 2], [3], [4, 5]),
    )
    kw.update(over)
    return Dataset(**kw)


def _graph(n, senders, receivers):
    s = np.asarray(senders, np.int32)
    r = np.asarray(receivers, np.int32)
    return jraph.GraphsTuple(
        nodes=np.zeros((n, 2), np.float32),
        edges=None,
        senders=s,
        receivers=r,
        n_node=np.array([n], np.int32),
        n_edge=np.array([s.size], np.int32),
        globals=None,
    )


def test_valid_dataset_and_properties():
    ds = _tabular()
    assert ds.num_features == 2 and ds.num_examples == 6
    np.testing.assert_array_equal(ds.train_idx, [0, 1, 2])
    assert ds.val_idx.tolist() == [3] and ds.test_idx.tolist() == [4, 5]
    assert "splits(train=3, val=1, test=2)" in repr(ds)
    with pytest.raises(AttributeError):
        ds.name = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"name": ""}, "Dataset.name"),
        ({"kind": "video"}, "Dataset.kind"),
        ({"x": np.array([["a", "b"]] * 6)}, "Dataset.x"),
        ({"x": np.zeros((6, 2, 1), np.float32)}, "Dataset.x"),
        ({"y": np.full(6, 0.5)}, "Dataset.y"),
        ({"y": np.array([0, 1, 0, 1, 0, 2], np.int32)}, "Dataset.y"),
        ({"y": np.array([0, 1, 0, 1, 0, 2**40], np.int64)}, "Dataset.y"),
        ({"num_classes": 0}, "Dataset.num_classes"),
        ({"splits": {"train": np.zeros(1, np.int32)}}, "Dataset.splits"),
        ({"splits": _splits([0, 1], [1], [4])}, r"Dataset.splits\['val'\] overlaps"),
        ({"splits": _splits([1, 1], [3], [4])}, r"Dataset.splits\['train'\] repeats an index"),
        ({"splits": {**_splits([0], [3], [4]), "test": np.array([0.5])}}, r"Dataset.splits\['test'\]"),
        ({"splits": _splits([0, 9], [3], [4])}, r"Dataset.splits\['train'\] has indices outside"),
        ({"y": np.array([0, 1, 0, 1, -1, 1], np.int32)}, r"Dataset.splits\['test'\] contains unlabelled"),
        ({"graph": _graph(6, [0], [1])}, "Dataset.graph must be None"),
        ({"meta": [1, 2]}, "Dataset.meta"),
    ],
)
def test_invalid_fields_are_named(over, field):
    with pytest.raises((ValueError, TypeError), match=field):
        _tabular(**over)


def test_other_dtypes_are_cast_not_refused():
    """int64 labels and indices (numpy's default), float64 features, unsorted splits and
    lists are what a numpy user has: cast to the contract, the values unchanged."""
    ds = _tabular(x=np.arange(12, dtype=np.float64).reshape(6, 2), y=np.array([0, 1, 0, 1, 0, 1], np.int64),
                  splits={"train": np.array([2, 0, 1], np.int64), "test": [5, 4]})
    assert ds.x.dtype == np.float32 and ds.y.dtype == np.int32
    np.testing.assert_array_equal(ds.x, np.arange(12).reshape(6, 2))
    np.testing.assert_array_equal(ds.y, [0, 1, 0, 1, 0, 1])
    assert ds.train_idx.dtype == np.int32 and ds.train_idx.tolist() == [0, 1, 2]
    assert ds.test_idx.tolist() == [4, 5] and ds.val_idx.size == 0      # a missing 'val' is empty


def test_from_arrays_reads_the_kind_and_splits_by_class():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((90, 3)), np.repeat(np.arange(3, dtype=np.int64), 30)
    ds = Dataset.from_arrays(x, y)
    assert ds.kind == "tabular" and ds.num_classes == 3
    for k in ("train", "val", "test"):
        assert np.bincount(ds.y[ds.splits[k]], minlength=3).tolist() == [len(ds.splits[k]) // 3] * 3
    assert [len(ds.splits[k]) for k in ("train", "val", "test")] == [63, 9, 18]
    img = Dataset.from_arrays(rng.random((10, 4, 4)), np.arange(10) % 2)
    assert img.kind == "image" and img.x.shape == (10, 4, 4, 1)
    txt = Dataset.from_arrays(rng.integers(1, 50, (20, 7)), np.arange(20) % 2)
    assert txt.kind == "text" and txt.x.dtype == np.int32
    with pytest.raises(ValueError, match="y must be 1-d with 90"):
        Dataset.from_arrays(x, y[:5])
    with pytest.raises(ValueError, match="node dataset needs its graph"):
        Dataset.from_arrays(x, y, kind="node")


@pytest.mark.parametrize(
    ("graph", "msg"),
    [
        (None, "GraphsTuple"),
        (_graph(6, [0, 1], [1, 0])._replace(n_node=np.array([5], np.int32)), "one graph"),
        (_graph(6, [0], [1]), "symmetric"),
        (_graph(6, [0, 1, 2], [1, 0, 2]), "self-loops"),
        (_graph(6, [0, 1, 0, 1], [1, 0, 1, 0]), "repeated"),
        (_graph(6, [0, 7], [7, 0]), "outside"),
    ],
)
def test_invalid_graphs_are_named(graph, msg):
    with pytest.raises((ValueError, TypeError), match=msg):
        _tabular(kind="node", graph=graph)


def test_unlabelled_examples_outside_splits_are_allowed():
    ds = _tabular(y=np.array([0, 1, 0, 1, 0, -1], np.int32), splits=_splits([0, 1, 2], [3], [4]))
    assert ds.y[5] == -1


def test_stratified_split_properties():
    y = np.repeat(np.arange(3), [50, 30, 20]).astype(np.int32)
    y[::17] = -1
    s = stratified_split(y, (0.5, 0.25, 0.25), seed=0)
    allidx = np.concatenate(list(s.values()))
    assert np.unique(allidx).size == allidx.size == int((y >= 0).sum())
    for c in range(3):
        n_c = int((y == c).sum())
        assert int((y[s["train"]] == c).sum()) == round(0.5 * n_c)
        assert int((y[s["val"]] == c).sum()) == round(0.25 * n_c)
    assert all(np.all(np.diff(v) > 0) and v.dtype == np.int32 for v in s.values())
    t = stratified_split(y, (0.5, 0.25, 0.25), seed=0)
    assert all(np.array_equal(s[k], t[k]) for k in s)


def test_stratified_split_rejects_bad_fractions_and_seeds():
    y = np.zeros(10, np.int32)
    for bad in [(0.5, 0.5), (0.5, 0.6, -0.1), (0.0, 0.5, 0.5), (0.5, 0.5, 0.0), "abc"]:
        with pytest.raises((ValueError, TypeError), match="fractions"):
            stratified_split(y, bad)
    with pytest.raises(ValueError, match="seed"):
        stratified_split(y, seed=-3)


def test_carve_validation():
    y = np.repeat(np.arange(2), 50).astype(np.int32)
    train, val = carve_validation(y, np.arange(80), 0.25, seed=0)
    assert np.union1d(train, val).tolist() == list(range(80))
    assert np.intersect1d(train, val).size == 0
    assert np.bincount(y[val]).tolist() == [12, 8]  # round(0.25 * 50), round(0.25 * 30)
    t0, v0 = carve_validation(y, np.arange(80), 0.0)
    assert t0.tolist() == list(range(80)) and v0.size == 0
    with pytest.raises(ValueError, match="val_fraction"):
        carve_validation(y, np.arange(80), 1.0)


def test_available_and_unknown_names():
    names = available()
    assert names == tuple(sorted(names))
    assert {"cora", "citeseer", "pubmed", "fashion_mnist", "digits", "amazon_reviews", "newsgroups", "csbm"} <= set(
        names
    )
    with pytest.raises(ValueError, match=r"unknown dataset 'mnist'.*valid names: amazon_reviews, citeseer"):
        load("mnist")
    with pytest.raises(ValueError, match="did you mean 'fashion_mnist'"):
        load("fashion-mnist")


def test_options_are_checked_per_dataset():
    with pytest.raises(TypeError, match=r"csbm does not take max_len; its options are: .*num_nodes"):
        load("csbm", max_len=3)
    with pytest.raises(TypeError, match="digits reads no files"):
        load("digits", root="/tmp")
    with pytest.raises(ValueError, match="split must be 'random'"):
        load("digits", split="public")


def test_sorted_unique_matches_numpy():
    from hgcnet_jax.data.base import sorted_unique

    a = np.random.default_rng(0).integers(-50, 50, size=1000)
    np.testing.assert_array_equal(sorted_unique(a), np.unique(a))
    assert sorted_unique(np.zeros(0, np.int64)).size == 0


def test_pickle_and_deepcopy_round_trip(tiny_graph):
    import copy
    import pickle

    for ds in (_tabular(meta={"a": 1}), tiny_graph):
        for clone in (pickle.loads(pickle.dumps(ds)), copy.deepcopy(ds)):
            assert clone.name == ds.name and clone.kind == ds.kind and clone.num_classes == ds.num_classes
            np.testing.assert_array_equal(clone.x, ds.x)
            assert all(np.array_equal(clone.splits[k], ds.splits[k]) for k in ds.splits)
            assert set(clone.meta) == set(ds.meta)
            if ds.graph is not None:
                np.testing.assert_array_equal(clone.graph.senders, ds.graph.senders)
                assert clone.graph.nodes is clone.x or np.shares_memory(clone.graph.nodes, clone.x)
