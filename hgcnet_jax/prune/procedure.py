r"""The iterative pruning procedure, vmapped over seeds, for every method under one budget.

For each seed (all seeds at once, one compiled program per phase):

1. **Pre-train** the dense model (Adam) and keep the checkpoint :math:`\theta_0`.
2. **Dense reference**: train the dense model from :math:`\theta_0` with the final budget.
3. For each method and each sparsity level :math:`s_i` of the schedule:

   a. reset the surviving weights to :math:`\theta_0` (``θ0 * mask``);
   b. score the alive weights:
      ``granger`` — plain SGD (lr 1e-3) for the pruning steps while recording loss
      changes and squared updates (or the momentum features, ``features="momentum"``),
      then the Lasso (:mod:`hgcnet_jax.prune.granger`);
      ``granger_structured`` — the same recording, then one group Lasso per layer with
      one coefficient group per output neuron / filter
      (:mod:`hgcnet_jax.prune.structured`): whole channels are removed;
      ``magnitude`` — :math:`|\theta|` (optionally after ``magnitude_steps`` SGD steps);
      ``random`` — uniform scores;
   c. keep the budget :math:`(1 - s_i)` of the prunable weights (global or per layer;
      ``granger_mode="exact"`` instead prunes every γ = 0 and ignores the level;
      ``granger_structured`` keeps :math:`(1 - s_i)` of the output units of every layer
      except the protected ones, see ``structured_protect``);
   d. **final training** of the masked model from ``θ0 * mask`` (Adam), test accuracy,
      and optionally :math:`\lambda_{\max}` of the Hessian of the masked loss
      :math:`\theta \mapsto L(\theta \odot m)` on a fixed test subset.

**Recording memory.** With ``recording="stream"`` (default) the pruning steps are folded
into streamed sufficient statistics as they run (:meth:`~hgcnet_jax.prune.Trainer.record_stats`):
a fit group of ``p ≤ gram_max_features`` feature columns keeps only its Gram matrix
(``8·p²`` bytes per seed, whatever the number of pruning steps) and is solved by
:func:`~hgcnet_jax.prune.lasso_gram`; a larger group keeps its ``(T+1) × P_g`` columns
(in RAM, or with ``spill_columns`` in an unlinked memory-mapped file under ``out_dir``)
for the working-set solver. ``recording="full"`` keeps the whole ``S × (T+1) × P``
recording as before. The bound is stated in :mod:`hgcnet_jax.prune.record`.

Masks are applied inside the optimiser, so pruned weights are exactly zero
throughout. Every level is saved under ``out_dir`` as soon as it is done, and a
rerun with the same configuration resumes after the last saved level.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from hgcnet_jax import _io, _keys
from hgcnet_jax.prune.granger import granger_keep, granger_keep_stats, magnitude_keep, random_keep
from hgcnet_jax.prune.masks import apply_mask, flatten_prunable, ones_mask, prunable, unflatten_prunable
from hgcnet_jax.prune.record import Trainer
from hgcnet_jax.prune.solvers import STATUS_CONVERGED, STATUSES
from hgcnet_jax.prune.structured import structured_granger_keep, structured_granger_keep_stats

__all__ = ["PruneConfig", "PruneResult", "PruneState", "run_pruning", "METHODS", "DEFAULT_METHODS"]

METHODS = ("granger", "magnitude", "random", "granger_structured")
DEFAULT_METHODS = ("granger", "magnitude", "random")
_PRETRAIN_FIELDS = ("seeds", "batch_size", "pretrain_steps", "train_lr")


@dataclass(frozen=True)
class PruneConfig:
    r"""Budgets and settings of one pruning study (the authors' values in brackets).

    Attributes:
        seeds: seeds, trained together (vmapped).
        batch_size: minibatch size [512].
        pretrain_steps: Adam steps of pre-training [10 epochs].
        prune_steps: plain-SGD steps per pruning iteration, i.e. rows of the Granger
            regression [10 epochs].
        final_steps: Adam steps of the final training per level [≤ 200 epochs, early stopping].
        levels: target sparsities of the successive iterations (increasing, in [0, 1)).
        train_lr: Adam learning rate of pre-training and final training [5e-4 final].
        prune_lr: plain SGD learning rate of the pruning steps [1e-3].
        magnitude_steps: plain-SGD steps before scoring |θ| (0: the rewound checkpoint's
            |θ|, i.e. one-shot-per-iteration magnitude pruning with rewinding; the SGD steps at
            lr 1e-3 barely move the weights anyway).
        granger_mode: ``"rank"`` (budgeted) or ``"exact"`` (prune γ = 0).
        granger_scope, magnitude_scope, random_scope: ``"global"`` or ``"layer"``.
        alpha, alpha_scale: the Lasso penalty (see :func:`hgcnet_jax.prune.granger_fit`).
        target: ``"same_batch"`` (default; the authors' later code) or ``"consecutive"``
            (their original) loss differences.
        standardize: scale the Lasso's columns to unit root mean square (see
            :func:`hgcnet_jax.prune.granger_fit`).
        features: ``"sq"`` (:math:`\Delta\theta_t^2`) or ``"momentum"`` (the paper's
            momentum variant: :math:`[\Delta\theta_t^2, \Delta\theta_{t+1}^2,
            \Delta\theta_t\Delta\theta_{t+1}]`, three columns per weight; a weight's
            score is the largest |.| of its three).
        solver, lasso_tol: the Lasso solver and its tolerance (``solver`` is used for
            fit groups kept as columns; Gram groups use covariance-form coordinate descent).
        chunk_steps: recording chunk (memory bound, see :mod:`hgcnet_jax.prune.record`).
        recording: ``"stream"`` (sufficient statistics while recording) or ``"full"``
            (keep every Δθ, the earlier behaviour); see the module docstring.
        gram_max_features: streamed fit groups with at most this many feature columns
            keep their Gram matrix instead of their columns.
        spill_columns: keep the streamed columns of large groups in a memory-mapped
            file (under ``out_dir``, else the system's temporary folder), not in RAM.
        structured_protect: layers whose units ``granger_structured`` never removes;
            ``None``: the prunable layers whose output width equals the task's number of
            classes (``task.dataset.num_classes``; the classifier), none when unknown.
        curvature_levels: levels at which :math:`\lambda_{\max}` is measured (plus the dense model).
        curvature_examples: test examples of the Hessian's loss.
        lanczos_steps: Lanczos steps for :math:`\lambda_{\max}`.
        eval_examples: test examples for accuracy (``None``: the whole test split).
    """

    seeds: tuple[int, ...] = (0, 1, 2)
    batch_size: int = 128
    pretrain_steps: int = 500
    prune_steps: int = 200
    final_steps: int = 500
    levels: tuple[float, ...] = (0.5, 0.8, 0.9, 0.95, 0.98)
    train_lr: float = 1e-3
    prune_lr: float = 1e-3
    magnitude_steps: int = 0
    granger_mode: str = "rank"
    granger_scope: str = "global"
    magnitude_scope: str = "global"
    random_scope: str = "global"
    alpha: float = 0.05
    alpha_scale: str = "relative"
    target: str = "same_batch"
    features: str = "sq"
    standardize: bool = True
    solver: str = "auto"
    lasso_tol: float = 1e-4
    chunk_steps: int = 8
    recording: str = "stream"
    gram_max_features: int = 1024
    spill_columns: bool = False
    structured_protect: tuple[str, ...] | None = None
    curvature_levels: tuple[float, ...] = (0.9,)
    curvature_examples: int = 512
    lanczos_steps: int = 32
    eval_examples: int | None = None

    def __post_init__(self) -> None:
        def bad(name, why):
            raise ValueError(f"PruneConfig.{name}: {why}, got {getattr(self, name)!r}")

        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            bad("seeds", "need at least one seed, all distinct")
        for name in ("batch_size", "pretrain_steps", "prune_steps", "final_steps", "chunk_steps",
                     "curvature_examples", "lanczos_steps"):
            if int(getattr(self, name)) < 1:
                bad(name, "must be >= 1")
        lv = tuple(self.levels)
        if not lv or any(not (0.0 <= s < 1.0) for s in lv) or any(b <= a for a, b in zip(lv, lv[1:])):
            bad("levels", "must be strictly increasing values in [0, 1)")
        for name in ("train_lr", "prune_lr"):
            if not float(getattr(self, name)) > 0:
                bad(name, "must be > 0")
        if self.granger_mode not in ("rank", "exact"):
            bad("granger_mode", "must be 'rank' or 'exact'")
        for name in ("granger_scope", "magnitude_scope", "random_scope"):
            if getattr(self, name) not in ("global", "layer"):
                bad(name, "must be 'global' or 'layer'")
        if self.alpha < 0:
            bad("alpha", "must be >= 0")
        if self.magnitude_steps < 0:
            bad("magnitude_steps", "must be >= 0")
        if self.alpha_scale not in ("relative", "absolute"):
            bad("alpha_scale", "must be 'relative' or 'absolute'")
        if self.target not in ("consecutive", "same_batch"):
            bad("target", "must be 'consecutive' or 'same_batch'")
        if self.features not in ("sq", "momentum"):
            bad("features", "must be 'sq' or 'momentum'")
        if self.solver not in ("auto", "ws", "cd", "fista", "sgd"):
            bad("solver", "must be one of auto, ws, cd, fista, sgd")
        if self.recording not in ("stream", "full"):
            bad("recording", "must be 'stream' or 'full'")
        if int(self.gram_max_features) < 0:
            bad("gram_max_features", "must be >= 0")
        if self.eval_examples is not None and self.eval_examples < 1:
            bad("eval_examples", "must be >= 1 or None")

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


@dataclass
class PruneResult:
    """The outcome of :func:`run_pruning`.

    Attributes:
        table: one row per (method, seed, level): ``method, seed, level, target_sparsity,
            sparsity, test_acc, lambda_max, lasso_max_gap, lasso_converged, lasso_status, wall_s``
            (``lasso_status``: the worst :data:`~hgcnet_jax.prune.solvers.STATUSES` entry of
            the step's Lasso fits — ``"precision"`` when a gap stopped at the float32
            floor — and ``None`` for methods without a Lasso).
            The dense reference is ``method="dense"``, ``level=-1``, ``sparsity=0``.
        spectra: ``{(method, level): {"grid", "density"}}`` of seed 0 where measured.
        masks: ``{method: list of (S, P) keep arrays per level}``.
        config: the :class:`PruneConfig`.
    """

    table: pd.DataFrame
    spectra: dict = field(default_factory=dict)
    masks: dict = field(default_factory=dict)
    config: PruneConfig | None = None


def _flat(params, which) -> np.ndarray:
    return np.asarray(jax.vmap(lambda p: jnp.concatenate(flatten_prunable(p, which)))(params))


def _mask_from_keep(keep: np.ndarray, like, which):
    """Stacked mask from ``(S, P)`` keep flags; non-prunable leaves get ones."""
    unstacked = jax.tree.map(lambda x: x[0], like)
    sizes = [int(np.size(x)) for x in flatten_prunable(unstacked, which)]
    splits = np.cumsum(sizes)[:-1]

    def one(k):
        parts = jnp.split(k, splits)
        return unflatten_prunable(parts, unstacked, which)

    return jax.vmap(one)(jnp.asarray(keep, jnp.float32))


def _curvature_fns(task, idx, steps: int):
    """Jitted λ_max (vmapped over replicas) and spectral density of ``θ -> L(θ ⊙ m)``.

    The mask is an argument (not a closure constant), so each program compiles once.
    """
    from hgcnet_jax.curvature import spectral_density, top_eigenvalues

    def lam(p, m, k):
        return top_eigenvalues(lambda q: task.loss(apply_mask(q, m), idx), p, 1, key=k, num_steps=steps).eigenvalues[0]

    def dens(p, m, k):
        sd = spectral_density(lambda q: task.loss(apply_mask(q, m), idx), p, key=k, num_probes=1,
                              num_steps=steps, grid_size=128)
        return sd.grid, sd.density

    return jax.jit(jax.vmap(lam)), jax.jit(dens)


def _curvature(fns, params, mask, *, key) -> tuple[np.ndarray, dict]:
    """λ_max per replica and the spectral density of replica 0."""
    lam_fn, dens_fn = fns
    S = jax.tree.leaves(params)[0].shape[0]
    lams = np.asarray(lam_fn(params, mask, jax.random.split(key, S)))
    grid, density = dens_fn(jax.tree.map(lambda x: x[0], params), jax.tree.map(lambda x: x[0], mask),
                            _keys.prune_density(key))
    return lams, {"grid": np.asarray(grid).tolist(), "density": np.asarray(density).tolist()}


@dataclass
class PruneState:
    """What a pruning study has finished: the resumable record written to ``state.json``.

    Attributes:
        config: the :class:`PruneConfig` as a dict (a folder resumes only the same one).
        rows: the table's rows so far (see :class:`PruneResult`).
        spectra: ``"method@level" -> {"grid", "density"}``.
        done: the finished phases: ``"pretrain"``, ``"dense"``, ``"<method>:<level>"``.
        structured_protect: the layers whose units ``granger_structured`` never removes.
    """

    config: dict
    rows: list = field(default_factory=list)
    spectra: dict = field(default_factory=dict)
    done: list = field(default_factory=list)
    structured_protect: list | None = None

    def to_json(self) -> dict:
        d = {"config": self.config, "rows": self.rows, "spectra": self.spectra, "done": self.done}
        if self.structured_protect is not None:
            d["structured_protect"] = self.structured_protect
        return d

    @classmethod
    def from_json(cls, d: dict) -> "PruneState":
        return cls(config=d["config"], rows=list(d.get("rows", [])), spectra=dict(d.get("spectra", {})),
                   done=list(d.get("done", [])), structured_protect=d.get("structured_protect"))


class _Folder:
    """``out_dir`` of a pruning study (or nothing, in memory): state, checkpoints, masks."""

    def __init__(self, out: Path | None):
        self.out = out

    def load_state(self, cfg: PruneConfig, reuse_pretrain: bool) -> PruneState:
        fresh = PruneState(config=cfg.to_dict())
        if self.out is None:
            return fresh
        _io.ensure_writable_dir(self.out, what="pruning output folder")
        sp = self.out / "state.json"
        if not sp.exists():
            return fresh
        old = json.loads(sp.read_text())
        if old.get("config") == fresh.config:
            return PruneState.from_json(old)
        if reuse_pretrain and "pretrain" in old.get("done", []) and all(
                old["config"].get(k) == fresh.config[k] for k in _PRETRAIN_FIELDS):
            fresh.done = ["pretrain"]                # same pre-training: keep it, redo the rest
            return fresh
        raise ValueError(f"run_pruning: {self.out} holds a run with another configuration; "
                         "use a fresh --out folder or the same settings to resume")

    def save(self, state: PruneState, arrays: dict | None = None, name: str | None = None) -> None:
        if self.out is None:
            return
        if arrays is not None and name is not None:
            with _io.atomic_write(self.out / f"{name}.npz") as f:
                np.savez(f, **arrays)
        _io.write_json(self.out / "state.json", state.to_json())

    def load(self, name: str):
        return np.load(self.out / f"{name}.npz")

    def save_mask(self, method: str, level: int, keep: np.ndarray) -> None:
        if self.out is not None:
            with _io.atomic_write(self.out / f"mask_{method}_{level}.npz") as f:
                np.savez_compressed(f, keep=keep)

    def load_mask(self, method: str, level: int) -> np.ndarray:
        return np.load(self.out / f"mask_{method}_{level}.npz")["keep"]


@dataclass(frozen=True)
class _Net:
    """The network's prunable layout, shared by every phase (replicas stacked on axis 0)."""

    params0: Any                       # initial parameters, (S, ...) leaves
    which: Any                         # prunable flags, unstacked
    treedef: Any
    slices: dict                       # layer -> slice of the flat P axis
    shapes: dict                       # layer -> kernel shape
    ones: Any                          # all-ones stacked mask

    @property
    def num_replicas(self) -> int:
        return int(jax.tree.leaves(self.params0)[0].shape[0])

    @property
    def num_prunable(self) -> int:
        return max(sl.stop for sl in self.slices.values())

    def to_np(self, tree) -> dict:
        return {str(i): np.asarray(x) for i, x in enumerate(jax.tree.leaves(tree))}

    def from_np(self, d) -> Any:
        return jax.tree.unflatten(self.treedef, [jnp.asarray(d[str(i)]) for i in range(len(d))])

    def mask(self, keep: np.ndarray | None):
        return self.ones if keep is None else _mask_from_keep(keep, self.params0, self.which)


def _net(task, seed_keys) -> _Net:
    from hgcnet_jax.prune.masks import layer_names

    params0 = jax.jit(jax.vmap(task.init))(seed_keys)
    unstacked = jax.tree.map(lambda x: x[0], params0)
    which = prunable(unstacked)
    sizes = [int(np.size(x)) for x in flatten_prunable(unstacked, which)]
    offs = np.concatenate([[0], np.cumsum(sizes)])
    names = layer_names(unstacked, which)
    slices = {n: slice(int(offs[i]), int(offs[i + 1])) for i, n in enumerate(names)}
    kernels = [x for x, f in zip(jax.tree.leaves(unstacked), jax.tree.leaves(which)) if f]
    shapes = {n: tuple(np.shape(x)) for n, x in zip(slices, kernels)}
    return _Net(params0, which, jax.tree.structure(params0), slices, shapes, jax.vmap(ones_mask)(params0))


@dataclass(frozen=True)
class _Step:
    """Everything a scorer needs for one (method, level) step."""

    cfg: PruneConfig
    net: _Net
    trainer: Trainer
    ckpt: Any                          # the pre-trained checkpoint θ0
    folder: _Folder
    protect: tuple
    warn: bool


def _certificates(fits_per_replica: list) -> dict:
    """The table's Lasso columns from each replica's fits: worst gap, all converged, worst status."""
    gaps, conv, status = [], [], []
    for fits in fits_per_replica:
        results = [getattr(f, "result", f) for f in fits]
        gaps.append(max((float(r.duality_gap) for r in results), default=0.0))
        conv.append(all(bool(r.converged) for r in results))
        status.append(STATUSES[max((int(r.status) for r in results), default=STATUS_CONVERGED)])
    return {"gap": gaps, "conv": conv, "status": status}


def _score_granger(st: _Step, method: str, keep, mask, step_key, target):
    """New keep flags ``(S, P)`` by the (structured) Granger regression, and the certificates."""
    cfg, net, S = st.cfg, st.net, st.net.num_replicas
    structured = method == "granger_structured"
    rec_kw = dict(key=step_key, steps=cfg.prune_steps, lr=cfg.prune_lr, chunk_steps=cfg.chunk_steps)
    fit_kw = dict(alpha=cfg.alpha, standardize=cfg.standardize, tol=cfg.lasso_tol, warn=st.warn)
    if not structured:
        fit_kw.update(mode=cfg.granger_mode, target_sparsity=target, alpha_scale=cfg.alpha_scale, solver=cfg.solver)
    else:
        fit_kw.update(target_sparsity=target, protect=st.protect)
    new, fits = [], []
    if cfg.recording == "full":
        _, rec = st.trainer.record(st.ckpt, mask, same_batch=cfg.target == "same_batch", **rec_kw)
        for s in range(S):
            X, y = rec.design(s, target=cfg.target, features=cfg.features)
            if structured:
                k, f = structured_granger_keep(X, y, keep[s], net.slices, net.shapes, **fit_kw)
            else:
                k, f = granger_keep(X, y, keep[s], net.slices, scope=cfg.granger_scope, **fit_kw)
            new.append(k)
            fits.append(f)
        del rec
    else:
        import tempfile

        out = st.folder.out
        spill = (str(out) if out is not None else tempfile.gettempdir()) if cfg.spill_columns else None
        _, stats = st.trainer.record_stats(st.ckpt, mask, scope="layer" if structured else cfg.granger_scope,
                                           target=cfg.target, features=cfg.features,
                                           gram_max_features=cfg.gram_max_features, spill_dir=spill, **rec_kw)
        for s in range(S):
            if structured:
                k, f = structured_granger_keep_stats(stats, s, keep[s], net.shapes, **fit_kw)
            else:
                k, f = granger_keep_stats(stats, s, keep[s], **fit_kw)
            new.append(k)
            fits.append(f)
        del stats
    return np.stack(new), _certificates(fits)


def _score_magnitude(st: _Step, method: str, keep, mask, step_key, target):
    cfg = st.cfg
    if cfg.magnitude_steps > 0:
        trained, _ = st.trainer.train(st.ckpt, mask, key=step_key, steps=cfg.magnitude_steps, opt=("sgd", cfg.prune_lr))
    else:
        trained = jax.vmap(apply_mask)(st.ckpt, mask)
    w = _flat(trained, st.net.which)
    return np.stack([magnitude_keep(w[s], keep[s], st.net.slices, target_sparsity=target, scope=cfg.magnitude_scope)
                     for s in range(st.net.num_replicas)]), {}


def _score_random(st: _Step, method: str, keep, mask, step_key, target):
    cfg = st.cfg
    return np.stack([random_keep(keep[s], st.net.slices, target_sparsity=target,
                                 key=_keys.prune_random(step_key, int(cfg.seeds[s])), scope=cfg.random_scope)
                     for s in range(st.net.num_replicas)]), {}


#: method -> scorer ``(step, method, keep, mask, step_key, target) -> (new keep (S, P), Lasso columns)``
_SCORERS: dict[str, Callable] = {
    "granger": _score_granger,
    "granger_structured": _score_granger,
    "magnitude": _score_magnitude,
    "random": _score_random,
}


def _protected_layers(task, cfg: PruneConfig, net: _Net) -> tuple:
    """The layers whose units ``granger_structured`` keeps: the classifier (output width = classes) by default."""
    if cfg.structured_protect is None:
        n_cls = getattr(getattr(task, "dataset", None), "num_classes", None)
        return tuple(n for n in net.slices if n_cls is not None and net.shapes[n][-1] == n_cls)
    protect = tuple(cfg.structured_protect)
    unknown = [n for n in protect if n not in net.slices]
    if unknown:
        raise ValueError(f"PruneConfig.structured_protect: unknown layers {unknown}; layers: {list(net.slices)}")
    return protect


def run_pruning(
    task: Any,
    config: PruneConfig,
    *,
    key: jax.Array,
    methods: Sequence[str] = DEFAULT_METHODS,
    out_dir: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
    warn: bool = False,
    reuse_pretrain: bool = False,
) -> PruneResult:
    """Run the pruning study (module docstring) for ``methods`` on ``task``.

    Args:
        task: a :class:`hgcnet_jax.train.Task` (or any object with ``init``, ``loss``,
            ``accuracy`` and ``splits``).
        config: a :class:`PruneConfig`.
        key: PRNG key; seed ``s`` uses ``fold_in(key, s)``.
        methods: a subset of :data:`METHODS` (default ``("granger", "magnitude", "random")``).
        out_dir: folder for resumable state (``state.json``, ``*.npz``); ``None``: in memory.
        progress: called with a short message after each phase (CLI progress bars).
        warn: let Lasso convergence warnings through (the gaps are in the table anyway).
        reuse_pretrain: when ``out_dir`` holds a run whose configuration differs only
            outside the pre-training fields (seeds, batch size, steps, lr), keep its
            pre-trained checkpoint and recompute everything else.

    Returns:
        A :class:`PruneResult`.

    Raises:
        ValueError: an unknown method, or an ``out_dir`` holding another configuration.
    """
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        raise ValueError(f"run_pruning: methods must be a non-empty subset of {METHODS}, got {list(methods)}")
    cfg = config
    say = progress or (lambda msg: None)
    folder = _Folder(Path(out_dir) if out_dir is not None else None)
    state = folder.load_state(cfg, reuse_pretrain)

    net = _net(task, jnp.stack([jax.random.fold_in(key, int(s)) for s in cfg.seeds]))
    S, P = net.num_replicas, net.num_prunable
    trainer = Trainer(task, net.which, cfg.batch_size)
    test_idx = np.asarray(task.splits["test"])
    eval_idx = test_idx if cfg.eval_examples is None else test_idx[: cfg.eval_examples]
    curv_fns = _curvature_fns(task, jnp.asarray(test_idx[: cfg.curvature_examples]), cfg.lanczos_steps)

    # 1. pre-train (resumable)
    if folder.out is not None and "pretrain" in state.done:
        ckpt = net.from_np(folder.load("pretrain"))
    else:
        t0 = time.perf_counter()
        ckpt, _ = trainer.train(net.params0, net.ones, key=_keys.prune_pretrain(key), steps=cfg.pretrain_steps,
                                opt=("adam", cfg.train_lr))
        state.done.append("pretrain")
        folder.save(state, net.to_np(ckpt), "pretrain")
        say(f"pre-trained {S} seeds in {time.perf_counter() - t0:.1f}s")

    def finish(method, level_i, target, keep, extra, t0):
        """Final training of the masked model from θ0, its accuracy and curvature: the table's rows."""
        mask = net.mask(keep)
        final, _ = trainer.train(ckpt, mask, key=_keys.prune_final(key, level_i), steps=cfg.final_steps,
                                 opt=("adam", cfg.train_lr))
        acc = trainer.accuracy(final, mask, eval_idx)
        spars = np.zeros(S) if keep is None else 1.0 - keep.mean(axis=1)
        lam = np.full(S, np.nan)
        if keep is None or any(abs(target - c) < 1e-9 for c in cfg.curvature_levels):
            lam, spec = _curvature(curv_fns, final, mask, key=_keys.prune_curvature(key))
            state.spectra[f"{method}@{target}"] = spec
        for s in range(S):
            state.rows.append({
                "method": method, "seed": int(cfg.seeds[s]), "level": level_i, "target_sparsity": float(target),
                "sparsity": float(spars[s]), "test_acc": float(acc[s]), "lambda_max": float(lam[s]),
                "lasso_max_gap": float(extra.get("gap", [np.nan] * S)[s]),
                "lasso_converged": bool(extra.get("conv", [True] * S)[s]),
                "lasso_status": extra.get("status", [None] * S)[s],
                "wall_s": float(time.perf_counter() - t0),
            })

    # 2. dense reference
    if "dense" not in state.done:
        finish("dense", -1, 0.0, None, {}, time.perf_counter())
        state.done.append("dense")
        folder.save(state)
        say("dense reference trained")

    protect = _protected_layers(task, cfg, net)
    if "granger_structured" in methods:
        state.structured_protect = list(protect)      # for the record: units never removed
    step = _Step(cfg, net, trainer, ckpt, folder, protect, warn)

    # 3. methods × levels
    masks: dict = {}
    for method in methods:
        keep = np.ones((S, P), bool)
        masks[method] = []
        for i, target in enumerate(cfg.levels):
            if f"{method}:{i}" in state.done:
                keep = folder.load_mask(method, i)
                masks[method].append(keep)
                continue
            t0 = time.perf_counter()
            keep, extra = _SCORERS[method](step, method, keep, net.mask(keep),
                                           _keys.prune_step(key, i, METHODS.index(method)), target)
            finish(method, i, target, keep, extra, t0)
            masks[method].append(keep)
            state.done.append(f"{method}:{i}")
            folder.save_mask(method, i, keep)
            folder.save(state)
            say(f"{method}: level {i + 1}/{len(cfg.levels)} (target {target:.0%}, "
                f"reached {1 - keep.mean():.1%}) in {time.perf_counter() - t0:.1f}s")

    table = pd.DataFrame(state.rows)
    return PruneResult(table=table, spectra=state.spectra, masks=masks, config=cfg)
