"""causal.identify: a mediator whose measurement error is as large as its spread across arms is not identified.

The own-model sweep of issue #19: 3-class blobs as numpy arrays, a user's flax MLP through
make_task, B in {8, 32, 128}, 4 seeds, 5 epochs.
"""

import warnings

import flax.linen as nn
import jax
import numpy as np
import pandas as pd
import pytest

import hgcnet_jax as hg
from hgcnet_jax import causal


class UserMLP(nn.Module):
    num_classes: int

    @nn.compact
    def __call__(self, x, *, train: bool = False):
        return nn.Dense(self.num_classes)(nn.relu(nn.Dense(8)(x)))


def _blobs(n=240, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(3, dtype=np.int64), n // 3)
    return rng.standard_normal((n, 4)) + 1.5 * np.eye(3, 4)[y], y


COLUMNS = {"B": "batch_size", "N": "noise_grad_norm_sq", "S": "sharp_lambda_max", "C": "complexity_dist_init",
           "G": "test_acc"}


@pytest.fixture(scope="module")
def own_sweep():
    """The issue's sweep, its mediators measured on 6 training examples (few Lanczos steps: fast)."""
    task = hg.make_task(_blobs(), UserMLP)
    runs = hg.grid(batch_size=[8, 32, 128], seed=range(4), lr=0.5, optimizer="sgd")
    res = hg.sweep(task, runs, hg.Budget(epochs=5), key=jax.random.key(0), progress=False)
    return hg.measure(task, res, key=jax.random.key(1), mediators=("noise", "sharpness", "complexity"),
                      num_examples=6, lanczos_steps=8, slq_probes=1, trace_probes=3, noise_probes=1, noise_bootstrap=16)


def test_identification_by_hand():
    g = causal.Hypergraph.paper(COLUMNS)
    t = pd.DataFrame({"run_id": range(6), "batch_size": [8, 8, 32, 32, 128, 128],
                      "noise_grad_norm_sq": [1.0, 3.0, 2.0, 2.0, 2.5, 1.5], "noise_grad_norm_sq_se": [5, 5, 5, 0.1, 5, 5],
                      "sharp_lambda_max": [10.0, 10, 20, 20, 30, 30], "sharp_lambda_max_err": [0.5] * 6,
                      "complexity_dist_init": [1.0, 1, 2, 2, 3, 3], "test_acc": [0.5] * 6})
    ident = causal.identification(g, t).set_index("variable")
    # N: arm means 2, 2, 2 -> spread 0, error 5: not identified, every run with an error >= 0 named
    assert not ident.loc["N", "identified"] and ident.loc["N", "error_column"] == "noise_grad_norm_sq_se"
    assert ident.loc["N", "runs"] == (0, 1, 2, 3, 4, 5) and ident.loc["N", "ratio"] == np.inf
    # S: error 0.5 against a spread of 20: identified; C: no error column, not judged
    assert ident.loc["S", "identified"] and ident.loc["S", "ratio"] == pytest.approx(0.5 / 20)
    assert ident.loc["C", "identified"] and pd.isna(ident.loc["C", "error_column"])
    t2 = t.assign(noise_grad_norm_sq=[1.0, 1, 2, 2, 3, 3], noise_grad_norm_sq_se=[0.1, 0.1, 3.0, 0.1, 0.1, 2.5])
    row = causal.identification(g, t2).set_index("variable").loc["N"]
    # median error 0.1 < spread 2: identified; at max_ratio 0.01 not, naming only the runs whose error >= 2
    assert row["identified"]
    strict = causal.identification(g, t2, max_ratio=0.01).set_index("variable").loc["N"]
    assert not strict["identified"] and strict["runs"] == (2, 5)


def test_own_model_sweep_names_the_mediators_that_are_noise(own_sweep):
    table = own_sweep
    g = causal.Hypergraph.paper(COLUMNS, direct=True)
    ident = causal.identification(g, table).set_index("variable")
    expected = tuple(ident.loc[~ident["identified"], "column"])
    # measured on 6 examples, |G|^2's bootstrap error is several times its spread across B: noise;
    # lambda_max (Lanczos residual) and the distance from init (exact) vary with B well beyond their errors
    assert expected == ("noise_grad_norm_sq",)
    assert ident.loc["N", "ratio"] > 1 and len(ident.loc["N", "runs"]) >= 6
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = causal.fit(g, table, key=jax.random.key(2), method="svi", svi_steps=300, num_samples=200)
    named = [str(w.message) for w in caught if issubclass(w.category, hg.MediatorNotIdentifiedWarning)]
    assert len(named) == len(expected)
    for col in expected:
        assert any(repr(col) in m and "runs whose error exceeds that spread" in m for m in named)
    assert fit.identification is not None and tuple(fit.identification.loc[~fit.identification.identified, "column"]) == expected
    crit = causal.criticize(fit, table, key=jax.random.key(3), num_bootstrap=200, max_permutations=50)
    assert not crit.ok and crit.not_identified == expected
    for col in expected:
        assert any(f"column {col!r}) is not identified" in r for r in crit.reasons)


def test_a_value_outside_the_domain_names_the_runs():
    g = causal.Hypergraph.paper(COLUMNS, transforms={"S": "log"})
    t = pd.DataFrame({"run_id": np.arange(10, 20), "batch_size": [8, 8, 32, 32, 128, 128, 8, 32, 128, 8],
                      "noise_grad_norm_sq": np.arange(10.0), "sharp_lambda_max": [1.0, -2, 3, 4, -5, 6, 7, 8, 9, 10],
                      "complexity_dist_init": np.arange(10.0) + 1, "test_acc": np.linspace(0.3, 0.6, 10)})
    with pytest.raises(causal.DataError, match=r"'sharp_lambda_max'.*outside the domain.*runs: run_id 11, 14"):
        causal.fit(g, t, key=jax.random.key(0), method="svi", svi_steps=10)
