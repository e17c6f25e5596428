"""Recording.design: the regression rows for each target and feature set (no training needed)."""

import numpy as np
import pytest

from hgcnet_jax.prune.record import Recording


def _rec(same_batch=True):
    rng = np.random.default_rng(0)
    T1, P = 6, 4
    losses = rng.random((1, T1)).astype(np.float32)
    after = (losses - 0.1).astype(np.float32) if same_batch else np.full((1, T1), np.nan, np.float32)
    deltas = rng.standard_normal((1, T1, P)).astype(np.float32)
    return Recording(losses, after, deltas, {"a": slice(0, 1), "b": slice(1, 4)}, 1e-3)


def test_consecutive_and_same_batch_targets():
    r = _rec()
    X, y = r.design(0, target="consecutive")
    assert X.shape == (5, 4)
    np.testing.assert_allclose(y, np.diff(r.losses[0].astype(np.float64)))
    np.testing.assert_allclose(X, r.deltas[0, :5] ** 2)
    X2, y2 = r.design(0, target="same_batch")
    assert X2.shape == (6, 4)
    np.testing.assert_allclose(y2, -0.1, atol=1e-6)


def test_momentum_features_layout():
    r = _rec()
    X, y = r.design(0, target="consecutive", features="momentum")
    d = r.deltas[0]
    assert X.shape == (4, 12) and y.shape == (4,)
    np.testing.assert_allclose(X[:, :4], d[:4] ** 2)
    np.testing.assert_allclose(X[:, 4:8], d[1:5] ** 2)
    np.testing.assert_allclose(X[:, 8:], d[:4] * d[1:5])


def test_design_errors():
    r = _rec(same_batch=False)
    with pytest.raises(ValueError, match="same_batch"):
        r.design(0, target="same_batch")
    with pytest.raises(ValueError, match="target"):
        r.design(0, target="next")
    with pytest.raises(ValueError, match="features"):
        r.design(0, features="cubic")
    assert r.nbytes == r.losses.nbytes * 2 + r.deltas.nbytes
