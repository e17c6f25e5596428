"""Bring your own model and data: a flax Module (instance or class), an (init, apply) pair,
numpy arrays with int64 labels — each gives the same sweep as the model registered by name."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import hgcnet_jax as hg
from hgcnet_jax import models
from hgcnet_jax.models.functional import FunctionalModel


class OwnMLP(nn.Module):
    num_classes: int
    width: int = 16

    @nn.compact
    def __call__(self, x, *, train: bool = False):
        return nn.Dense(self.num_classes)(nn.relu(nn.Dense(self.width)(x.reshape(x.shape[0], -1))))


def _pair():
    module = OwnMLP(num_classes=3)

    def init(key, x):
        return module.init(key, x)["params"]

    def apply(params, x, *, train, key):
        return module.apply({"params": params}, x)

    return init, apply


PAIR = _pair()
if "own_mlp_test" not in models.available():
    models.register("own_mlp_test", kinds=("tabular",))(OwnMLP)
    # the pair, registered by name: the registry builds the same FunctionalModel make_task does
    models.register("own_pair_test", kinds=("tabular",))(lambda num_classes: FunctionalModel(*PAIR))


def _blobs(n=120, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(3, dtype=np.int64), n // 3)           # numpy's default int64
    x = rng.standard_normal((n, 4)) + 2.0 * np.eye(3, 4)[y]        # float64
    return x, y


def _sweep(task):
    runs = hg.grid(batch_size=[8, 32], seed=range(2), lr=0.05, optimizer="sgd")
    return hg.sweep(task, runs, hg.Budget(epochs=2), key=jax.random.key(0), progress=False).runs


@pytest.fixture(scope="module")
def reference():
    x, y = _blobs()
    ds = hg.Dataset.from_arrays(x, y)
    return ds, {"module": _sweep(hg.make_task(ds, "own_mlp_test")), "pair": _sweep(hg.make_task(ds, "own_pair_test"))}


@pytest.mark.parametrize("how", ["instance", "class", "pair", "arrays"])
def test_own_model_sweeps_like_the_registered_one(reference, how):
    ds, refs = reference
    ref = refs["pair" if how == "pair" else "module"]
    x, y = _blobs()
    task = {
        "instance": lambda: hg.make_task(ds, OwnMLP(num_classes=3)),
        "class": lambda: hg.make_task(ds, OwnMLP),
        "pair": lambda: hg.make_task(ds, PAIR),
        "arrays": lambda: hg.make_task((x, y), OwnMLP),
    }[how]()
    assert task.kind == "tabular" and task.num_classes == 3
    got = _sweep(task)
    cols = ["batch_size", "seed", "steps", "train_loss", "test_acc", "val_acc"]
    np.testing.assert_allclose(got[cols].to_numpy(float), ref[cols].to_numpy(float), rtol=1e-6, atol=1e-7)


def test_bad_models_say_what_is_accepted():
    x, y = _blobs()
    with pytest.raises(TypeError, match="flax Module instance or class, or an \\(init, apply\\) pair"):
        hg.make_task((x, y), 42)
    with pytest.raises(TypeError, match="takes no model keywords"):
        hg.make_task((x, y), OwnMLP(num_classes=3), width=4)
    with pytest.raises(KeyError, match="or pass your own flax Module"):
        hg.make_task((x, y), "no_such_model")
