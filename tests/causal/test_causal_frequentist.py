"""Permutation test and bootstrap interval for a difference in mean outcome."""

import itertools

import jax
import numpy as np
import pandas as pd
import pytest

from hgcnet_jax.causal import permutation_test as _permutation_test

# One resampling size everywhere keeps the number of compiled programs small.
R = dict(num_permutations=2000, num_bootstrap=2000)


def permutation_test(*args, **kwargs):
    return _permutation_test(*args, **{**R, **kwargs})


def _table(a_vals, b_vals):
    return pd.DataFrame(
        {"batch_size": [16] * len(a_vals) + [512] * len(b_vals) + [64], "acc": [*a_vals, *b_vals, 0.0]}
    )


def test_matches_exhaustive_enumeration():
    a, b = [0.81, 0.79, 0.84, 0.80], [0.78, 0.80, 0.77, 0.79]
    pooled = np.array(a + b)
    obs = np.mean(a) - np.mean(b)
    stats = [pooled[list(i)].mean() - np.delete(pooled, list(i)).mean() for i in itertools.combinations(range(8), 4)]
    exact = np.mean(np.abs(stats) >= abs(obs) - 1e-12)
    r = permutation_test(_table(a, b), "batch_size", 16, 512, "acc", key=jax.random.key(0), num_permutations=20_000)
    np.testing.assert_allclose(r.diff, obs)
    assert abs(r.p_value - exact) < 0.01
    assert r.n_a == r.n_b == 4  # the B = 64 row is ignored


def test_ten_seeds_clear_difference_and_null():
    rng = np.random.default_rng(0)
    a, b = 0.82 + 0.005 * rng.standard_normal(10), 0.80 + 0.005 * rng.standard_normal(10)
    r = permutation_test(_table(a, b), "batch_size", 16, 512, "acc", key=jax.random.key(1))
    assert r.p_value < 0.01 and r.lower > 0 and r.lower < r.diff < r.upper
    one_sided = permutation_test(_table(a, b), "batch_size", 16, 512, "acc", key=jax.random.key(1), alternative="less")
    assert one_sided.p_value > 0.99
    # Under the null, p-values are not small for most seeds.
    ps = [
        permutation_test(
            _table(rng.standard_normal(10), rng.standard_normal(10)), "batch_size", 16, 512, "acc",
            key=jax.random.key(s),
        ).p_value
        for s in range(20)
    ]  # fmt: skip
    assert np.mean(np.array(ps) < 0.05) <= 0.15 and min(ps) >= 1 / 2001


def test_bootstrap_interval_width_matches_normal_theory():
    rng = np.random.default_rng(3)
    a, b = rng.normal(1.0, 1.0, 10), rng.normal(0.0, 1.0, 10)
    r = permutation_test(_table(a, b), "batch_size", 16, 512, "acc", key=jax.random.key(2), prob=0.9)
    se = np.sqrt(a.var() / 10 + b.var() / 10)  # the bootstrap's own standard error
    np.testing.assert_allclose(r.upper - r.lower, 2 * 1.645 * se, rtol=0.1)


def test_errors():
    t = _table([1.0, 2.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="outcome column 'G' not in data"):
        permutation_test(t, "batch_size", 16, 512, "G", key=jax.random.key(0))
    with pytest.raises(ValueError, match="at least 2 runs with batch_size == 128"):
        permutation_test(t, "batch_size", 16, 128, "acc", key=jax.random.key(0))
    t.loc[0, "acc"] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        permutation_test(t, "batch_size", 16, 512, "acc", key=jax.random.key(0))
    with pytest.raises(ValueError, match="alternative"):
        permutation_test(_table([1, 2], [3, 4]), "batch_size", 16, 512, "acc", key=jax.random.key(0), alternative="both")
