"""``hgcnet prune``: Granger-causal pruning against magnitude and random pruning.

Example::

    hgcnet prune --model lenet5 --dataset fashion_mnist --method granger,magnitude,random \\
        --seeds 3 --levels 0.5,0.8,0.9,0.95,0.98 --out hgcnet-out/prune-lenet5

Writes into ``--out``: ``state.json`` and ``*.npz`` (resumable: rerunning the same
command continues after the last finished level; a different configuration is
refused unless ``--overwrite``), ``table.csv`` (one row per method × seed × level),
``report.md`` (accuracy vs sparsity, phase-shift points, λ_max), ``curves.png`` and
``spectra.png``.

``--method granger_structured`` removes whole output units (neurons / conv filters) by a
group Lasso per layer, never those of the classifier (the layers whose width equals the
number of classes). ``--features momentum`` uses the paper's momentum features.
Recording streams sufficient statistics by default (``--recording stream``; memory
bound in ``hgcnet_jax.prune.record``); ``--spill`` keeps large layers' columns on disk.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main", "build_parser", "report_markdown"]


class _UsageError(Exception):
    pass


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hgcnet prune", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="lenet5", help="model registry name (default lenet5)")
    p.add_argument("--dataset", default="fashion_mnist", help="dataset name (default fashion_mnist)")
    p.add_argument("--data-root", default=None, help="folder holding the dataset files")
    p.add_argument("--method", default="granger,magnitude,random",
                   help="comma-separated subset of granger, magnitude, random, granger_structured "
                        "(default granger,magnitude,random)")
    p.add_argument("--seeds", type=int, default=3, help="number of seeds, trained together (default 3)")
    p.add_argument("--levels", type=_floats, default=(0.5, 0.8, 0.9, 0.95, 0.98),
                   help="sparsity schedule, one level per iteration (default 0.5,0.8,0.9,0.95,0.98)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--n-train", type=int, default=None, help="random subset of the training split")
    p.add_argument("--n-test", type=int, default=None, help="random subset of the test split")
    p.add_argument("--pretrain-steps", type=int, default=300)
    p.add_argument("--prune-steps", type=int, default=100, help="SGD steps (= regression rows) per iteration")
    p.add_argument("--final-steps", type=int, default=150)
    p.add_argument("--mode", choices=("rank", "exact"), default="rank", help="Granger keep rule")
    p.add_argument("--scope", choices=("global", "layer"), default="global", help="Granger Lasso scope")
    p.add_argument("--alpha", type=float, default=0.05, help="Lasso penalty, relative to alpha_max")
    p.add_argument("--target", choices=("same_batch", "consecutive"), default="same_batch")
    p.add_argument("--features", choices=("sq", "momentum"), default="sq",
                   help="Granger features: squared updates, or the momentum variant (3 per weight)")
    p.add_argument("--recording", choices=("stream", "full"), default="stream",
                   help="stream sufficient statistics while recording (default) or keep every update")
    p.add_argument("--gram-max-features", type=int, default=1024,
                   help="fit groups up to this many columns keep only their Gram matrix (default 1024)")
    p.add_argument("--spill", action="store_true", help="keep large groups' recorded columns on disk (memmap)")
    p.add_argument("--solver", choices=("auto", "ws", "cd", "fista", "sgd"), default="auto")
    p.add_argument("--out", default=None, help="output folder (default hgcnet-out/prune-<dataset>-<model>)")
    p.add_argument("--overwrite", action="store_true", help="discard a previous run in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def report_markdown(result, title: str) -> str:
    """A Markdown report: accuracy table, phase shifts, λ_max."""
    from hgcnet_jax.prune.analysis import phase_shift, summarize

    s = summarize(result.table)
    lines = [f"# {title}", "", "| method | level | sparsity | test acc (mean ± sd) | λ_max (mean ± sd) |", "|---|---|---|---|---|"]
    for r in s.itertuples():
        lam = "–" if r.lam_mean != r.lam_mean else f"{r.lam_mean:.3f} ± {0 if r.lam_sd != r.lam_sd else r.lam_sd:.3f}"
        lines.append(f"| {r.method} | {r.level} | {r.sparsity:.3f} | {r.acc_mean:.4f} ± {0 if r.acc_sd != r.acc_sd else r.acc_sd:.4f} | {lam} |")
    lines += ["", "| method | phase-shift sparsity | bootstrap sd | 5–95 % |", "|---|---|---|---|"]
    for m in sorted(set(result.table.method) - {"dense"}):
        d = result.table[result.table.method == m]
        try:
            ps = phase_shift(d.sparsity.to_numpy(), d.test_acc.to_numpy(), n_boot=200)
            lines.append(f"| {m} | {ps.sparsity:.3f} | {ps.sd:.3f} | {ps.lo:.3f}–{ps.hi:.3f} |")
        except ValueError as e:
            lines.append(f"| {m} | – ({e}) | | |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    try:
        return _run(args)
    except _UsageError as e:
        print(f"hgcnet prune: error: {e}", file=sys.stderr)
        return 2


def _run(args) -> int:
    import dataclasses

    import jax
    import numpy as np

    from hgcnet_jax import _io
    from hgcnet_jax.prune.analysis import plot_curves, plot_spectra
    from hgcnet_jax.prune.procedure import METHODS, PruneConfig, run_pruning

    methods = [m.strip() for m in args.method.split(",") if m.strip()]
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        raise _UsageError(f"--method: choose from {', '.join(METHODS)} (comma-separated), got {args.method!r}")
    if args.seeds < 1:
        raise _UsageError(f"--seeds must be >= 1, got {args.seeds}")
    try:
        cfg = PruneConfig(seeds=tuple(range(args.seeds)), batch_size=args.batch_size, pretrain_steps=args.pretrain_steps,
                          prune_steps=args.prune_steps, final_steps=args.final_steps, levels=tuple(args.levels),
                          granger_mode=args.mode, granger_scope=args.scope, alpha=args.alpha, target=args.target,
                          solver=args.solver, features=args.features, recording=args.recording,
                          gram_max_features=args.gram_max_features, spill_columns=args.spill,
                          curvature_levels=tuple(x for x in args.levels if abs(x - 0.9) < 1e-9) or (args.levels[-1],))
    except ValueError as e:
        raise _UsageError(str(e).replace("PruneConfig.", "--").replace("_", "-")) from None
    from hgcnet_jax.data import load
    from hgcnet_jax.train import make_task

    try:
        ds = load(args.dataset, root=args.data_root)
    except Exception as e:  # the data layer's errors already say what to do
        raise _UsageError(f"--dataset {args.dataset}: {str(e).splitlines()[0]}") from None
    rng = np.random.default_rng(0)
    splits = dict(ds.splits)
    for name, n in (("train", args.n_train), ("test", args.n_test)):
        if n is not None:
            if not 1 <= n <= len(splits[name]):
                raise _UsageError(f"--n-{name} must be in [1, {len(splits[name])}], got {n}")
            splits[name] = np.sort(rng.choice(splits[name], n, replace=False)).astype(np.int32)
    if args.n_train is not None or args.n_test is not None:
        ds = dataclasses.replace(ds, splits=splits)
    try:
        task = make_task(ds, args.model)
    except (KeyError, ValueError) as e:
        raise _UsageError(f"--model {args.model}: {e}") from None
    out = Path(args.out or f"hgcnet-out/prune-{args.dataset}-{args.model}")
    if args.overwrite and out.exists():
        shutil.rmtree(out)
    try:
        _io.ensure_writable_dir(out, what="output folder (--out)")
    except PermissionError as e:
        raise _UsageError(str(e)) from None

    total = 2 + len(methods) * len(cfg.levels)
    bar = None
    if not args.no_progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc="prune", unit="phase")

    def progress(msg: str) -> None:
        if bar is not None:
            bar.set_postfix_str(msg[:60])
            bar.update(1)
        else:
            print(msg, file=sys.stderr)

    try:
        res = run_pruning(task, cfg, key=jax.random.key(0), methods=methods, out_dir=out, progress=progress)
    except ValueError as e:
        raise _UsageError(str(e)) from None
    finally:
        if bar is not None:
            bar.close()
    _io.write_text(out / "table.csv", res.table.to_csv(index=False))
    title = f"Pruning {args.model} on {args.dataset}: {', '.join(methods)}"
    plot_curves(res.table, out / "curves.png", title=title)
    plot_spectra(res.spectra, out / "spectra.png", title="Hessian spectral density (seed 0)")
    _io.write_text(out / "report.md", report_markdown(res, title))
    print(f"report: {out / 'report.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
