"""Streamed Granger statistics equal the full design's, and give the same pruning decision."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hgcnet_jax.prune import granger as G
from hgcnet_jax.prune.masks import ones_mask, prunable
from hgcnet_jax.prune.record import GrangerStats, Recording, Trainer, n_rows

from .test_planted import P, R, PlantedTask


def _rec(N=23, P_=7, seed=0):
    rng = np.random.default_rng(seed)
    losses = rng.random((2, N)).astype(np.float32)
    after = (losses - rng.random((2, N))).astype(np.float32)
    deltas = rng.standard_normal((2, N, P_)).astype(np.float32)
    return Recording(losses, after, deltas, {"a": slice(0, 3), "b": slice(3, P_)}, 1e-3)


def _group_design(X, sl, P_, features):
    cols = np.arange(P_)[sl]
    return X[:, np.concatenate([cols + k * P_ for k in range(3)])] if features == "momentum" else X[:, sl]


@pytest.mark.parametrize("target", ["consecutive", "same_batch"])
@pytest.mark.parametrize("features", ["sq", "momentum"])
@pytest.mark.parametrize("chunk", [1, 5, 23, 40])
def test_streamed_statistics_equal_full_design(target, features, chunk):
    rec = _rec()
    P_ = rec.deltas.shape[2]
    # group "a" (3 weights: 3 or 9 feature columns) keeps its Gram, group "b" (4 weights) its columns
    gmax = 9 if features == "momentum" else 3
    st = GrangerStats.from_recording(rec, rec.layer_slices, target=target, features=features,
                                     gram_max_features=gmax, chunk_steps=chunk)
    assert set(st.gram) == {"a"} and set(st.deltas) == {"b"}
    for s in range(2):
        X, y = rec.design(s, target=target, features=features)
        assert st.n == X.shape[0] == n_rows(rec.deltas.shape[1], target=target, features=features)
        np.testing.assert_allclose(st.y[s], y, rtol=0, atol=0)
        np.testing.assert_allclose(st.yty[s], y @ y, rtol=1e-12)
        for name, sl in rec.layer_slices.items():
            Xg = _group_design(X, sl, P_, features).astype(np.float64)
            np.testing.assert_allclose(st.xty[name][s], Xg.T @ y, rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(st.sumsq[name][s], (Xg * Xg).sum(0), rtol=1e-10)
            if name in st.gram:
                np.testing.assert_allclose(st.gram[name][s], Xg.T @ Xg, rtol=1e-10, atol=1e-12)
            else:
                Xd, yd = st.design(s, name)
                np.testing.assert_array_equal(Xd, _group_design(X, sl, P_, features))
                np.testing.assert_array_equal(yd, y)


def test_spilled_columns_live_on_disk(tmp_path):
    rec = _rec()
    from hgcnet_jax.prune.record import _StatsAccumulator

    acc = _StatsAccumulator(2, 23, 7, rec.layer_slices, target="same_batch", features="sq", gram_max_features=0,
                            lr=1e-3, spill_dir=str(tmp_path))
    for lo in range(0, 23, 4):
        acc.push(lo, rec.deltas[:, lo:lo + 4], rec.losses[:, lo:lo + 4], rec.losses_after[:, lo:lo + 4])
    st = acc.finish()
    assert all(isinstance(d, np.memmap) for d in st.deltas.values())
    assert list(tmp_path.iterdir()) == []                  # unlinked: freed with the mapping
    X, y = rec.design(1, target="same_batch")
    np.testing.assert_array_equal(st.design(1, "b")[0], X[:, 3:])
    assert st.nbytes < rec.nbytes


@pytest.fixture(scope="module")
def planted_pair():
    """The same SGD phase recorded in full and streamed (same key: the same trajectory)."""
    task = PlantedTask()
    params = jax.vmap(task.init)(jnp.stack([jax.random.key(0), jax.random.key(1)]))
    which = prunable(jax.tree.map(lambda x: x[0], params))
    trainer = Trainer(task, which, batch_size=16)
    mask = jax.vmap(ones_mask)(params)
    kw = dict(key=jax.random.key(3), steps=150, lr=0.01, chunk_steps=16)
    _, rec = trainer.record(params, mask, same_batch=True, **kw)
    _, st = trainer.record_stats(params, mask, target="same_batch", **kw)
    return rec, st


def test_trainer_streams_what_it_records(planted_pair):
    rec, st = planted_pair
    assert set(st.gram) == {"all"} and not st.deltas        # 40 columns: the Gram (12.8 kB), no columns kept
    assert st.nbytes < rec.deltas.nbytes
    for s in range(2):
        X, y = rec.design(s, target="same_batch")
        X = X.astype(np.float64)
        np.testing.assert_allclose(st.gram["all"][s], X.T @ X, rtol=1e-10)
        np.testing.assert_allclose(st.xty["all"][s], X.T @ y, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("mode", ["exact", "rank"])
def test_streamed_pruning_decision_is_identical(planted_pair, mode):
    rec, st = planted_pair
    kw = dict(mode=mode, target_sparsity=1 - R / P, alpha=0.05, tol=1e-6)
    alive = np.ones(P, bool)
    alive[R + 3] = False                                     # a dead weight stays dead in both
    for s in range(2):
        X, y = rec.design(s, target="same_batch")
        full, ffits = G.granger_keep(X, y, alive, {"all": slice(0, P)}, solver="cd", **kw)
        streamed, sfits = G.granger_keep_stats(st, s, alive, **kw)
        np.testing.assert_array_equal(streamed, full)
        np.testing.assert_allclose(sfits[0].coef, ffits[0].coef, rtol=1e-3, atol=1e-6)
        assert bool(sfits[0].result.converged)
        # and the planted weights are the ones kept (the working-set solver agrees too)
        assert streamed[:R].all() and streamed.sum() <= R + 1
        ws, _ = G.granger_keep(X, y, alive, {"all": slice(0, P)}, solver="ws", **kw)
        np.testing.assert_array_equal(streamed, ws)
