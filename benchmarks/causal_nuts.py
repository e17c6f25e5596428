"""Benchmark: NUTS fit time of the causal hypergraph SCM, and how it grows with the runs.

For each table size the same graph is fitted to two synthetic tables of that size with
:func:`hgcnet_jax.causal.fit_many`: the first fit includes compiling the NUTS program
(what a user pays once per graph and table size), the second reuses it (sampling
only). Settings: the HGCNet hypergraph with a direct B → G edge, 2 chains × 1000 draws
after 500 warm-up steps, chains vectorised in one program (warm-up and sampling in one
loop, so the NUTS kernel is compiled once), float32 on CPU. The mean number of leapfrog
steps per draw is recorded: it is what the sampling time scales with, besides the runs.

Wall times on a shared machine depend on other users' load: the 1-minute load average
and the process's CPU seconds are recorded next to them.

Run: ``python -m benchmarks causal_nuts`` (or ``python benchmarks/causal_nuts.py``).
"""

from __future__ import annotations

import os
import sys
import time
import warnings

SIZES = (50, 200, 500, 1000, 2000)


def run(*, quick: bool = False) -> dict:
    """Time NUTS fits; returns ``{"title", "figures", "summary"}``."""
    import jax

    from hgcnet_jax import causal

    sizes = (50, 200) if quick else SIZES
    draws = dict(num_warmup=200, num_samples=200) if quick else dict(num_warmup=500, num_samples=1000)
    scm = causal.SyntheticSCM()
    graph = causal.Hypergraph.paper(direct=True)
    figures: dict[str, float] = {}
    for n in sizes:
        tables = [scm.sample(n, key=jax.random.key(10 * n + i)) for i in range(2)]
        load = os.getloadavg()[0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", causal.ConvergenceWarning)
            t0, c0 = time.perf_counter(), time.process_time()
            first, second = causal.fit_many(graph, tables, key=jax.random.key(n), num_chains=2, **draws)
            total, cpu = time.perf_counter() - t0, time.process_time() - c0
        # CPU seconds of this process for both fits: robust to other users' load.
        figures[f"cpu_s_both_fits_n{n}"] = round(cpu, 2)
        figures[f"load_avg_1min_n{n}"] = round(load, 1)
        figures[f"fit_incl_compile_s_n{n}"] = round(first.wall_time_s, 2)
        figures[f"sampling_only_s_n{n}"] = round(second.wall_time_s, 2)
        figures[f"fit_many_2_tables_total_s_n{n}"] = round(total, 2)
        figures[f"mean_leapfrog_steps_n{n}"] = round(float(first.idata.sample_stats["n_steps"].mean()), 1)
        figures[f"min_ess_n{n}"] = round(first.min_ess, 0)
        figures[f"max_r_hat_n{n}"] = round(first.max_r_hat, 4)
        print(
            f"n={n}: {first.wall_time_s:.1f} s incl. compile, {second.wall_time_s:.1f} s sampling only, "
            f"{cpu:.1f} CPU-s for both fits, load {load:.1f}",
            file=sys.stderr,
            flush=True,
        )
    figures["chains"] = 2
    figures["draws_per_chain"] = draws["num_samples"]
    figures["cpu_count"] = os.cpu_count() or 0
    ref = 200 if 200 in sizes else sizes[0]
    summary = (
        f"NUTS 2x{draws['num_samples']} on {ref} runs: {figures[f'fit_incl_compile_s_n{ref}']:.1f} s incl. compile "
        f"({figures[f'sampling_only_s_n{ref}']:.1f} s sampling only; target <= 60 s) at load average "
        f"{figures[f'load_avg_1min_n{ref}']:.1f}, {figures[f'cpu_s_both_fits_n{ref}']:.1f} CPU-s for two fits; "
        + ", ".join(f"n={n}: {figures[f'sampling_only_s_n{n}']:.1f} s" for n in sizes)
        + " sampling only"
    )
    return {"title": "Causal SCM: NUTS fit time vs number of runs", "figures": figures, "summary": summary}


if __name__ == "__main__":  # pragma: no cover
    import json

    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
