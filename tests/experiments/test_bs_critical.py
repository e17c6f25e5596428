"""bs_critical.py: the fit on planted hyperbolas, steps to a target by hand, the lr choice, the noise scales
with the training set as population, and the --quick run (every run present, resume runs nothing, docs/ untouched)."""

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "experiments"))

import bs_critical as bc  # noqa: E402

B = np.asarray([4, 8, 16, 32, 64, 128, 256, 512], np.float64)


@pytest.mark.parametrize("s_min", [3.0, 200.0, 1234.5])
@pytest.mark.parametrize("b_crit", [0.5, 47.0, 300.0, 5000.0])
def test_fit_recovers_a_planted_hyperbola(s_min, b_crit):
    S = s_min * (1.0 + b_crit / B)
    f = bc.fit_hyperbola(1.0 / B, S)
    assert float(f["s_min"]) == pytest.approx(s_min, rel=1e-9)
    assert float(f["e_min"]) == pytest.approx(s_min * b_crit, rel=1e-9)
    assert float(f["b_crit"]) == pytest.approx(b_crit, rel=1e-8)
    assert float(f["r2_log"]) == pytest.approx(1.0, abs=1e-9)
    assert int(f["n"]) == len(B)
    # the same curve in McCandlish's form: S/S_min - 1 = (E/E_min - 1)^-1 with E = B S
    E = B * S
    np.testing.assert_allclose((S / f["s_min"] - 1) * (E / f["e_min"] - 1), 1.0, rtol=1e-7)


def test_fit_leaves_out_unreached_batch_sizes_and_vectorises():
    S1 = 100.0 * (1 + 40.0 / B)
    S2 = 7.0 * (1 + 900.0 / B)
    S2[[0, 5]] = np.inf                                   # two batch sizes never reached the target
    f = bc.fit_hyperbola(1.0 / B, np.stack([S1, S2]))
    np.testing.assert_allclose(f["b_crit"], [40.0, 900.0], rtol=1e-8)
    np.testing.assert_allclose(f["s_min"], [100.0, 7.0], rtol=1e-9)
    assert f["n"].tolist() == [8, 6]
    one = bc.fit_hyperbola(1.0 / B[:1], S1[:1])         # one point: no fit
    assert np.isnan(one["s_min"]) and np.isnan(one["b_crit"])


def test_fit_minimises_the_relative_residual():
    rng = np.random.default_rng(0)
    S = 150.0 * (1 + 60.0 / B) * np.exp(rng.normal(0, 0.1, B.size))
    f = bc.fit_hyperbola(1.0 / B, S)
    # the same least-squares problem written out: rows (1/S_i, x_i/S_i) @ (a, c) = 1
    (a, c), *_ = np.linalg.lstsq(np.column_stack([1 / S, (1 / B) / S]), np.ones_like(S), rcond=None)
    assert float(f["s_min"]) == pytest.approx(a, rel=1e-9)
    assert float(f["e_min"]) == pytest.approx(c, rel=1e-9)
    fit = a + c / B
    r2 = 1 - np.sum((np.log(S) - np.log(fit)) ** 2) / np.sum((np.log(S) - np.log(S).mean()) ** 2)
    assert float(f["r2_log"]) == pytest.approx(r2, rel=1e-9)
    assert 0.5 < float(f["r2_log"]) < 1.0


def test_fit_without_a_floor_of_steps_has_an_unbounded_b_crit():
    S = 4000.0 / B + np.asarray([-3, 2, -1, 1, -1, 1, -1, 0.5])  # perfect scaling, a little noise
    f = bc.fit_hyperbola(1.0 / B, S)
    if float(f["s_min"]) <= 0:
        assert float(f["b_crit"]) == np.inf
    else:
        assert float(f["b_crit"]) > 10 * B.max()


def test_power_law_recovers_its_exponent():
    p = bc.fit_power_law(B, 50.0 * B**-0.7)
    assert p["alpha"] == pytest.approx(0.7, rel=1e-9)
    assert p["r2_log"] == pytest.approx(1.0, abs=1e-9)


def test_steps_to_target_by_hand():
    traj = pd.DataFrame({
        "run_id": [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2],
        "step": [5, 10, 15, 20] * 3,
        "train_loss": [1.0, 0.6, 0.4, 0.45, np.nan, 0.3, 0.2, 0.5, 0.9, 0.8, 0.7, 0.6],
    }).sample(frac=1.0, random_state=0)                                   # rows in any order
    assert bc.steps_to_target(traj, 0.5).to_dict() == {0: 15.0, 1: 10.0, 2: np.inf}
    assert bc.steps_to_target(traj, 0.4).to_dict() == {0: 15.0, 1: 10.0, 2: np.inf}   # <= counts
    assert bc.steps_to_target(traj, 0.2).to_dict() == {0: np.inf, 1: 15.0, 2: np.inf}
    assert bc.steps_to_target(traj, 0.95).to_dict() == {0: 10.0, 1: 10.0, 2: 5.0}    # NaN never counts


def test_best_steps_takes_the_smallest_median_over_seeds():
    inf = np.inf
    S = np.asarray([
        [[10, 12, 14], [9, 30, 11], [8, inf, inf]],       # medians 12, 11, inf -> lr 1, S 11
        [[5, 5, 5], [6, 4, 5], [7, 7, 7]],                # medians 5, 5, 7: a tie goes to the smaller lr
        [[inf, inf, 3], [inf, 2, inf], [inf, inf, inf]],  # never reached by most seeds
    ])
    best, j = bc.best_steps(S)
    assert best.tolist() == [11.0, 5.0, inf]
    assert j.tolist() == [1, 0, 0]


def test_windows_and_schedules_match_the_sweeps_checkpoints():
    from hgcnet_jax.train import trajectory_steps

    assert bc.lr_window(bc.CORA, 4) == (0.25, 0.3536, 0.5, 0.7071, 1.0)
    assert bc.lr_window(bc.CORA, 512) == (1.0, 1.414, 2.0, 2.828, 4.0)
    for s in bc.FULL.settings + bc.QUICK.settings:
        for b in s.batch_sizes:
            every, total = bc.schedule(s, b)
            cap = s.cap[0] + s.cap[1] / b
            assert total == every * s.evals and abs(total - cap) <= s.evals / 2 + 1e-9
            # the checkpoints the sweep saves are exactly the evaluated steps
            assert trajectory_steps(total, s.evals).tolist() == (every * np.arange(1, s.evals + 1)).tolist()
            lrs = bc.lr_window(s, b)
            assert len(lrs) == s.lr_count and list(lrs) == sorted(lrs)


def test_population_noise_scales_on_a_linear_model():
    """B_simple and B_noise with the n examples as population, against numpy on a least-squares model."""
    import jax
    import jax.numpy as jnp

    from hgcnet_jax.mediators import gradient_noise

    rng = np.random.default_rng(1)
    n, d = 5, 3
    X = rng.normal(size=(n, d)).astype(np.float32)
    y = rng.normal(size=n).astype(np.float32)
    w = rng.normal(size=d).astype(np.float32)

    def per_example(p, idx):
        return 0.5 * (jnp.take(jnp.asarray(X), idx, axis=0) @ p - jnp.take(jnp.asarray(y), idx)) ** 2

    gn = jax.jit(lambda k: gradient_noise(per_example, jnp.asarray(w), jnp.arange(n), hessian=True,
                                          num_probes=2000, key=k))(jax.random.key(0))
    got = bc.population_noise(gn, n)
    Xd, yd, wd = X.astype(np.float64), y.astype(np.float64), w.astype(np.float64)
    g = (Xd @ wd - yd)[:, None] * Xd                      # per-example gradients
    G = g.mean(0)
    dev = g - G
    sigma = dev.T @ dev / n                               # covariance over the population of n examples
    H = Xd.T @ Xd / n                                     # Hessian of the mean loss
    assert got["b_simple"] == pytest.approx(np.trace(sigma) / (G @ G), rel=1e-4)
    assert got["b_noise"] == pytest.approx(np.trace(H @ sigma) / (G @ H @ G), rel=0.1)   # 2000 probes: ~2 %
    # the library's sample-based value differs (by (n-1)/n and the -tr(HΣ)/n correction): not this one
    assert abs(float(gn.b_simple) - np.trace(sigma) / (G @ G)) > 0.1 * np.trace(sigma) / (G @ G)


def test_ratio_verdict():
    assert bc.ratio_verdict(1.2, 0.7, 1.9).startswith("agrees")
    assert bc.ratio_verdict(0.2, 0.1, 0.4).startswith("disagrees")
    assert bc.ratio_verdict(5.0, 2.5, np.inf).startswith("disagrees")
    assert bc.ratio_verdict(1.5, 0.8, 3.0).startswith("within")
    assert bc.ratio_verdict(3.0, 1.5, 6.0).startswith("beyond")
    assert bc.ratio_verdict(np.nan, np.nan, np.nan) == "undefined"
    assert bc._quantiles(np.asarray([1.0, 2.0, np.inf, np.inf]), (0.25, 0.75)) == (1.0, np.inf)


def test_a_state_with_another_plan_is_refused(tmp_path):
    bc.Experiment(bc.QUICK, tmp_path, print)
    with pytest.raises(SystemExit, match="pass --overwrite or use --out"):
        bc.Experiment(dataclasses.replace(bc.QUICK, seeds=2), tmp_path, print)


@pytest.mark.slow
def test_bs_critical_quick_runs_every_cell(tmp_path, capsys, monkeypatch):
    docs = (REPO / "docs" / "results.md").read_bytes()
    fig_dir_existed = bc.FIG_DIR.exists()
    assert bc.main(["--quick", "--out", str(tmp_path)]) == 0
    md = capsys.readouterr().out
    plan = bc.QUICK
    st = json.loads((tmp_path / "state.json").read_text())
    assert sorted(st["cells"]) == sorted(f"{s.name}-B{b}" for s in plan.settings for b in s.batch_sizes)
    for s in plan.settings:
        for b in s.batch_sizes:
            name = f"{s.name}-B{b}"
            runs = pd.read_csv(tmp_path / f"{name}.runs.csv")
            traj = pd.read_csv(tmp_path / f"{name}.traj.csv")
            noise = pd.read_csv(tmp_path / f"{name}.noise.csv")
            lrs = bc.lr_window(s, b)
            # every (lr, seed) run present once, none dropped
            assert sorted(zip(runs.lr, runs.seed)) == sorted((lr, sd) for lr in lrs for sd in range(plan.seeds))
            every, total = bc.schedule(s, b)
            assert (runs.steps == total).all() and (runs.eval_every == every).all()
            assert (traj.groupby("run_id").step.apply(list) == [list(every * np.arange(1, s.evals + 1))]
                    * len(runs)).all()
            # the noise points sit at the best-lr runs' first evaluation at or below each target
            assert st["cells"][name]["noise_points"] == len(noise)
            for target in s.targets:
                S = bc.steps_to_target(traj, target)
                t = runs.set_index("run_id").assign(S=S)
                arr = np.stack([[t[(t.lr == lr) & (t.seed == sd)].S.iloc[0] for sd in range(plan.seeds)] for lr in lrs])
                best, j = bc.best_steps(arr[None])
                pts = noise[noise.target == target]
                if not np.isfinite(best[0]):
                    assert len(pts) == 0
                    continue
                reached = t[(t.lr == lrs[int(j[0])]) & np.isfinite(t.S)]
                assert len(pts) == min(plan.noise_seeds, len(reached))
                assert (pts.lr == lrs[int(j[0])]).all()
                for _, p in pts.iterrows():
                    assert p.step == t.loc[p.run_id, "S"] and p.train_loss <= target
                    assert p.b_simple > 0
    assert "| GCN / CSBM" in md and "Verdict" in md and "B_crit" in md
    assert (REPO / "docs" / "results.md").read_bytes() == docs
    assert bc.FIG_DIR.exists() == fig_dir_existed
    # the figure, drawn into a scratch folder from the quick state
    monkeypatch.setattr(bc, "FIG_DIR", tmp_path / "fig")
    bc._plots(plan, bc.analyse(plan, tmp_path))
    assert (tmp_path / "fig" / "tradeoff.png").stat().st_size > 1000
    # resuming runs nothing again
    def no_cell(*a, **k):
        raise AssertionError("a finished cell was run again")

    monkeypatch.setattr(bc.Experiment, "cell", no_cell)
    assert bc.main(["--quick", "--out", str(tmp_path)]) == 0
    assert json.loads((tmp_path / "state.json").read_text())["cells"] == st["cells"]
    assert bc.main(["--quick", "--out", str(tmp_path), "--report-only"]) == 0
    assert (REPO / "docs" / "results.md").read_bytes() == docs
