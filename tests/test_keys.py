"""hgcnet_jax._keys: one key validator, and named derivations equal to the numbers they replaced."""

import jax
import numpy as np
import pytest

from hgcnet_jax import _keys

KEY = jax.random.key(3)


def _data(k):
    return np.asarray(jax.random.key_data(k))


@pytest.mark.parametrize(
    "key", [jax.random.key(0), jax.random.PRNGKey(0), np.asarray(jax.random.PRNGKey(0))], ids=["typed", "raw", "numpy"]
)
def test_check_key_accepts_one_key_and_returns_it(key):
    assert _keys.check_key(key) is key
    typed = _keys.typed_key(key)
    assert jax.dtypes.issubdtype(typed.dtype, jax.dtypes.prng_key)
    np.testing.assert_array_equal(_data(typed), _data(jax.random.key(0)))


@pytest.mark.parametrize(
    ("key", "match"),
    [
        (0, "where: key must be a JAX PRNG key, e.g."),
        (None, "PRNG key"),
        (jax.random.split(KEY, 2), "single PRNG key"),
        (np.zeros(3, np.uint32), "shape \\(3,\\)"),
        (np.zeros(2, np.int32), "dtype int32"),
    ],
)
def test_check_key_rejects_with_a_type_error_naming_the_caller(key, match):
    with pytest.raises(TypeError, match=match):
        _keys.check_key(key, where="where")


def test_named_derivations_are_the_historical_numbers():
    f = jax.random.fold_in
    pairs = [
        (_keys.sweep_init(KEY), f(KEY, 0)),
        (_keys.sweep_permutation(KEY, 4), f(f(KEY, 1), 4)),
        (_keys.sweep_dropout(KEY, 5), f(f(KEY, 2), 5)),
        (_keys.sweep_noise(KEY, 6), f(f(KEY, 3), 6)),
        (_keys.prune_pretrain(KEY), f(KEY, 101)),
        (_keys.prune_final(KEY, -1), f(KEY, 999)),
        (_keys.prune_final(KEY, 2), f(KEY, 1002)),
        (_keys.prune_curvature(KEY), f(KEY, 7)),
        (_keys.prune_density(KEY), f(KEY, 10_000)),
        (_keys.prune_step(KEY, 2, 1), f(KEY, 5000 + 97 * 2 + 1)),
        (_keys.prune_random(KEY, 4), f(KEY, 4)),
        (_keys.prune_batches(KEY), f(KEY, 1)),
        (_keys.causal_query(KEY), f(KEY, 1)),
    ]
    for ours, theirs in pairs:
        np.testing.assert_array_equal(_data(ours), _data(theirs))


def test_study_keys_are_the_historical_numbers():
    from hgcnet_jax.study.keys import StudyKeys

    f, root = jax.random.fold_in, jax.random.key(3)
    k = StudyKeys.of(3)
    perm, ref = jax.random.split(f(root, 20))
    for ours, theirs in [(k.sweep, root), (k.mediators, f(root, 1)), (k.fits[0], f(root, 10)), (k.fits[1], f(root, 11)),
                         (k.permutation, perm), (k.refutations, ref)]:
        np.testing.assert_array_equal(_data(ours), _data(theirs))
