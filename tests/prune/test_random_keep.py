"""random_keep draws from a JAX key: the budget of the former numpy-seeded draw, a uniform subset."""

import jax
import numpy as np
import pytest

from hgcnet_jax.prune import random_keep

SLICES = {"a": slice(0, 30), "b": slice(30, 50)}
ALIVE = np.arange(50) % 5 != 0  # 40 alive: 24 in a, 16 in b


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_budget_and_subset_of_alive(scope):
    keep = random_keep(ALIVE, SLICES, target_sparsity=0.5, key=jax.random.key(0), scope=scope)
    assert not np.any(keep & ~ALIVE)
    if scope == "global":
        assert keep.sum() == 25  # round(0.5 * 50), as before
    else:
        assert keep[SLICES["a"]].sum() == 15 and keep[SLICES["b"]].sum() == 10


def test_same_key_same_mask_other_key_other_mask():
    draw = lambda k: random_keep(ALIVE, SLICES, target_sparsity=0.5, key=jax.random.key(k))  # noqa: E731
    np.testing.assert_array_equal(draw(1), draw(1))
    assert not np.array_equal(draw(1), draw(2))
    with pytest.raises(TypeError, match="random_keep: key must be a JAX PRNG key"):
        random_keep(ALIVE, SLICES, target_sparsity=0.5, key=1)


def test_every_alive_weight_is_equally_likely_to_be_kept():
    # 25 of 40 alive are kept: each alive weight with probability 5/8 (binomial sd over 400
    # draws: 0.024, so 0.1 is four standard deviations), dead ones never
    keys = jax.random.split(jax.random.key(3), 400)
    freq = np.mean([random_keep(ALIVE, SLICES, target_sparsity=0.5, key=k) for k in keys], axis=0)
    assert np.all(freq[~ALIVE] == 0)
    np.testing.assert_allclose(freq[ALIVE], 25 / 40, atol=0.1)
