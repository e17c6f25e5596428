"""The design-based recommendation: the arm means of a randomised treatment, with bootstrap uncertainty."""

from __future__ import annotations

import jax
import numpy as np
import pandas as pd
import pytest

from hgcnet_jax import causal


def _arms(means, n=12, sd=0.01, seed=0):
    rng = np.random.default_rng(seed)
    rows = [dict(batch_size=b, test_acc=float(np.clip(m + sd * rng.standard_normal(), 0, 1)))
            for b, m in means.items() for _ in range(n)]
    return pd.DataFrame(rows)


def test_the_best_arm_mean_is_recommended_with_bootstrap_uncertainty():
    planted = {16: 0.88, 64: 0.90, 256: 0.85, 512: 0.73}
    table = _arms(planted)
    rec = causal.recommend_from_arms(table, "batch_size", "test_acc", key=jax.random.key(0), current=512, prob=0.9)
    means = table.groupby("batch_size")["test_acc"].mean()
    assert rec.best == 64 == int(means.idxmax())
    t = rec.table.set_index("value")
    np.testing.assert_allclose(t.loc[list(planted), "mean"], means.loc[list(planted)], rtol=1e-12)
    assert np.all(t["lower"] <= t["mean"]) and np.all(t["mean"] <= t["upper"])
    assert np.all((t[["lower", "upper"]] >= 0) & (t[["lower", "upper"]] <= 1))
    assert t["p_best"].sum() == pytest.approx(1.0) and t.loc[64, "p_best"] > 0.9
    assert rec.p_beats_current == pytest.approx(1.0) and rec.gain == pytest.approx(means[64] - means[512])
    # the bootstrap sd of an arm mean is close to sd / sqrt(n)
    sd = table.groupby("batch_size")["test_acc"].std(ddof=1) / np.sqrt(12)
    np.testing.assert_allclose(t.loc[list(planted), "sd"], sd.loc[list(planted)], rtol=0.25)
    # two arms holding the very same runs' values share the probability of being best
    one = _arms({16: 0.9}, n=30)
    tie = causal.recommend_from_arms(pd.concat([one, one.assign(batch_size=32)]), "batch_size", "test_acc",
                                     key=jax.random.key(1))
    assert 0.4 < tie.table["p_best"].min() <= tie.table["p_best"].max() < 0.6


@pytest.mark.parametrize(
    "table, kwargs, match",
    [
        (_arms({16: 0.9}), {}, "at least two arms"),
        (_arms({16: 0.9, 32: 0.8}, n=1), {}, "at least 2"),
        (_arms({16: 0.9, 32: 0.8}), {"current": 64}, "not an arm"),
        (_arms({16: 0.9, 32: 0.8}).drop(columns="test_acc"), {}, "no column 'test_acc'"),
        (_arms({16: 0.9, 32: 0.8}), {"num_bootstrap": 10}, "num_bootstrap"),
    ],
)
def test_bad_inputs_are_refused_by_name(table, kwargs, match):
    with pytest.raises(ValueError, match=match):
        causal.recommend_from_arms(table, "batch_size", "test_acc", key=jax.random.key(0), **kwargs)
