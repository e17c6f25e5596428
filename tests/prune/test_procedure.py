"""The iterative procedure end to end on the planted task: budgets, masks, resume, CLI errors."""

import json

import jax
import numpy as np
import pytest

from hgcnet_jax.prune.procedure import PruneConfig, run_pruning

from .test_planted import P, R, PlantedTask

CFG = dict(seeds=(0, 1), batch_size=16, pretrain_steps=10, prune_steps=40, final_steps=10, levels=(0.5, 0.8),
           curvature_levels=(0.8,), curvature_examples=64, lanczos_steps=6, chunk_steps=41, lasso_tol=1e-5)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("prune")
    res = run_pruning(PlantedTask(), PruneConfig(**CFG), key=jax.random.key(0), out_dir=out)
    return out, res


@pytest.mark.slow
def test_budgets_and_methods(run):
    _, res = run
    t = res.table
    assert set(t.method) == {"dense", "granger", "magnitude", "random"}
    assert len(t) == 2 * (1 + 3 * 2)
    for m in ("granger", "magnitude", "random"):
        for lv, target in enumerate((0.5, 0.8)):
            sp = t[(t.method == m) & (t.level == lv)].sparsity.to_numpy()
            np.testing.assert_allclose(sp, target, atol=1.0 / P)
        # masks are nested: an iteration never revives a pruned weight
        a, b = res.masks[m]
        assert np.all(b <= a)
    dense = t[t.method == "dense"]
    assert np.all(np.isfinite(dense.lambda_max)) and np.all(dense.lambda_max > 0)
    assert np.all(np.isfinite(t[(t.level == 1)].lambda_max))


@pytest.mark.slow
def test_granger_keeps_planted_weights_in_procedure(run):
    """At 80 % sparsity (8 of 40 kept) Granger keeps the relevant weights; magnitude keeps none."""
    _, res = run
    g = res.masks["granger"][1]
    m = res.masks["magnitude"][1]
    assert g[:, :R].mean() >= 0.9
    assert m[:, :R].mean() == 0.0


@pytest.mark.slow
def test_resume_reads_back_and_refuses_other_config(run):
    out, res = run
    state = json.loads((out / "state.json").read_text())
    assert "granger:1" in state["done"]
    again = run_pruning(PlantedTask(), PruneConfig(**CFG), key=jax.random.key(0), out_dir=out)
    cols = sorted(res.table.columns)
    assert again.table[cols].equals(res.table[cols])
    with pytest.raises(ValueError, match="another configuration"):
        run_pruning(PlantedTask(), PruneConfig(**{**CFG, "final_steps": 11}), key=jax.random.key(0), out_dir=out)


@pytest.mark.parametrize(
    "field, value, match",
    [("levels", (0.8, 0.5), "levels"), ("seeds", (), "seeds"), ("granger_mode", "top", "granger_mode"),
     ("batch_size", 0, "batch_size"), ("target", "next", "target")],
)
def test_config_errors_name_the_field(field, value, match):
    with pytest.raises(ValueError, match=f"PruneConfig.{match}"):
        PruneConfig(**{**CFG, field: value})


def test_cli_rejects_bad_method(capsys):
    from hgcnet_jax.prune.cli import main

    assert main(["--method", "lottery", "--no-progress"]) == 2
    assert "--method" in capsys.readouterr().err
