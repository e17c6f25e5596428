"""Granger-causal pruning given a fair chance: LeNet-5 / Fashion-MNIST, a trained network, ≥ 1000 rows, an oracle.

    nice -n 10 python experiments/prune_granger_fair.py            # the full grid (resumes)
    python experiments/prune_granger_fair.py --quick --out DIR     # a tiny smoke run (the tests run it)
    python experiments/prune_granger_fair.py --report-only         # rewrite the section from the state

The grid (issue #17): pre-training on the full training images (less a validation split) to
≥ 89 % test accuracy; iterative pruning over a sparsity grid from 10 % to 98 % with the
weights reset to the pre-trained checkpoint after every new mask; for every (method, level)
a final training to convergence with early stopping on the validation split, the test
accuracy, and λ_max of the training loss with its Lanczos residual; every seed at once
(vmapped). Methods: the authors' Granger recipe (per layer, consecutive-step target, raw
Δθ², exact zeros pruned) and its variants (standardised, the tie-break ranking to a budget,
momentum features, whole units), magnitude pruning (global and per layer) and random.
Before the first mask, an oracle of importance (the loss increase when a weight, or a unit,
is removed) is measured on a sample and every method's scores are rank-correlated with it.

Resumable phase by phase: the state (``state.json``, the checkpoints and the masks) lives in
``experiments/state/prune_granger_fair/`` and is committed, so a later session continues
where this one stopped. The ``prune_granger_fair`` section of ``docs/results.md`` and its
plots are written from the state after every phase, so a partial grid is reported as partial.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "experiments"))
sys.path.insert(0, str(REPO))

NAME = "prune_granger_fair"
STATE_DIR = REPO / "experiments" / "state" / NAME
FIG_DIR = REPO / "docs" / "results" / NAME

#: name -> how the method scores the alive weights (all Granger fits are per layer, consecutive target)
METHODS = {
    "magnitude_global": dict(kind="magnitude", scope="global"),
    "granger_rank": dict(kind="granger", mode="rank", standardize=False, features="sq"),
    "granger_std_rank": dict(kind="granger", mode="rank", standardize=True, features="sq"),
    "random": dict(kind="random"),
    "magnitude_layer": dict(kind="magnitude", scope="layer"),
    "granger_exact": dict(kind="granger", mode="exact", standardize=False, features="sq"),
    "granger_std_exact": dict(kind="granger", mode="exact", standardize=True, features="sq"),
    "granger_momentum": dict(kind="granger", mode="rank", standardize=False, features="momentum"),
    "granger_structured": dict(kind="structured", standardize=False, features="sq"),
}
LABELS = {
    "granger_exact": "Granger, the authors' recipe (raw Δθ², exact zeros)",
    "granger_std_exact": "Granger, standardised columns, exact zeros",
    "granger_rank": "Granger, raw Δθ², tie-break ranking to the budget",
    "granger_std_rank": "Granger, standardised, tie-break ranking to the budget",
    "granger_momentum": "Granger, momentum features, ranking to the budget",
    "granger_structured": "Granger, whole units (group Lasso), ranking to the budget",
    "magnitude_global": "magnitude, global",
    "magnitude_layer": "magnitude, per layer",
    "random": "random",
}
#: the budgeted Granger variants, among which the best (by validation accuracy) meets global magnitude
BUDGETED_GRANGER = ("granger_rank", "granger_std_rank", "granger_momentum")

CLAIM = (
    "**The authors' claim** (arXiv 2412.03035; `FACTS.md`): causal pruning reaches higher accuracy than "
    "magnitude pruning at equal sparsity, shows a sharper phase shift, and ends in flatter minima (a "
    "co-author's later ResNet20 / CIFAR10 table: causal 92.11 / 91.27 / 86.16 / 83.68 / 78.74 % against "
    "magnitude 91.52 / 90.42 / 88.14 / 86.67 / – at 10 / 50 / 90 / 95 / 98 % sparsity, i.e. causal wins up "
    "to about 70 % and loses from 90 %; top Hessian eigenvalue of ResNet18 / CIFAR10 at 90 %: causal 533.6, "
    "magnitude 1584.6, unpruned 380.1). No LeNet-5 / Fashion-MNIST figure of the paper could be read."
)


@dataclass(frozen=True)
class Plan:
    """The experiment's budget (the fingerprint of its state folder)."""

    seeds: tuple = (0, 1, 2, 3, 4)
    model: str = "lenet5"                # the quick run uses a small MLP (compiles in seconds)
    subset: tuple | None = None          # (train, val, test) image counts for the quick run; None: all
    n_val: int = 5000                    # validation images held out of the 60,000 training images
    batch_size: int = 64
    pretrain_epochs: int = 10
    pretrain_lr: float = 1e-3            # Adam
    record_steps: int = 1008             # plain-SGD steps per pruning iteration (≥ 1000 regression rows)
    prune_lr: float = 1e-3
    final_lr: float = 5e-4               # Adam, the authors' final training
    final_eval_every: int = 250
    final_patience: int = 3
    final_max_epochs: int = 3
    levels: tuple = (0.1, 0.3, 0.5, 0.7, 0.9, 0.95, 0.98)
    alpha_rank: float = 0.05             # relative to α_max
    alpha_exact: float = 0.01
    lasso_tol: float = 1e-4
    oracle_per_layer: int = 200
    oracle_examples: int = 512
    curvature_examples: int = 512
    lanczos_steps: int = 24
    slq_probes: int = 2
    methods: tuple = tuple(METHODS)

    def to_dict(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self)))


FULL = Plan()
QUICK = Plan(seeds=(0, 1), model="mlp", subset=(384, 128, 128), n_val=128, batch_size=32, pretrain_epochs=1,
             pretrain_lr=5e-4, record_steps=24,
             final_eval_every=4, final_patience=1, final_max_epochs=1, levels=(0.5, 0.9), oracle_per_layer=8,
             oracle_examples=64, curvature_examples=64, lanczos_steps=4, slq_probes=1,
             # the three kinds of score (magnitude, the batched Granger fits in both modes, the structured
             # fit); random and the momentum/standardised variants differ from these in options only
             methods=("magnitude_global", "granger_rank", "granger_exact", "granger_structured"))


#: steps per host round-trip of the recording (Trainer.record rounds steps + 1 up to whole chunks)
RECORD_CHUNK = 8


def regression_rows(plan: Plan) -> int:
    """Rows of each Granger regression (consecutive target, Δθ² features; the momentum features keep one fewer)."""
    from hgcnet_jax.prune.record import n_rows

    recorded = -(-(plan.record_steps + 1) // RECORD_CHUNK) * RECORD_CHUNK
    return n_rows(recorded, target="consecutive", features="sq")


# ----------------------------------------------------------------------------- state
class State:
    """``state.json`` (config, finished phases, rows, oracle, timings) plus the arrays beside it."""

    def __init__(self, folder: Path, plan: Plan, overwrite: bool):
        from hgcnet_jax import _io

        self.folder, self.plan = folder, plan
        _io.ensure_writable_dir(folder, what="experiment state folder")
        path = folder / "state.json"
        fresh = {"config": plan.to_dict(), "done": [], "rows": [], "pretrain": [], "oracle": {},
                 "spectra": {}, "seconds": {}}
        if path.exists() and not overwrite:
            old = json.loads(path.read_text())
            if old["config"] != fresh["config"]:
                raise SystemExit(f"{path} holds a run with another plan; pass --overwrite to start afresh "
                                 f"or --out for another folder")
            self.d = old
        else:
            for f in folder.glob("*.npz"):
                f.unlink()
            self.d = fresh
            self.save()

    def save(self) -> None:
        from hgcnet_jax import _io

        _io.write_json(self.folder / "state.json", self.d)

    def done(self, phase: str) -> bool:
        return phase in self.d["done"]

    def finish(self, phase: str, seconds: float) -> None:
        self.d["done"].append(phase)
        self.d["seconds"][phase] = round(float(seconds), 1)
        self.save()

    def save_arrays(self, name: str, **arrays) -> None:
        from hgcnet_jax import _io

        with _io.atomic_write(self.folder / f"{name}.npz") as f:
            np.savez_compressed(f, **arrays)

    def load_arrays(self, name: str) -> dict:
        with np.load(self.folder / f"{name}.npz", allow_pickle=False) as z:
            return {k: z[k] for k in z.files}

    def save_mask(self, method: str, level: int, keep: np.ndarray) -> None:
        self.save_arrays(f"mask_{method}_{level}", bits=np.packbits(keep, axis=1), n=np.asarray(keep.shape[1]))

    def load_mask(self, method: str, level: int) -> np.ndarray:
        a = self.load_arrays(f"mask_{method}_{level}")
        return np.unpackbits(a["bits"], axis=1, count=int(a["n"])).astype(bool)


# ----------------------------------------------------------------------------- the experiment
class Experiment:
    def __init__(self, plan: Plan, state: State, say, report=None):
        import jax

        from hgcnet_jax.data import load
        from hgcnet_jax.prune.procedure import PruneConfig, _net, _protected_layers
        from hgcnet_jax.prune.record import Trainer
        from hgcnet_jax.train import make_task
        from _common import data_root

        self.plan, self.state, self.say = plan, state, say
        self.report = report or (lambda: None)
        ds = load("fashion_mnist", root=data_root())
        rng = np.random.default_rng(0)
        train = rng.permutation(np.asarray(ds.splits["train"]))
        test = np.asarray(ds.splits["test"])
        if plan.subset is not None:
            n_tr, n_va, n_te = plan.subset
            train, test = train[: n_tr + n_va], np.sort(rng.permutation(test)[:n_te])
        val = np.sort(train[-plan.n_val:])
        train = np.sort(train[: -plan.n_val])
        self.ds = dataclasses.replace(ds, splits={"train": train.astype(np.int32), "val": val.astype(np.int32),
                                                  "test": test.astype(np.int32)})
        self.task = make_task(self.ds, plan.model, eval_batch_size=1000)
        self.key = jax.random.key(17)
        seed_keys = jax.numpy.stack([jax.random.fold_in(self.key, int(s)) for s in plan.seeds])
        self.net = _net(self.task, seed_keys)
        self.trainer = Trainer(self.task, self.net.which, plan.batch_size)
        # the layers whose units the structured fit never removes: the classifier (PruneConfig's default rule)
        self.protect = _protected_layers(self.task, PruneConfig(), self.net)
        self.steps_per_epoch = len(train) // plan.batch_size
        self.S = len(plan.seeds)
        sample = np.random.default_rng(1)
        self.oracle_idx = np.sort(sample.choice(train, plan.oracle_examples, replace=False)).astype(np.int32)
        self.curv_idx = np.sort(sample.choice(train, plan.curvature_examples, replace=False)).astype(np.int32)
        self._rec_cache: dict = {}
        self._curv = None

    # -- phases ---------------------------------------------------------------------------
    def run(self) -> None:
        p, st = self.plan, self.state
        for e in range(p.pretrain_epochs):
            if not st.done(f"pretrain:{e}"):
                self.pretrain_epoch(e)
        self.theta0 = self.net.from_np(st.load_arrays("theta0"))
        if not st.done("dense"):
            self.final("dense", -1, None, {})
        if not st.done("oracle"):
            self.oracle()
        for i in range(len(p.levels)):
            for m in p.methods:
                if not st.done(f"{m}:{i}"):
                    self.level(m, i)
                    self.report()

    def pretrain_epoch(self, e: int) -> None:
        import jax

        t0 = time.perf_counter()
        net, tr, st, p = self.net, self.trainer, self.state, self.plan
        spec = ("adam", p.pretrain_lr)
        if e == 0:
            params = net.params0
            opt_state = tr.init_opt(spec, params, net.ones)
        else:
            a = st.load_arrays("pretrain_ckpt")
            params = net.from_np({k[2:]: v for k, v in a.items() if k.startswith("p_")})
            like = tr.init_opt(spec, params, net.ones)
            leaves, treedef = jax.tree.flatten(like)
            opt_state = jax.tree.unflatten(treedef, [jax.numpy.asarray(a[f"o_{i}"]) for i in range(len(leaves))])
        params, opt_state, losses = tr.resume(params, opt_state, net.ones, key=jax.random.fold_in(self.key, 101 + e),
                                              steps=self.steps_per_epoch, opt=spec, chunk_steps=min(50, self.steps_per_epoch))
        val = tr.accuracy(params, net.ones, self.ds.splits["val"])
        test = tr.accuracy(params, net.ones, self.ds.splits["test"])
        arrays = {f"p_{k}": v for k, v in net.to_np(params).items()}
        arrays.update({f"o_{i}": np.asarray(x) for i, x in enumerate(jax.tree.leaves(opt_state))})
        st.save_arrays("pretrain_ckpt", **arrays)
        st.save_arrays("theta0", **net.to_np(params))
        st.d["pretrain"].append({"epoch": e + 1, "train_loss": float(np.mean(losses[:, -50:])),
                                 "val_acc": val.tolist(), "test_acc": test.tolist()})
        st.finish(f"pretrain:{e}", time.perf_counter() - t0)
        if e == p.pretrain_epochs - 1:          # θ0 is final: the optimiser state is not needed again
            (st.folder / "pretrain_ckpt.npz").unlink(missing_ok=True)
        self.say(f"pre-training epoch {e + 1}/{p.pretrain_epochs}: val {val.mean():.4f}, test {test.mean():.4f} "
                 f"({time.perf_counter() - t0:.0f}s)")

    def recording(self, level: int, keep: np.ndarray):
        """The plain-SGD recording from θ0 ⊙ mask (the same key for every method at a level)."""
        import jax

        k = (level, hash(np.packbits(keep).tobytes()))
        if k not in self._rec_cache:
            self._rec_cache.clear()
            _, rec = self.trainer.record(self.theta0, self.net.mask(keep), key=jax.random.fold_in(self.key, 5000 + level),
                                         steps=self.plan.record_steps, lr=self.plan.prune_lr, chunk_steps=RECORD_CHUNK)
            self._rec_cache[k] = rec
        return self._rec_cache[k]

    def stats(self, rec, features: str):
        from hgcnet_jax.prune.record import GrangerStats

        return GrangerStats.from_recording(rec, self.net.slices, target="consecutive", features=features)

    def score(self, method: str, level: int, keep: np.ndarray, target: float, unit_scores=None):
        """New keep flags (S, P), the Lasso certificates, and the per-layer rank scores (for the oracle).

        ``unit_scores``: a list of one dict per seed, filled with the structured fit's unit ranks.
        """
        import jax

        from hgcnet_jax.prune.granger import granger_keep_stats_batch, magnitude_keep, random_keep, rank_key
        from hgcnet_jax.prune.masks import apply_mask
        from hgcnet_jax.prune.procedure import _certificates, _flat
        from hgcnet_jax.prune.structured import structured_granger_keep_stats

        spec, p, net = METHODS[method], self.plan, self.net
        S = self.S
        scores = None
        if spec["kind"] == "magnitude":
            w = _flat(jax.vmap(apply_mask)(self.theta0, net.mask(keep)), net.which)
            new = np.stack([magnitude_keep(w[s], keep[s], net.slices, target_sparsity=target, scope=spec["scope"])
                            for s in range(S)])
            return new, {}, np.abs(w)
        if spec["kind"] == "random":
            rk = jax.random.fold_in(self.key, 7000 + level)
            new = np.stack([random_keep(keep[s], net.slices, target_sparsity=target, key=jax.random.fold_in(rk, s))
                            for s in range(S)])
            return new, {}, None
        rec = self.recording(level, keep)
        stats = self.stats(rec, spec["features"])
        expected = regression_rows(p) - (spec["features"] == "momentum")
        if stats.n != expected:             # the report states regression_rows(plan): keep it true
            raise RuntimeError(f"{method}: {stats.n} regression rows, the report says {expected}")
        new, fits = [], []
        if spec["kind"] == "structured":
            for s in range(S):
                k, f = structured_granger_keep_stats(stats, s, keep[s], net.shapes, target_sparsity=target,
                                                     alpha=p.alpha_rank, standardize=spec["standardize"],
                                                     tol=p.lasso_tol, warn=False, protect=self.protect,
                                                     unit_scores=None if unit_scores is None else unit_scores[s])
                new.append(k)
                fits.append(f)
            return np.stack(new), _certificates(fits), None
        alpha = p.alpha_exact if spec["mode"] == "exact" else p.alpha_rank
        scores = np.zeros((S, net.num_prunable))
        # every seed's fit of a layer as one batch (lasso_batch), each with its own certificate
        new, fits = granger_keep_stats_batch(stats, keep, mode=spec["mode"], target_sparsity=target, alpha=alpha,
                                             standardize=spec["standardize"], tol=p.lasso_tol, warn=False)
        for s in range(S):
            alive_groups = [sl for sl in stats.groups.values() if keep[s][sl].any()]
            for sl, fit in zip(alive_groups, fits[s]):
                scores[s, sl] = rank_key(fit.coef, fit.corr) / max(1, sl.stop - sl.start - 1)
        return new, _certificates(fits), scores

    def oracle(self) -> None:
        """The loss increase of removing each sampled weight / each unit of the dense θ0, and every method's agreement."""
        import jax

        from hgcnet_jax.prune.masks import flatten_prunable
        from hgcnet_jax.prune.oracle import rank_agreement, removal_oracle, sample_weights, unit_removal_oracle

        t0 = time.perf_counter()
        p, net, S = self.plan, self.net, self.S
        idx = jax.numpy.asarray(self.oracle_idx)
        loss = lambda q: self.task.loss(q, idx)                                          # noqa: E731
        sample = sample_weights(net.slices, p.oracle_per_layer, key=jax.random.fold_in(self.key, 9000))
        flat_idx = np.concatenate(list(sample.values()))
        ones = np.ones((S, net.num_prunable), bool)
        # scores of every method on the dense network (what its first mask is cut from)
        scores = {m: self.score(m, 0, ones, p.levels[0])[2] for m in p.methods
                  if METHODS[m]["kind"] in ("magnitude", "granger")}
        rec = self.recording(0, ones)
        g2 = np.mean(np.square(rec.deltas, dtype=np.float64), axis=1)                    # (S, P): mean g²
        w0 = np.abs(np.asarray(jax.vmap(lambda q: jax.numpy.concatenate(flatten_prunable(q, net.which)))(self.theta0)))
        scores["ref: mean g² (gradient energy)"] = g2
        scores["ref: θ²·mean g² (Fisher / OBD saliency)"] = w0 ** 2 * g2
        unit_layers = [n for n in net.slices if n not in self.protect]
        out = {"weights": {}, "units": {}, "per_layer": p.oracle_per_layer, "examples": p.oracle_examples}
        deltas = removal_oracle(loss, self.theta0, net.which, flat_idx)
        unit_deltas = unit_removal_oracle(loss, self.theta0, net.which, net.slices, net.shapes, layers=unit_layers)
        for name, sc in scores.items():
            per = {}
            for layer, ix in sample.items():
                pos = np.flatnonzero(np.isin(flat_idx, ix))
                per[layer] = [rank_agreement(sc[s][ix], deltas[s][pos]) for s in range(S)]
            out["weights"][name] = per
        for layer in unit_layers:
            sl, shape = net.slices[layer], net.shapes[layer]
            norms = [np.sqrt(np.sum(w0[s, sl].reshape(-1, shape[-1]) ** 2, axis=0)) for s in range(S)]
            out["units"][layer] = {
                "magnitude (unit L2 norm)": [rank_agreement(norms[s], unit_deltas[layer][s]) for s in range(S)],
                "mean increase": [float(np.mean(unit_deltas[layer][s])) for s in range(S)],
            }
        if "granger_structured" in p.methods:
            per_seed = [{} for _ in range(S)]
            self.score("granger_structured", 0, ones, p.levels[0], unit_scores=per_seed)
            for layer in unit_layers:
                out["units"][layer]["granger_structured"] = [
                    rank_agreement(per_seed[s][layer], unit_deltas[layer][s]) if layer in per_seed[s] else float("nan")
                    for s in range(S)]
        out["mean_weight_increase"] = float(np.mean(deltas))
        out["frac_harmless"] = float(np.mean(deltas <= 0))
        self.state.save_arrays("oracle", indices=flat_idx, deltas=deltas)
        self.state.d["oracle"] = out
        self.state.finish("oracle", time.perf_counter() - t0)
        self.say(f"oracle on {flat_idx.size} weights × {S} seeds in {time.perf_counter() - t0:.0f}s")

    def level(self, method: str, i: int) -> None:
        t0 = time.perf_counter()
        st = self.state
        keep = np.ones((self.S, self.net.num_prunable), bool) if i == 0 else st.load_mask(method, i - 1)
        target = self.plan.levels[i]
        new, cert, _ = self.score(method, i, keep, target)
        st.save_mask(method, i, new)
        self.final(method, i, new, cert, t0=t0)
        self.say(f"{method} level {i + 1}/{len(self.plan.levels)}: sparsity {1 - new.mean():.3f} "
                 f"({time.perf_counter() - t0:.0f}s)")

    def curvature(self, params, mask):
        import jax

        from hgcnet_jax.curvature import spectral_density, top_eigenvalues
        from hgcnet_jax.prune.masks import apply_mask

        if self._curv is None:
            idx = jax.numpy.asarray(self.curv_idx)
            p = self.plan

            def lam(q, m, k):
                e = top_eigenvalues(lambda r: self.task.loss(apply_mask(r, m), idx), q, 1, key=k, num_steps=p.lanczos_steps)
                return e.eigenvalues[0], e.residuals[0]

            def dens(q, m, k):
                sd = spectral_density(lambda r: self.task.loss(apply_mask(r, m), idx), q, key=k, num_probes=p.slq_probes,
                                      num_steps=p.lanczos_steps, grid_size=128)
                return sd.grid, sd.density, jax.numpy.max(sd.residuals)

            self._curv = (jax.jit(jax.vmap(lam)), jax.jit(dens))
        lam_fn, dens_fn = self._curv
        k = jax.random.fold_in(self.key, 8000)
        lams, res = lam_fn(params, mask, jax.random.split(k, self.S))
        grid, density, dres = dens_fn(jax.tree.map(lambda x: x[0], params), jax.tree.map(lambda x: x[0], mask),
                                      jax.random.fold_in(k, 1))
        return np.asarray(lams), np.asarray(res), {"grid": np.asarray(grid).round(5).tolist(),
                                                   "density": np.asarray(density).tolist(), "max_residual": float(dres)}

    def final(self, method: str, i: int, keep, cert: dict, t0: float | None = None) -> None:
        """Early-stopped final training from θ0 ⊙ mask, test accuracy, λ_max: the table's rows."""
        import jax

        t0 = time.perf_counter() if t0 is None else t0
        p, net, st, S = self.plan, self.net, self.state, self.S
        mask = net.mask(keep)
        fin = self.trainer.train_early_stopping(
            self.theta0, mask, key=jax.random.fold_in(self.key, 1000 + i), val_idx=self.ds.splits["val"],
            opt=("adam", p.final_lr), max_steps=p.final_max_epochs * self.steps_per_epoch,
            eval_every=min(p.final_eval_every, self.steps_per_epoch), patience=p.final_patience)
        test = self.trainer.accuracy(fin.params, mask, self.ds.splits["test"])
        lam, res, spec = self.curvature(fin.params, mask)
        st.d["spectra"][f"{method}@{i}"] = spec
        spars = np.zeros(S) if keep is None else 1.0 - keep.mean(axis=1)
        target = 0.0 if i < 0 else p.levels[i]
        for s in range(S):
            st.d["rows"].append({
                "method": method, "seed": int(p.seeds[s]), "level": i, "target_sparsity": float(target),
                "sparsity": float(spars[s]), "val_acc": float(fin.best_val[s]), "test_acc": float(test[s]),
                "best_step": int(fin.best_step[s]), "steps_run": int(fin.steps_run),
                "lambda_max": float(lam[s]), "lanczos_residual": float(res[s]),
                "lasso_max_gap": float(cert.get("gap", [np.nan] * S)[s]),
                "lasso_status": cert.get("status", [None] * S)[s],
            })
        st.finish("dense" if i < 0 else f"{method}:{i}", time.perf_counter() - t0)
        if i < 0:
            self.say(f"dense reference: test {test.mean():.4f}, λ_max {lam.mean():.2f} ({time.perf_counter() - t0:.0f}s)")


# ----------------------------------------------------------------------------- the report
def _fmt(m, sd, pct=True):
    if not np.isfinite(m):
        return "–"
    return f"{100 * m:.2f} ± {100 * sd:.2f}" if pct else f"{m:.3g} ± {sd:.2g}"


def analyse(plan: Plan, st_d: dict) -> dict:
    """Everything the section states, computed from the state (no figure typed by hand)."""
    import pandas as pd

    from hgcnet_jax.prune.analysis import paired_comparison, phase_shift

    rows = pd.DataFrame(st_d["rows"])
    out: dict = {"rows": rows, "levels_done": 0}
    if rows.empty:
        return out
    dense = rows[rows.method == "dense"]
    out["dense"] = dense
    pruned = rows[rows.method != "dense"]
    done_levels = [i for i in range(len(plan.levels))
                   if all(f"{m}:{i}" in st_d["done"] for m in plan.methods)]
    out["levels_done"] = len(done_levels)
    out["complete_levels"] = done_levels
    summ = (pruned.groupby(["method", "level"]).agg(sparsity=("sparsity", "mean"), acc=("test_acc", "mean"),
                                                     acc_sd=("test_acc", "std"), val=("val_acc", "mean"),
                                                     lam=("lambda_max", "mean"), lam_sd=("lambda_max", "std"),
                                                     res=("lanczos_residual", "max"), n=("seed", "count"))
            .reset_index())
    out["summary"] = summ
    # phase shifts (need at least four levels of a method)
    ps = {}
    for m in plan.methods:
        d = pruned[pruned.method == m]
        if d.level.nunique() >= 4:
            ps[m] = phase_shift(d.sparsity.to_numpy(), d.test_acc.to_numpy(), n_boot=500)
    out["phase_shift"] = ps
    # the best budgeted Granger variant by mean validation accuracy over the complete levels
    cand = [m for m in BUDGETED_GRANGER if m in plan.methods]
    if done_levels and cand and "magnitude_global" in plan.methods:
        vals = {m: float(pruned[(pruned.method == m) & pruned.level.isin(done_levels)].val_acc.mean()) for m in cand}
        best = max(vals, key=vals.get)
        out["best_granger"], out["best_granger_val"] = best, vals
        tests = {}
        for i in done_levels:
            a = pruned[(pruned.method == best) & (pruned.level == i)].sort_values("seed").test_acc.to_numpy()
            b = pruned[(pruned.method == "magnitude_global") & (pruned.level == i)].sort_values("seed").test_acc.to_numpy()
            tests[i] = paired_comparison(a, b)
        out["paired"] = tests
    # λ_max at matched accuracy: each method at its sparsest level within 1 point of the dense reference
    if len(dense):
        target = float(dense.test_acc.mean()) - 0.01
        matched = {}
        for m in plan.methods:
            d = summ[(summ.method == m) & (summ.acc >= target)]
            if len(d):
                r = d.sort_values("sparsity").iloc[-1]
                matched[m] = r
        out["matched_target"], out["matched"] = target, matched
    return out


def verdicts(a: dict, plan: Plan) -> list[str]:
    lines = []
    n_done, n_all = a.get("levels_done", 0), len(plan.levels)
    prov = "" if n_done == n_all else f" (provisional: {n_done} of {n_all} sparsity levels complete)"
    paired = a.get("paired", {})
    if paired:
        better = [plan.levels[i] for i, t in paired.items() if t.verdict == "A better"]
        worse = [plan.levels[i] for i, t in paired.items() if t.verdict == "B better"]
        if better and not worse:
            v = "reproduces"
        elif worse and not better:
            v = "does not reproduce"
        elif better and worse:
            v = "reproduces at " + ", ".join(f"{x:.0%}" for x in better) + "; reversed at " + ", ".join(f"{x:.0%}" for x in worse)
        else:
            v = "inconclusive (no difference detected at any level)"
        lines.append(f"- **Accuracy at equal sparsity — {v}**{prov}: the best budgeted Granger variant "
                     f"(`{a['best_granger']}`, chosen by validation accuracy) against global magnitude is better at "
                     f"{len(better)} and worse at {len(worse)} of {len(paired)} levels (95 % paired t-intervals over "
                     f"{len(plan.seeds)} seeds).")
    ps = a.get("phase_shift", {})
    if "magnitude_global" in ps and a.get("best_granger") in ps:
        g, mg = ps[a["best_granger"]], ps["magnitude_global"]
        sharper = abs(g.slope_after - g.slope_before) > abs(mg.slope_after - mg.slope_before)
        overlap = not (g.hi < mg.lo or mg.hi < g.lo)
        lines.append(f"- **Phase shift**{prov}: `{a['best_granger']}` breaks at {g.sparsity:.3f} (5–95 % {g.lo:.3f}–{g.hi:.3f}), "
                     f"global magnitude at {mg.sparsity:.3f} ({mg.lo:.3f}–{mg.hi:.3f}); the change of slope is "
                     f"{'larger' if sharper else 'smaller'} for Granger; the break points' intervals "
                     f"{'overlap' if overlap else 'do not overlap'}.")
    matched = a.get("matched", {})
    if a.get("best_granger") in matched and "magnitude_global" in matched:
        g, mg = matched[a["best_granger"]], matched["magnitude_global"]
        flatter = g.lam < mg.lam
        lines.append(f"- **Flatter minima at matched accuracy** — {'consistent' if flatter else 'not reproduced'}{prov}: "
                     f"λ_max {g.lam:.3g} ± {g.lam_sd:.2g} (`{a['best_granger']}` at {g.sparsity:.1%}) against "
                     f"{mg.lam:.3g} ± {mg.lam_sd:.2g} (global magnitude at {mg.sparsity:.1%}), each at its sparsest level "
                     f"within one point of the dense reference.")
    return lines


def write_report(plan: Plan, st: State, quick: bool = False) -> str:
    """The section (markdown) and plots from the state; written to docs/ unless quick."""
    a = analyse(plan, st.d)
    d = st.d
    L = ["## Granger-causal pruning given a fair chance: LeNet-5 / Fashion-MNIST (issue #17)", ""]
    L.append(f"`nice -n 10 python experiments/prune_granger_fair.py` (resumable; state in "
             f"`experiments/state/{NAME}/`).")
    n_phases = plan.pretrain_epochs + 2 + len(plan.levels) * len(plan.methods)
    L.append(f"Progress: {len(d['done'])} of {n_phases} phases done; {a.get('levels_done', 0)} of {len(plan.levels)} "
             f"sparsity levels complete for every method.")
    L += ["", "**Verdict against the authors' claim.**", ""]
    vs = verdicts(a, plan)
    L += vs if vs else ["- No sparsity level is complete yet: no verdict."]
    L += ["", CLAIM, ""]
    # setup
    L += [f"**Setup.** {len(plan.seeds)} seeds trained together (vmapped); batch {plan.batch_size}; "
          f"{plan.n_val} validation images held out of the training images. Pre-training: Adam {plan.pretrain_lr}, "
          f"{plan.pretrain_epochs} epochs. Each pruning iteration: {plan.record_steps} plain-SGD steps (lr {plan.prune_lr}) "
          f"from the pre-trained weights under the current mask, recorded: {regression_rows(plan)} rows of the regression "
          f"y_t = L_(t+1) − L_t on X_t = (Δθ_t/η)², one Lasso per layer (α = {plan.alpha_exact} α_max for the "
          f"exact-zero variants, {plan.alpha_rank} α_max for the budgeted ones, duality-gap tolerance {plan.lasso_tol}). "
          f"After each new mask the weights are reset to the pre-trained checkpoint and trained with Adam "
          f"{plan.final_lr} to convergence: validation accuracy every {plan.final_eval_every} steps, the best kept, "
          f"stop after {plan.final_patience} evaluations without improvement (at most {plan.final_max_epochs} epochs). "
          f"λ_max: Lanczos ({plan.lanczos_steps} steps) on the Hessian of the training loss θ ↦ L(θ ⊙ m) over "
          f"{plan.curvature_examples} training images, with its residual ‖Hv − λv‖; SLQ ({plan.slq_probes} probes) "
          f"for seed 0. Sparsity levels {', '.join(f'{x:.0%}' for x in plan.levels)}, each pruned from the "
          f"previous mask (the exact-zero variants prune every γ = 0 instead, so their sparsity is what they reach).", ""]
    if d["pretrain"]:
        last = d["pretrain"][-1]
        te = np.asarray(last["test_acc"])
        L.append(f"**Pre-training**: after {last['epoch']} epochs test accuracy {100 * te.mean():.2f} % "
                 f"(min {100 * te.min():.2f} %; target ≥ 89 %: {'met' if te.min() >= 0.89 else 'NOT met'}), "
                 f"validation {100 * np.mean(last['val_acc']):.2f} %.")
    if "dense" in a:
        dn = a["dense"]
        L.append(f"**Dense reference** (the same final training, no mask): test {100 * dn.test_acc.mean():.2f} ± "
                 f"{100 * dn.test_acc.std():.2f} %, λ_max {dn.lambda_max.mean():.3g} ± {dn.lambda_max.std():.2g}.")
    L.append("")
    if "summary" in a:
        s = a["summary"]
        L += ["Test accuracy (%, mean ± sd over seeds) against target sparsity; the exact-zero variants' cells give the "
              "sparsity they reached.", "",
              "| method | " + " | ".join(f"{x:.0%}" for x in plan.levels) + " |",
              "|---|" + "---|" * len(plan.levels)]
        for m in plan.methods:
            cells = []
            for i in range(len(plan.levels)):
                r = s[(s.method == m) & (s.level == i)]
                if r.empty:
                    cells.append("…")
                    continue
                r = r.iloc[0]
                c = _fmt(r.acc, r.acc_sd if np.isfinite(r.acc_sd) else 0.0)
                if METHODS[m].get("mode") == "exact" or METHODS[m]["kind"] == "structured":
                    c += f" (at {r.sparsity:.1%})"
                cells.append(c)
            L.append(f"| {LABELS[m]} | " + " | ".join(cells) + " |")
        L.append("")
    if a.get("paired"):
        L += [f"Paired test, `{a['best_granger']}` − global magnitude (test accuracy, points; seeds paired):", "",
              "| sparsity | mean difference | 95 % interval | t-test p | exact sign-flip p | verdict |",
              "|---|---|---|---|---|---|"]
        for i, t in a["paired"].items():
            L.append(f"| {plan.levels[i]:.0%} | {100 * t.mean_diff:+.2f} | {100 * t.lo:+.2f} … {100 * t.hi:+.2f} | "
                     f"{t.p_t:.3g} | {t.p_exact:.3g} | {t.verdict.replace('A', 'Granger').replace('B', 'magnitude')} |")
        L += ["", f"(With {len(plan.seeds)} seeds the exact sign-flip test cannot go below "
                  f"{2 / 2 ** len(plan.seeds):.4f}.) Validation accuracy of the candidates over the complete levels: "
              + ", ".join(f"`{k}` {100 * v:.2f} %" for k, v in a["best_granger_val"].items()) + ".", ""]
    if a.get("phase_shift"):
        L += ["Phase-shift points (hinge fit on −log10(1 − s) of every (seed, level) point; 500 bootstrap resamples):", "",
              "| method | break at sparsity | bootstrap 5–95 % | slope before → after |", "|---|---|---|---|"]
        for m, p_ in a["phase_shift"].items():
            L.append(f"| {LABELS[m]} | {p_.sparsity:.3f} | {p_.lo:.3f}–{p_.hi:.3f} | {p_.slope_before:+.3f} → {p_.slope_after:+.3f} |")
        L.append("")
    orc = d.get("oracle") or {}
    if orc.get("weights"):
        layers = list(next(iter(orc["weights"].values())))
        L += [f"**Oracle of importance.** The loss increase when one weight is set to zero, on {orc['examples']} "
              f"training images, for {orc['per_layer']} sampled weights per layer (all of a smaller layer) of the "
              f"pre-trained network of every seed; mean increase {orc['mean_weight_increase']:.2e}, "
              f"{100 * orc['frac_harmless']:.1f} % of the removals do not raise the loss. Spearman correlation of each "
              f"score (on the dense network, before the first mask) with it, mean ± sd over seeds:", "",
              "| score | " + " | ".join(layers) + " | mean |", "|---|" + "---|" * (len(layers) + 1)]
        for name, per in orc["weights"].items():
            vals = [np.asarray(per[l], np.float64) for l in layers]
            cells = [f"{np.nanmean(v):+.3f} ± {np.nanstd(v):.3f}" if np.isfinite(v).any() else "–" for v in vals]
            allv = np.concatenate(vals)
            L.append(f"| {LABELS.get(name, name)} | " + " | ".join(cells) + f" | {np.nanmean(allv):+.3f} |")
        L.append("")
        if orc.get("units"):
            cols = [k for k in next(iter(orc["units"].values())) if k != "mean increase"]
            L += ["Unit oracle (the loss increase when a whole output neuron / filter is removed), Spearman "
                  "correlation of each unit score with it, mean over seeds:", "",
                  "| layer | " + " | ".join(LABELS.get(c, c) for c in cols) + " | mean loss increase |",
                  "|---|" + "---|" * (len(cols) + 1)]
            for layer, u in orc["units"].items():
                L.append(f"| {layer} | " + " | ".join(f"{np.nanmean(u[c]):+.3f}" for c in cols)
                         + f" | {np.mean(u['mean increase']):.3e} |")
            L.append("")
    if a.get("matched"):
        L += [f"λ_max of the training loss at matched accuracy (each method at its sparsest level with mean test "
              f"accuracy ≥ {100 * a['matched_target']:.2f} %, one point below the dense reference):", "",
              "| method | sparsity | test accuracy | λ_max | largest Lanczos residual |", "|---|---|---|---|---|"]
        for m, r in a["matched"].items():
            L.append(f"| {LABELS[m]} | {r.sparsity:.1%} | {100 * r.acc:.2f} % | {r.lam:.3g} ± {r.lam_sd:.2g} | {r.res:.2g} |")
        L.append("")
    secs = d.get("seconds", {})
    if secs:
        kinds: dict = {}
        for ph, v in secs.items():
            k = ph.split(":")[0] if ph.startswith("pretrain") else ("dense/oracle" if ph in ("dense", "oracle") else ph.split(":")[0])
            kinds[k] = kinds.get(k, 0.0) + v
        L.append(f"**Compute so far**: {sum(secs.values()) / 3600:.2f} h wall-clock on the 2-core CPU of this machine "
                 f"(shared with other work): " + ", ".join(f"{k} {v / 60:.0f} min" for k, v in kinds.items()) + ".")
    if not quick and "summary" in a:
        _plots(plan, st.d, a)
        L += ["", f"![accuracy vs sparsity](results/{NAME}/curves.png)"]
        if a.get("matched"):
            L.append(f"![Hessian spectra at matched accuracy](results/{NAME}/spectra.png)")
    md = "\n".join(L)
    if not quick:
        from _common import write_section

        write_section(NAME, md)
    return md


def _plots(plan, d, a) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hgcnet_jax import _io
    from hgcnet_jax.prune.analysis import plot_spectra, to_u

    FIG_DIR.mkdir(parents=True, exist_ok=True)
    s = a["summary"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    if "dense" in a:
        ax.axhline(float(a["dense"].test_acc.mean()), color="k", ls=":", label="dense")
    for m in plan.methods:
        r = s[s.method == m].sort_values("sparsity")
        if len(r):
            ax.errorbar(to_u(r.sparsity), r.acc, yerr=r.acc_sd.fillna(0), marker="o", ms=3, capsize=2, label=LABELS[m])
    ticks = np.asarray([0.1, 0.5, 0.8, 0.9, 0.95, 0.98])
    ax.set_xticks(to_u(ticks))
    ax.set_xticklabels([f"{t:.0%}" for t in ticks])
    ax.set_xlabel("sparsity")
    ax.set_ylabel("test accuracy")
    ax.legend(fontsize=6)
    fig.tight_layout()
    with _io.atomic_write(FIG_DIR / "curves.png") as f:
        fig.savefig(f, format="png", dpi=120)
    plt.close(fig)
    if a.get("matched"):
        spectra = {f"{m}@{r.sparsity:.0%}": d["spectra"].get(f"{m}@{int(r.level)}") for m, r in a["matched"].items()}
        spectra["dense"] = d["spectra"].get("dense@-1")
        tmp = FIG_DIR / "spectra.tmp.png"
        plot_spectra(spectra, tmp, title="Hessian spectral density at matched accuracy (seed 0)")
        tmp.replace(FIG_DIR / "spectra.png")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny budget smoke run; writes nothing to docs/")
    ap.add_argument("--out", type=Path, default=None, help=f"state folder (default {STATE_DIR.relative_to(REPO)})")
    ap.add_argument("--overwrite", action="store_true", help="discard the state folder's run and start afresh")
    ap.add_argument("--report-only", action="store_true", help="only rewrite the section from the state")
    args = ap.parse_args(argv)
    plan = QUICK if args.quick else FULL
    folder = args.out or (REPO / "hgcnet-out" / "experiments" / f"{NAME}_quick" if args.quick else STATE_DIR)
    st = State(folder, plan, args.overwrite)
    t0 = time.perf_counter()

    def say(msg):
        print(f"[{time.perf_counter() - t0:7.1f}s] {msg}", flush=True)

    if not args.report_only:
        Experiment(plan, st, say, report=None if args.quick else lambda: write_report(plan, st)).run()
    md = write_report(plan, st, quick=args.quick)
    if args.quick:
        print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
