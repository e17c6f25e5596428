"""The mediator measurement of the Cora paper-preset sweep (6 B x 10 seeds), every ``measure`` default.

The sweep is the ``paper`` preset of ``hgcnet study --dataset cora`` (GCN, the
``full`` 60/20/20 split, batch sizes 16 ... 512, 10 seeds, 30 epochs of SGD at lr 0.2,
key 0), trained with orbax checkpoints under ``--workdir`` so that a killed run resumes.
The measurement is ``mediators.measure(task, result, key=key(0))`` with nothing else
set: all training nodes, every mediator, the groups and chunks chosen from the default
memory budget. Each finished group is logged with a timestamp (a stall would show as a
gap), and the process's peak resident memory is read from ``getrusage`` after it.

Two phases, in separate processes so that the measurement's peak memory is its own::

    python -m benchmarks.curvature_measure_cora --phase sweep
    python -m benchmarks.curvature_measure_cora --phase measure

``python -m benchmarks curvature_measure_cora`` runs both in this process (the peak then
includes the sweep's).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

WORKDIR = Path(os.environ.get("HGCNET_BENCH_WORKDIR", "/tmp/hgcnet_bench_cora"))


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] load {os.getloadavg()[0]:.2f} | {msg}", flush=True)


def _sweep(workdir: Path, quick: bool):
    import jax

    from hgcnet_jax import data, train
    from hgcnet_jax.config import PAPER_BATCH_SIZES, PAPER_SEEDS

    ds = data.load("cora", split="full", seed=0)
    task = train.make_task(ds, "gcn")
    bs = list(PAPER_BATCH_SIZES)[:2] if quick else list(PAPER_BATCH_SIZES)
    seeds = 2 if quick else PAPER_SEEDS
    runs = train.grid(batch_size=bs, seed=list(range(seeds)), lr=0.2, optimizer="sgd", base_batch_size=min(bs))
    budget = train.Budget(epochs=2 if quick else 30)
    t0 = time.perf_counter()
    result = train.sweep(task, runs, budget, key=jax.random.key(0), checkpoint_dir=workdir / "sweep", progress=False)
    return task, result, time.perf_counter() - t0


def _measure(task, result, log_path: Path | None = None) -> dict:
    import jax
    import numpy as np

    from hgcnet_jax import mediators

    stamps: list[tuple[float, int]] = []
    t0 = time.perf_counter()

    def tick(n):
        stamps.append((time.perf_counter() - t0, n))
        done = sum(k for _, k in stamps)
        _log(f"measure: {done}/{len(result.runs)} runs after {stamps[-1][0]:.1f} s")

    plan = mediators.plan_groups(task, result)
    _log(f"measure plan: {plan}")
    table = mediators.measure(task, result, key=jax.random.key(0), progress=tick)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    gaps = np.diff([0.0] + [s for s, _ in stamps])
    if log_path is not None:
        table.to_csv(log_path.with_suffix(".csv"), index=False)
    values = [c for c in table.columns if c in mediators.ERRORS]
    med_cols = [c for v in values for c in (v, mediators.error_column(v)) if c in table.columns]
    missing_err = [c for c in values if mediators.error_column(c) not in table.columns]
    nan = {c: int(table[c].isna().sum()) for c in med_cols if table[c].isna().any()}
    return {
        "runs": int(len(result.runs)),
        "runs_measured": int(len(table)),
        "measure_s": wall,
        "group_s": [float(g) for g in gaps],
        "longest_group_s": float(gaps.max()),
        "peak_rss_bytes": int(peak),
        "plan": {k: (v if isinstance(v, (int, float, str)) or v is None else str(v)) for k, v in plan.items()},
        "columns": med_cols,
        "value_columns_without_error_column": missing_err,
        "nan_counts": nan,
        "b_simple_min": float(table["noise_b_simple"].min()),
        "load_avg_end": os.getloadavg()[0],
    }


def run(*, quick: bool = False) -> dict:
    workdir = WORKDIR / ("quick" if quick else "paper")
    task, result, sweep_s = _sweep(workdir, quick)
    fig = _measure(task, result)
    fig["sweep_s_this_process"] = sweep_s
    summary = (
        f"Cora paper preset ({fig['runs']} runs), measure() with every default: {fig['runs_measured']} runs measured "
        f"in {fig['measure_s']:.0f} s (longest group {fig['longest_group_s']:.0f} s), peak RSS "
        f"{fig['peak_rss_bytes'] / 2**30:.2f} GiB (incl. the sweep in this process), budget "
        f"{fig['plan']['memory_budget']}; NaN cells {fig['nan_counts'] or 'none'}; load {fig['load_avg_end']:.1f}"
    )
    return {"title": "Mediators of the Cora paper sweep, default settings", "figures": fig, "summary": summary}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--phase", choices=("sweep", "measure"), required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=None, help="JSON of the measure phase's figures")
    args = ap.parse_args()
    workdir = WORKDIR / ("quick" if args.quick else "paper")
    _log(f"phase {args.phase}, workdir {workdir}")
    task, result, sweep_s = _sweep(workdir, args.quick)
    _log(f"sweep ready ({len(result.runs)} runs, {sweep_s:.1f} s in this process)")
    if args.phase == "measure":
        fig = _measure(task, result, args.out)
        _log(json.dumps(fig, default=str))
        if args.out is not None:
            args.out.write_text(json.dumps(fig, indent=2, default=str))


if __name__ == "__main__":
    main()
