"""Run ``hgcnet study`` end to end and record its report in docs/results.md (and its time in docs/benchmarks.md).

Usage::

    python experiments/study_batch_size.py quick            # the embedded default (`hgcnet study`)
    python experiments/study_batch_size.py cora             # `hgcnet study --dataset cora --model gcn`

Each setting writes its own marker-delimited section of ``docs/results.md``
(``<!-- study_<name>:begin -->`` … ``<!-- study_<name>:end -->``), copies the
study's PNG figures to ``docs/results/study_<name>/`` and upserts a row
``study_<name>`` in the table of ``docs/benchmarks.md`` with the wall-clock time.
The study folder is ``hgcnet-out/experiments/study_<name>`` (git-ignored); re-running
resumes it, and the recorded time is that of the run that computed it.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hgcnet_jax import _io, study  # noqa: E402
from hgcnet_jax.cli import build_parser, config_from_args  # noqa: E402

SETTINGS = {
    "quick": ([], "hgcnet study"),
    "cora": (["--dataset", "cora", "--model", "gcn"], "hgcnet study --dataset cora --model gcn"),
}
FIGURES = ("recommendation", "interventional", "ate", "effects", "hypergraph", "mediators", "loo")


def _machine() -> str:
    import jax

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{os.cpu_count()} CPU cores, {platform.machine()}, JAX {jax.__version__} on {jax.devices()[0].platform}"
            f" (load average {load:.1f} at the end)")


def _upsert(doc: str, begin: str, end: str, body: str) -> str:
    block = f"{begin}\n{body.rstrip()}\n{end}"
    if begin in doc and end in doc:
        head, rest = doc.split(begin, 1)
        _, tail = rest.split(end, 1)
        return head + block + tail
    return doc.rstrip() + "\n\n" + block + "\n"


def _fmt(x: float, f: str = "+.4f") -> str:
    return format(float(x), f)


def section(name: str, command: str, result: study.StudyResult, seconds: float, machine: str) -> str:
    s = result.summary
    cfg = result.config
    rec, ate, loo = s["recommendation"], s["ate"], s["loo"]
    lines = [
        f"## Batch-size study: `{command}`",
        "",
        f"Produced by `python experiments/study_batch_size.py {name}` on {machine}, {_dt.date.today().isoformat()}: "
        f"{len(result.runs)} runs ({len(cfg.train.batch_sizes)} batch sizes × {cfg.train.seeds} seeds, "
        f"{cfg.train.epochs} epochs, {cfg.train.optimizer} lr {cfg.train.lr}), "
        f"model `{cfg.model.name}` on `{cfg.data.name}`; end-to-end wall-clock **{seconds:.0f} s** "
        f"(phases: " + ", ".join(f"{k} {v['seconds']:.0f} s" for k, v in s.get("timings", {}).items()) + ").",
        "",
    ]
    crit = s.get("criticism")
    if crit:
        lines += _criticism_lines(crit, s)
    lines += [
        f"- **Recommendation** ({rec.get('label', 'model-based')}): B = {rec['best_batch_size']}, "
        f"{'mean of its runs' if rec.get('source') == 'arms' else 'E[G | do(B)]'} = {rec['best_mean']:.4f} "
        f"[{rec['best_lo']:.4f}, {rec['best_hi']:.4f}]; P(beats B = {rec['current_batch_size']}) = "
        f"{rec['prob_beats_current']:.3f}; {rec['best_time_per_epoch_s']:.3g} s per epoch "
        f"({rec['time_ratio_vs_current']:.2f}× the time of B = {rec['current_batch_size']}).",
        f"- **ATE** E[G | do(B={ate['b_small']})] − E[G | do(B={ate['b_large']})] = {_fmt(ate['mean'])} "
        f"({ate['mass']:.0%} interval [{_fmt(ate['lo'])}, {_fmt(ate['hi'])}]), P(ATE > 0) = {ate['prob_positive']:.3f}; "
        f"raw difference of means {_fmt(ate['observed'])}, permutation p = {ate['p_value']:.3g}. "
        "The paper reports ≈ +0.024 averaged over its datasets.",
        f"- **Effects** (graph '{s['effects'].get('graph', 'hypergraph')}'"
        + ("" if s["effects"].get("trusted", True) else ", which fails its criticism: not findings") + "): "
        + "; ".join(f"{k} {_fmt(v['mean'])} [{_fmt(v['lo'])}, {_fmt(v['hi'])}]"
                                     for k, v in s["effects"]["rows"].items()) + ".",
        "- **Sensitivity**: " + s["effects"].get("sensitivity", {}).get("note", "not computed"),
        "- **Hypergraph vs pairwise (PSIS-LOO)**: " + loo["verdict"],
        "- **Refutations**: " + ("; ".join(f"{r['name']}: {'passed' if r['passed'] else 'FAILED'}"
                                         for r in s.get("refutations", [])) or "none") + ".",
        "- **MCMC**: " + ("diagnostics fine" if s["diagnostics"]["ok"] else "POOR diagnostics") + " ("
        + "; ".join(f"{m}: max R-hat {d['max_rhat']:.3f}, min bulk ESS {d['min_ess_bulk']:.0f}, "
                    f"{d['divergences']} divergences" for m, d in s["diagnostics"]["models"].items()) + ").",
    ]
    shown = [w for w in s.get("warnings", []) if not crit or w != crit.get("headline")]  # the headline is above
    if shown:
        lines.append("- **Warnings**: " + " ".join(shown))
    lines.append("")
    lines.append("| B | runs | " + " | ".join(s["per_batch_size"]["columns"][1:]) + " |")
    lines.append("|---" * (len(s["per_batch_size"]["columns"]) + 1) + "|")
    for row in s["per_batch_size"]["rows"]:
        cells = [str(row["batch_size"]), str(row["runs"])]
        cells += [format(row[c], ".4g") if isinstance(row[c], float) else str(row[c])
                  for c in s["per_batch_size"]["columns"][1:]]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for fig in FIGURES:
        lines.append(f"![{fig}](results/study_{name}/{fig}.png)")
    return "\n".join(lines)


def _criticism_lines(crit: dict, s: dict) -> list[str]:
    """The criticism block: the verdict, the arms against the answering model, the candidates."""
    name = crit["answered_by"]
    lines = [f"- **Causal model against the experiment**: {crit['headline']}", "",
             f"| B | runs | arm mean [bootstrap {crit['prob']:.0%}] | E[G \\| do(B)] of `{name}` [{crit['prob']:.0%}] | |",
             "|---|---|---|---|---|"]
    for r in crit["arms"][name]:
        lines.append(f"| {r['batch_size']} | {r['n_runs']} | {r['arm_mean']:.4f} [{r['arm_lo']:.4f}, {r['arm_hi']:.4f}] "
                     f"| {r['model_mean']:.4f} [{r['model_lo']:.4f}, {r['model_hi']:.4f}] | "
                     f"{'**miss**' if r['miss'] else 'agrees'} |")
    lines += ["", "| candidate graph | Δelpd ± SE | criticism | arm misses | rejected independences | falsification p "
                  "| ATE [interval] | first reason |", "|---|---|---|---|---|---|---|---|"]
    for r in crit["candidates"]:
        why = (r["reasons"][0] if r["reasons"] else "").replace("|", "\\|")
        lines.append(f"| `{r['candidate']}`{' (chosen)' if r['chosen'] else ''} | {r['d_elpd']:+.2f} ± {r['se']:.2f} | "
                     f"{'passes' if r['ok'] else 'fails'} | {r['arm_misses']} | {r['rejected_independences']} | "
                     f"{r['falsification_p']:.3f} | {r['ate_mean']:+.4f} [{r['ate_lo']:+.4f}, {r['ate_hi']:+.4f}] | "
                     f"{why} |")
    lines.append("")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("setting", choices=sorted(SETTINGS))
    parser.add_argument("--overwrite", action="store_true", help="recompute from scratch")
    parser.add_argument("--chunk-steps", type=int, default=None,
                        help="the sweep engine's chunk_steps (its checkpoints record it: pass the value a killed run "
                             "used to resume it; the recorded Cora run used 2000, the engine's default then)")
    args = parser.parse_args(argv)
    if args.chunk_steps is not None:
        import functools

        from hgcnet_jax import train

        train.sweep = functools.partial(train.sweep, chunk_steps=args.chunk_steps)
    flags, command = SETTINGS[args.setting]
    config = config_from_args(build_parser().parse_args(["study", *flags]))
    out = REPO / "hgcnet-out" / "experiments" / f"study_{args.setting}"
    # as `hgcnet study` does: JAX's persistent compilation cache, here a folder of this study's
    # own (cold on a fresh or --overwrite run, so the recorded time is a first run's)
    cache = out.parent / f"study_{args.setting}.xla-cache"
    if args.overwrite:
        shutil.rmtree(cache, ignore_errors=True)
    from hgcnet_jax import compile_cache

    compile_cache.enable(cache)
    t0 = time.perf_counter()
    result = study.run(config, out=out, overwrite=args.overwrite)
    seconds = time.perf_counter() - t0
    if result.resumed and "sweep" in result.resumed:
        t = result.summary.get("timings", {})
        seconds = sum(v["seconds"] for v in t.values() if v.get("seconds") == v.get("seconds"))
        print(f"study resumed; recording the computed phases' time, {seconds:.0f} s", file=sys.stderr)
    machine = _machine()
    fig_dir = REPO / "docs" / "results" / f"study_{args.setting}"
    fig_dir.mkdir(parents=True, exist_ok=True)
    for fig in FIGURES:
        shutil.copyfile(out / "plots" / f"{fig}.png", fig_dir / f"{fig}.png")
    doc_path = REPO / "docs" / "results.md"
    doc = doc_path.read_text() if doc_path.exists() else "# Results\n"
    begin, end = f"<!-- study_{args.setting}:begin -->", f"<!-- study_{args.setting}:end -->"
    _io.write_text(doc_path, _upsert(doc, begin, end, section(args.setting, command, result, seconds, machine)))

    from benchmarks.__main__ import DOC, upsert_row

    bench = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    row = (f"| study_{args.setting} | `{command}` end to end: {seconds:.0f} s wall-clock "
           f"({len(result.runs)} runs; sweep, mediators, {len(result.summary.get('criticism', {}).get('candidates', [])) or 2} "
           "candidate NUTS fits, criticism, effects, refutations, report) | "
           f"`python experiments/study_batch_size.py {args.setting}` | {machine} | {_dt.date.today().isoformat()} |")
    _io.write_text(DOC, upsert_row(bench, f"study_{args.setting}", row))
    print(f"{command}: {seconds:.0f} s; report {result.report}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
