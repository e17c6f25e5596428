"""The removal oracle against a hand loop, early-stopped training, resumable training, the paired test."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from hgcnet_jax.prune.analysis import paired_comparison
from hgcnet_jax.prune.masks import ones_mask, prunable
from hgcnet_jax.prune.oracle import rank_agreement, removal_oracle, sample_weights, unit_removal_oracle
from hgcnet_jax.prune.record import Trainer


class Blobs:
    """Two Gaussian blobs in 4-d, a 4-6-2 tanh network; train / val / test are disjoint."""

    def __init__(self, n=600, seed=0):
        rng = np.random.default_rng(seed)
        y = rng.integers(0, 2, n)
        x = rng.standard_normal((n, 4)) + 1.2 * (2 * y[:, None] - 1) * np.array([1.0, 0.5, 0.0, 0.0])
        self.x, self.y = jnp.asarray(x, jnp.float32), jnp.asarray(y)
        self.splits = {"train": np.arange(0, 400), "val": np.arange(400, 500), "test": np.arange(500, n)}

    def init(self, key):
        k1, k2 = jax.random.split(key)
        return {"h": {"kernel": 0.5 * jax.random.normal(k1, (4, 6)), "bias": jnp.zeros(6)},
                "o": {"kernel": 0.5 * jax.random.normal(k2, (6, 2)), "bias": jnp.zeros(2)}}

    def logits(self, p, idx):
        h = jnp.tanh(jnp.take(self.x, idx, axis=0) @ p["h"]["kernel"] + p["h"]["bias"])
        return h @ p["o"]["kernel"] + p["o"]["bias"]

    def loss(self, p, idx, *, key=None, train=False):
        lg = self.logits(p, idx)
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(lg), jnp.take(self.y, idx)[:, None], 1))

    def accuracy(self, p, idx):
        return jnp.mean(jnp.argmax(self.logits(p, idx), -1) == jnp.take(self.y, idx))


@pytest.fixture(scope="module")
def setup():
    task = Blobs()
    params = jax.vmap(task.init)(jnp.stack([jax.random.key(0), jax.random.key(1)]))
    which = prunable(jax.tree.map(lambda x: x[0], params))
    return task, params, which


def _flat_kernels(p):
    return np.concatenate([np.ravel(p["h"]["kernel"]), np.ravel(p["o"]["kernel"])])


def test_removal_oracle_equals_a_loop_of_zeroed_weights(setup):
    task, params, which = setup
    idx = jnp.arange(100)
    loss = lambda q: task.loss(q, idx)                                   # noqa: E731
    picks = np.array([0, 5, 23, 24, 30, 35])                              # both layers (h: 24 weights, o: 12)
    got = removal_oracle(loss, params, which, picks, chunk=4)             # 6 items: a padded second chunk
    assert got.shape == (2, 6)
    for s in range(2):
        p = jax.tree.map(lambda x: np.asarray(x[s]), params)
        base = float(task.loss(p, idx))
        for j, k in enumerate(picks):
            q = jax.tree.map(np.copy, p)
            if k < 24:
                q["h"]["kernel"].reshape(-1)[k] = 0.0
            else:
                q["o"]["kernel"].reshape(-1)[k - 24] = 0.0
            np.testing.assert_allclose(got[s, j], float(task.loss(q, idx)) - base, rtol=1e-4, atol=1e-6)
    # a weight that is already zero changes nothing (to float rounding: batched and single passes differ)
    zeroed = jax.tree.map(lambda x: x, params)
    zeroed["h"]["kernel"] = zeroed["h"]["kernel"].at[:, 0, 0].set(0.0)
    np.testing.assert_allclose(removal_oracle(loss, zeroed, which, [0])[:, 0], 0.0, atol=1e-6)
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 36\)"):
        removal_oracle(loss, params, which, [36])


def test_unit_removal_oracle_zeroes_whole_output_columns(setup):
    task, params, which = setup
    idx = jnp.arange(100)
    loss = lambda q: task.loss(q, idx)                                   # noqa: E731
    slices = {"h/kernel": slice(0, 24), "o/kernel": slice(24, 36)}
    shapes = {"h/kernel": (4, 6), "o/kernel": (6, 2)}
    got = unit_removal_oracle(loss, params, which, slices, shapes, layers=["h/kernel"], chunk=4)
    assert list(got) == ["h/kernel"] and got["h/kernel"].shape == (2, 6)
    for s in range(2):
        p = jax.tree.map(lambda x: np.asarray(x[s]), params)
        base = float(task.loss(p, idx))
        for u in range(6):
            q = jax.tree.map(np.copy, p)
            q["h"]["kernel"][:, u] = 0.0
            np.testing.assert_allclose(got["h/kernel"][s, u], float(task.loss(q, idx)) - base, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="unknown layers"):
        unit_removal_oracle(loss, params, which, slices, shapes, layers=["nope"])


def test_sample_weights_and_rank_agreement():
    sl = {"a": slice(0, 10), "b": slice(10, 1010)}
    s = sample_weights(sl, 50, key=jax.random.key(0))
    assert np.array_equal(s["a"], np.arange(10))
    assert s["b"].size == 50 and np.unique(s["b"]).size == 50 and s["b"].min() >= 10 and s["b"].max() < 1010
    x = np.arange(20.0)
    assert rank_agreement(x, x ** 3) == pytest.approx(1.0)
    assert rank_agreement(-x, x) == pytest.approx(-1.0)
    assert np.isnan(rank_agreement(np.ones(20), x))                     # every score tied: no ranking


def test_resume_continues_train_exactly(setup):
    task, params, which = setup
    tr = Trainer(task, which, batch_size=20)
    mask = jax.vmap(ones_mask)(params)
    a, la = tr.train(params, mask, key=jax.random.key(5), steps=30, opt=("adam", 1e-2), chunk_steps=10)
    b, st, lb = tr.resume(params, tr.init_opt(("adam", 1e-2), params, mask), mask, key=jax.random.key(5), steps=30,
                          opt=("adam", 1e-2), chunk_steps=10)
    np.testing.assert_array_equal(la, lb)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    # the returned optimiser state carries on: Adam's step count is 30
    counts = [np.asarray(x) for x in jax.tree.leaves(st) if np.asarray(x).dtype == np.int32]
    assert counts and all(np.all(c == 30) for c in counts)


def test_early_stopping_keeps_each_replicas_best(setup):
    task, params, which = setup
    tr = Trainer(task, which, batch_size=20)
    mask = jax.vmap(ones_mask)(params)
    val = task.splits["val"]
    es = tr.train_early_stopping(params, mask, key=jax.random.key(2), val_idx=val, opt=("adam", 3e-2),
                                 max_steps=200, eval_every=10, patience=3)
    assert es.history.shape[1] == 2 and es.history.shape[0] == es.steps_run // 10 + 1
    np.testing.assert_array_equal(es.best_val, es.history.max(axis=0))
    # the first evaluation that reached the best is the one kept
    np.testing.assert_array_equal(es.best_step, 10 * es.history.argmax(axis=0))
    np.testing.assert_allclose(tr.accuracy(es.params, mask, val), es.best_val, atol=1e-6)
    assert es.best_val.min() > es.history[0].min() or es.history[0].min() >= 0.9     # it learned something
    # training stops once every replica has waited `patience` evaluations, or at max_steps
    waits = es.steps_run // 10 - es.history.argmax(axis=0)
    assert es.steps_run == 200 or np.all(waits >= 3)
    with pytest.raises(ValueError, match="overlaps the training split"):
        tr.train_early_stopping(params, mask, key=jax.random.key(2), val_idx=np.arange(390, 410),
                                opt=("adam", 1e-2), max_steps=20, eval_every=10, patience=1)
    with pytest.raises(ValueError, match="patience must be >= 1"):
        tr.train_early_stopping(params, mask, key=jax.random.key(2), val_idx=val, opt=("adam", 1e-2),
                                max_steps=20, eval_every=10, patience=0)


def test_paired_comparison_matches_scipy_and_the_exact_count():
    rng = np.random.default_rng(0)
    a = rng.normal(0.8, 0.01, 7)
    b = a - rng.normal(0.004, 0.004, 7)
    r = paired_comparison(a, b)
    ref = stats.ttest_rel(a, b)
    assert r.p_t == pytest.approx(ref.pvalue, rel=1e-9)
    ci = ref.confidence_interval(0.95)
    assert (r.lo, r.hi) == pytest.approx((ci.low, ci.high), rel=1e-9)
    # five pairs all in one direction: exactly 2 of the 32 sign patterns are as extreme
    r5 = paired_comparison(np.arange(5.0) + 1.0, np.zeros(5))
    assert r5.p_exact == pytest.approx(2 / 32)
    assert r5.verdict == "A better"
    assert paired_comparison(np.zeros(5), np.arange(5.0) + 1).verdict == "B better"
    assert paired_comparison([1.0, 2.0, 3.0], [2.0, 1.0, 3.0]).verdict == "no difference detected"


def test_structured_unit_scores_rank_the_kept_units_first():
    from hgcnet_jax.prune.structured import structured_granger_keep

    rng = np.random.default_rng(0)
    shape = (5, 8)                                     # 8 units of 5 weights
    P = 40
    X = rng.standard_normal((120, P)) ** 2
    unit = np.tile(np.arange(8), 5)
    y = X[:, unit < 2].sum(1) * 0.5 + 0.1 * rng.standard_normal(120)
    scores = {}
    keep, _ = structured_granger_keep(X, y, np.ones(P, bool), {"l": slice(0, P)}, {"l": shape},
                                      target_sparsity=0.5, unit_scores=scores)
    r = scores["l"]
    assert sorted(r) == list(range(8))
    kept_units = np.unique(unit[keep])
    assert set(kept_units) == set(np.argsort(r)[-4:])  # the four best-ranked units are the kept ones
    assert {0, 1} <= set(kept_units)                   # the planted units are among them
