"""Cora / CiteSeer / PubMed: exact counts from shared/data/README.md, splits, graph invariants."""

from __future__ import annotations

import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hgcnet_jax.data import ChecksumError, CorruptFileError, Dataset, load

FILES = ("x", "y", "tx", "ty", "allx", "ally", "graph", "test.index")


@pytest.fixture(scope="module")
def citeseer(data_dir):
    return load("citeseer", root=data_dir)


def _undirected(ds: Dataset) -> set[tuple[int, int]]:
    g = ds.graph
    return {(int(min(s, r)), int(max(s, r))) for s, r in zip(g.senders, g.receivers, strict=True)}


def test_cora_counts(cora):
    assert cora.name == "cora" and cora.kind == "node"
    assert cora.x.shape == (2708, 1433) and cora.x.dtype == np.float32
    assert set(np.unique(cora.x)) == {0.0, 1.0}  # binary bag of words
    assert cora.num_classes == 7 and cora.num_features == 1433
    assert np.bincount(cora.y).tolist() == [351, 217, 418, 818, 426, 298, 180]
    assert (len(cora.train_idx), len(cora.val_idx), len(cora.test_idx)) == (140, 500, 1000)
    assert int(cora.graph.n_edge[0]) == cora.graph.senders.size == 10556
    assert len(_undirected(cora)) == 5278
    assert cora.meta["num_unlabelled"] == 0


def test_cora_public_split_is_planetoids(cora):
    np.testing.assert_array_equal(cora.train_idx, np.arange(140))
    np.testing.assert_array_equal(cora.val_idx, np.arange(140, 640))
    assert cora.test_idx.min() == 1708 and cora.test_idx.max() == 2707
    # 20 labelled training nodes per class
    assert np.bincount(cora.y[cora.train_idx]).tolist() == [20] * 7


def test_citeseer_counts_and_isolated_test_nodes(citeseer):
    assert citeseer.x.shape == (3327, 3703)
    assert citeseer.num_classes == 6
    assert (len(citeseer.train_idx), len(citeseer.val_idx), len(citeseer.test_idx)) == (120, 500, 1000)
    assert citeseer.graph.senders.size == 9104
    # the 15 test-range ids missing from test.index: padded zero rows, label -1, in no split
    unlabelled = np.flatnonzero(citeseer.y == -1)
    assert unlabelled.size == 15 == citeseer.meta["num_unlabelled"]
    assert unlabelled.min() >= 2312
    assert not citeseer.x[unlabelled].any()
    in_split = np.concatenate(list(citeseer.splits.values()))
    assert not np.isin(unlabelled, in_split).any()
    # they keep their edges in the graph (one or two each)
    deg = np.bincount(citeseer.graph.senders, minlength=3327)[unlabelled]
    assert deg.min() >= 1 and deg.sum() == 16


def test_graph_is_symmetric_without_self_loops(cora, citeseer):
    for ds in (cora, citeseer):
        g = ds.graph
        n = ds.x.shape[0]
        assert g.edges is None and g.globals is None
        assert g.nodes is ds.x or np.shares_memory(g.nodes, ds.x)
        assert g.senders.dtype == np.int32 and g.receivers.dtype == np.int32
        assert not np.any(g.senders == g.receivers)
        fwd = g.senders.astype(np.int64) * n + g.receivers
        bwd = g.receivers.astype(np.int64) * n + g.senders
        assert np.unique(fwd).size == fwd.size
        np.testing.assert_array_equal(np.sort(fwd), np.sort(bwd))


def test_degrees_under_jit_match_numpy(cora):
    g = cora.graph

    @jax.jit
    def degree(receivers):
        return jax.ops.segment_sum(jnp.ones_like(receivers), receivers, num_segments=2708)

    np.testing.assert_array_equal(np.asarray(degree(g.receivers)), np.bincount(g.receivers, minlength=2708))


def test_full_split_is_seeded_stratified(data_dir):
    a = load("cora", root=data_dir, split="full", seed=1)
    b = load("cora", root=data_dir, split="full", seed=1)
    c = load("cora", root=data_dir, split="full", seed=2)
    counts = np.bincount(a.y)
    for k in ("train", "val", "test"):
        np.testing.assert_array_equal(a.splits[k], b.splits[k])
    assert not np.array_equal(a.train_idx, c.train_idx)
    assert sum(len(v) for v in a.splits.values()) == 2708
    np.testing.assert_array_equal(np.bincount(a.y[a.train_idx], minlength=7), np.round(0.6 * counts).astype(int))
    np.testing.assert_array_equal(np.bincount(a.y[a.val_idx], minlength=7), np.round(0.2 * counts).astype(int))
    assert len(a.train_idx) >= 512  # enough labelled nodes for the largest batch size
    assert a.meta["split"] == "full" and a.meta["seed"] == 1


def test_full_split_excludes_unlabelled_citeseer_nodes(data_dir):
    ds = load("citeseer", root=data_dir, split="full", fractions=(0.5, 0.25, 0.25))
    assert sum(len(v) for v in ds.splits.values()) == 3327 - 15


def test_normalize_features_rows_sum_to_one(data_dir, citeseer):
    ds = load("citeseer", root=data_dir, normalize_features=True)
    sums = ds.x.sum(axis=1)
    nonzero = citeseer.x.any(axis=1)
    np.testing.assert_allclose(sums[nonzero], 1.0, rtol=1e-5)
    assert not ds.x[~nonzero].any()
    # same sparsity pattern as the raw features
    np.testing.assert_array_equal(ds.x > 0, citeseer.x > 0)


def test_arrays_are_read_only(cora):
    with pytest.raises(ValueError):
        cora.x[0, 0] = 5.0
    with pytest.raises(TypeError):
        cora.splits["train"] = np.arange(3, dtype=np.int32)  # type: ignore[index]


def test_bad_split_and_fractions(data_dir):
    with pytest.raises(ValueError, match="split must be one of"):
        load("cora", root=data_dir, split="random")
    with pytest.raises(ValueError, match="fractions"):
        load("cora", root=data_dir, split="full", fractions=(0.6, 0.6, 0.2))
    with pytest.raises(TypeError, match="normalize_features"):
        load("cora", root=data_dir, normalize_features="yes")


def test_pubmed_code_path_with_user_files(tmp_path, isolated, fake_planetoid):
    """PubMed uses the same loader; with no built-in checksum its files are read by the restricted unpickler."""
    expected = fake_planetoid(tmp_path / "planetoid", "pubmed")
    ds = load("pubmed", root=tmp_path)
    np.testing.assert_array_equal(ds.x, expected["x"])
    np.testing.assert_array_equal(ds.y, expected["y"])
    assert ds.meta["num_unlabelled"] == 1 and ds.y[8] == -1
    np.testing.assert_array_equal(ds.train_idx, [0, 1])
    np.testing.assert_array_equal(ds.val_idx, [2, 3, 4, 5])
    np.testing.assert_array_equal(ds.test_idx, expected["test_index"])
    assert _undirected(ds) == expected["undirected"]
    assert ds.graph.senders.size == 2 * len(expected["undirected"])


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_pubmed_files_from_any_pickle_protocol(tmp_path, isolated, fake_planetoid, protocol):
    expected = fake_planetoid(tmp_path, "pubmed", protocol=protocol)  # files directly in root
    ds = load("pubmed", root=tmp_path)
    np.testing.assert_array_equal(ds.x, expected["x"])


def _copy_cora(data_dir, dst):
    dst.mkdir(parents=True)
    for ext in FILES:
        shutil.copy(data_dir / "planetoid" / f"ind.cora.{ext}", dst / f"ind.cora.{ext}")


def test_truncated_known_file_is_named(tmp_path, isolated, data_dir):
    _copy_cora(data_dir, tmp_path / "planetoid")
    victim = tmp_path / "planetoid" / "ind.cora.graph"
    victim.write_bytes(victim.read_bytes()[:1000])
    with pytest.raises(ChecksumError, match=r"ind\.cora\.graph"):
        load("cora", root=tmp_path)


def test_truncated_unknown_file_is_named(tmp_path, isolated, fake_planetoid):
    fake_planetoid(tmp_path, "pubmed")
    victim = tmp_path / "ind.pubmed.allx"
    victim.write_bytes(victim.read_bytes()[:-20])
    with pytest.raises(CorruptFileError, match=r"ind\.pubmed\.allx"):
        load("pubmed", root=tmp_path)


def test_inconsistent_files_are_named(tmp_path, isolated, fake_planetoid):
    fake_planetoid(tmp_path, "pubmed")
    (tmp_path / "ind.pubmed.test.index").write_text("9\n6\n7\n")  # 3 ids for 5 rows of tx
    with pytest.raises(CorruptFileError, match=r"ind\.pubmed\.test\.index"):
        load("pubmed", root=tmp_path)
    (tmp_path / "ind.pubmed.test.index").write_text("9\nsix\n7\n10\n11\n")
    with pytest.raises(CorruptFileError, match=r"ind\.pubmed\.test\.index"):
        load("pubmed", root=tmp_path)


@pytest.mark.parametrize("name", ["cora", "citeseer"])
def test_matches_the_kipf_welling_construction(data_dir, name, cora, citeseer):
    """Independent reference: Kipf & Welling's preprocessing (gcn/utils.py) of the same objects."""
    import scipy.sparse as sp

    from hgcnet_jax.data._safe_pickle import safe_load

    ds = {"cora": cora, "citeseer": citeseer}[name]
    raw = {
        ext: safe_load(data_dir / "planetoid" / f"ind.{name}.{ext}")
        for ext in ("x", "y", "tx", "ty", "allx", "ally", "graph")
    }
    test_idx_reorder = [int(t) for t in (data_dir / "planetoid" / f"ind.{name}.test.index").read_text().split()]
    test_idx_range = np.sort(test_idx_reorder)
    tx, ty = raw["tx"], raw["ty"]
    if name == "citeseer":
        full = range(min(test_idx_reorder), max(test_idx_reorder) + 1)
        tx_ext = sp.lil_matrix((len(full), tx.shape[1]))
        tx_ext[test_idx_range - min(test_idx_range), :] = tx
        tx = tx_ext
        ty_ext = np.zeros((len(full), ty.shape[1]))
        ty_ext[test_idx_range - min(test_idx_range), :] = ty
        ty = ty_ext
    features = sp.vstack((raw["allx"], tx)).tolil()
    features[test_idx_reorder, :] = features[test_idx_range, :]
    labels = np.vstack((raw["ally"], ty))
    labels[test_idx_reorder, :] = labels[test_idx_range, :]
    np.testing.assert_array_equal(ds.x, features.toarray().astype(np.float32))
    ref_y = np.where(labels.sum(1) > 0, labels.argmax(1), -1)
    np.testing.assert_array_equal(ds.y, ref_y)
    adj = sp.coo_matrix(
        (
            np.ones(sum(len(v) for v in raw["graph"].values())),
            ([k for k, v in raw["graph"].items() for _ in v], [u for v in raw["graph"].values() for u in v]),
        ),
        shape=(ds.x.shape[0],) * 2,
    ).tocsr()
    adj = ((adj + adj.T) > 0).astype(np.int8).tolil()
    adj.setdiag(0)
    adj = adj.tocoo()
    ref = set(zip(adj.row[adj.data > 0].tolist(), adj.col[adj.data > 0].tolist(), strict=True))
    assert ref == set(zip(ds.graph.senders.tolist(), ds.graph.receivers.tolist(), strict=True))


def _gcn_test_accuracy(ds: Dataset, *, steps: int = 200, seed: int = 0) -> float:
    """A minimal 2-layer GCN (Kipf & Welling 2017) trained on the public split; returns test accuracy."""
    import optax

    n = ds.x.shape[0]
    loops = np.arange(n, dtype=np.int32)
    s = jnp.asarray(np.concatenate([ds.graph.senders, loops]))
    r = jnp.asarray(np.concatenate([ds.graph.receivers, loops]))
    deg = jax.ops.segment_sum(jnp.ones_like(s, jnp.float32), r, num_segments=n)
    norm = jax.lax.rsqrt(deg[s] * deg[r])

    def propagate(h):
        return jax.ops.segment_sum(h[s] * norm[:, None], r, num_segments=n)

    rows, cols = np.nonzero(ds.x)  # bag-of-words features are ~1 % dense: multiply sparsely
    vals = jnp.asarray(ds.x[rows, cols])
    rows, cols = jnp.asarray(rows), jnp.asarray(cols)

    def features_times(w):
        return jax.ops.segment_sum(vals[:, None] * w[cols], rows, num_segments=n)

    y = jnp.asarray(np.maximum(ds.y, 0))
    train, test = jnp.asarray(ds.train_idx), jnp.asarray(ds.test_idx)
    k1, k2 = jax.random.split(jax.random.key(seed))
    params = {
        "w1": jax.random.normal(k1, (ds.num_features, 16)) * np.sqrt(2.0 / (ds.num_features + 16)),
        "w2": jax.random.normal(k2, (16, ds.num_classes)) * np.sqrt(2.0 / (16 + ds.num_classes)),
    }

    def logits(p, key):
        h = propagate(features_times(p["w1"]))
        h = jax.nn.relu(h)
        if key is not None:
            h = h * jax.random.bernoulli(key, 0.5, h.shape) / 0.5
        return propagate(h @ p["w2"])

    def loss(p, key):
        lg = logits(p, key)[train]
        return optax.softmax_cross_entropy_with_integer_labels(lg, y[train]).mean() + 5e-4 * jnp.sum(p["w1"] ** 2)

    opt = optax.adam(0.01)

    @jax.jit
    def train_all(p, key):
        def step(carry, k):
            p, st = carry
            g = jax.grad(loss)(p, k)
            upd, st = opt.update(g, st, p)
            return (optax.apply_updates(p, upd), st), None

        (p, _), _ = jax.lax.scan(step, (p, opt.init(p)), jax.random.split(key, steps))
        return (logits(p, None)[test].argmax(-1) == y[test]).mean()

    return float(train_all(params, jax.random.key(seed + 1)))


@pytest.mark.parametrize(("name", "floor"), [("cora", 0.77), ("citeseer", 0.66)])
def test_a_gcn_reaches_published_accuracy(data_dir, name, floor):
    """End to end: features, labels, graph and public split line up (Kipf & Welling: 81.5 / 70.3)."""
    ds = load(name, root=data_dir, normalize_features=True)
    assert _gcn_test_accuracy(ds) > floor
