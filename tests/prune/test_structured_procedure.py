"""Structured Granger pruning and momentum features end to end through ``run_pruning``.

A planted layer of U output units: only units 0 and 1 feed the loss; the others receive
zero-valued "ghost" terms whose gradients are noise (so they move under SGD without
changing the loss) and start with larger weights.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hgcnet_jax.prune.procedure import PruneConfig, run_pruning

D, U, REL = 4, 8, 2          # inputs, output units, relevant units
P = D * U


class PlantedUnits:
    def __init__(self, n=1000, seed=0):
        rng = np.random.default_rng(seed)
        self.x = jnp.asarray(rng.standard_normal((n, D)), jnp.float32)
        self.y = self.x @ jnp.asarray(rng.standard_normal(D), jnp.float32)
        self.splits = {"train": jnp.arange(n), "test": jnp.arange(n)}

    def init(self, key):
        k1, k2 = jax.random.split(key)
        rel = 0.1 * jax.random.normal(k1, (D, REL))
        irr = 2.0 + jnp.abs(jax.random.normal(k2, (D, U - REL)))
        return {"lin": {"kernel": jnp.concatenate([rel, irr], axis=1), "bias": jnp.zeros((U,))}}

    def loss(self, params, idx, *, key=None, train=False):
        K = params["lin"]["kernel"]
        x = jnp.take(self.x, idx, axis=0)
        r = (x @ K[:, :REL]).sum(-1) - jnp.take(self.y, idx)
        base = 0.5 * jnp.mean(r * r)
        if key is None:
            return base
        ghost = jnp.sum(jax.random.normal(key, (D, U - REL)) * K[:, REL:])
        return base + (ghost - jax.lax.stop_gradient(ghost))

    def accuracy(self, params, idx):
        return jnp.exp(-self.loss(params, idx))


CFG = dict(seeds=(0, 1), batch_size=16, pretrain_steps=10, prune_steps=60, final_steps=5, levels=(0.5, 0.75),
           curvature_levels=(), curvature_examples=32, lanczos_steps=4, chunk_steps=16, lasso_tol=1e-6)


def _units(keep):
    """(S, P) keep flags → (S, D, U) by kernel position."""
    return keep.reshape(keep.shape[0], D, U)


@pytest.mark.slow
@pytest.mark.parametrize("features", ["sq", "momentum"])
def test_structured_removes_whole_channels_and_keeps_the_planted_ones(features):
    res = run_pruning(PlantedUnits(), PruneConfig(**CFG, features=features), key=jax.random.key(0),
                      methods=("granger_structured", "granger"))
    t = res.table
    for lv, target in enumerate((0.5, 0.75)):
        k = _units(res.masks["granger_structured"][lv])
        # whole channels: every output unit is kept or removed as a block
        assert np.all(k.all(axis=1) | ~k.any(axis=1))
        np.testing.assert_array_equal(k.any(axis=1).sum(axis=1), round((1 - target) * U))
        # the relevant units survive at every level
        assert k[:, :, :REL].all()
        sp = t[(t.method == "granger_structured") & (t.level == lv)].sparsity.to_numpy()
        np.testing.assert_allclose(sp, target)
    # unstructured Granger with the same features also runs end to end and keeps the planted weights
    g = _units(res.masks["granger"][1])
    assert g[:, :, :REL].mean() >= 0.9
    assert np.all(np.isfinite(t.test_acc))
    # Every Lasso fit met its tolerance or stopped at float32's rounding floor; none ran
    # out of iterations. (Which of the two a fit near the floor ends on is a matter of
    # the last bit, so the test does not ask: lasso_status says it.)
    fitted = t[t.method != "dense"]
    assert fitted.lasso_status.isin(["converged", "precision"]).all(), fitted[["method", "seed", "level", "lasso_status"]]
    assert (fitted.lasso_converged == (fitted.lasso_status == "converged")).all()


@pytest.mark.slow
@pytest.mark.parametrize("method", ["granger", "granger_structured"])
def test_streamed_and_full_recording_prune_the_same(method):
    """``recording="stream"`` (Gram statistics) and ``"full"`` (the design) give the same masks."""
    kw = dict(CFG, features="momentum", levels=(0.75,), solver="cd")
    a = run_pruning(PlantedUnits(), PruneConfig(**kw, recording="stream"), key=jax.random.key(1), methods=(method,))
    b = run_pruning(PlantedUnits(), PruneConfig(**kw, recording="full"), key=jax.random.key(1), methods=(method,))
    np.testing.assert_array_equal(a.masks[method][0], b.masks[method][0])


def test_structured_protect_and_config_errors():
    with pytest.raises(ValueError, match="PruneConfig.recording"):
        PruneConfig(**CFG, recording="ram")
    with pytest.raises(ValueError, match="structured_protect"):
        run_pruning(PlantedUnits(), PruneConfig(**{**CFG, "levels": (0.5,)}, structured_protect=("nope",)),
                    key=jax.random.key(0), methods=("granger_structured",))


def test_cli_accepts_structured_and_momentum(capsys):
    from hgcnet_jax.prune.cli import build_parser, main

    args = build_parser().parse_args(["--method", "granger_structured", "--features", "momentum", "--spill"])
    assert args.method == "granger_structured" and args.features == "momentum" and args.spill
    with pytest.raises(SystemExit):
        main(["--features", "cubic", "--no-progress"])
    assert "--features" in capsys.readouterr().err
