"""Helpers shared by the training experiments (not part of the library)."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import jax

from hgcnet_jax import _io

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "docs" / "results.md"


def data_root() -> str | None:
    env = os.environ.get("HGCNET_DATA_DIR")
    if env:
        return env
    guess = REPO.parent / "shared" / "data"
    return str(guess) if guess.is_dir() else None


def machine() -> str:
    return f"{os.cpu_count()} CPU cores ({platform.machine()}), JAX {jax.__version__} on {jax.devices()[0].platform}"


def open_state(folder: Path, fresh: dict) -> dict:
    """The experiment's ``state.json`` in ``folder``: loaded if its ``config`` is ``fresh["config"]``, else written fresh.

    A folder holding a run of another plan is refused with what to do (``SystemExit``).
    """
    import json

    _io.ensure_writable_dir(folder, what="experiment state folder")
    sp = folder / "state.json"
    if not sp.exists():
        _io.write_json(sp, fresh)
        return fresh
    state = json.loads(sp.read_text())
    if state["config"] != fresh["config"]:
        raise SystemExit(f"{sp} holds a run with another plan; pass --overwrite or use --out")
    return state


def write_section(name: str, markdown: str) -> None:
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    _io.upsert_section(RESULTS, name, markdown.rstrip() + f"\n\n_Run {stamp} on {machine()}._\n")


def parse_cli(doc: str, name: str, state_dir: Path, argv=None, *, forget: tuple[str, ...] = ("*.csv",)):
    """The flags every resumable experiment takes, its state folder and a timestamped ``say``.

    ``--quick`` (a tiny smoke run, nothing written to docs/), ``--out DIR`` (the state folder:
    default ``state_dir``, or ``hgcnet-out/experiments/<name>_quick`` with ``--quick``),
    ``--overwrite`` (forget the folder's ``state.json`` and the files matching ``forget``) and
    ``--report-only`` (rewrite the section from the state). Returns ``(args, folder, say)``.
    """
    import argparse

    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny smoke run; writes nothing to docs/")
    ap.add_argument("--out", type=Path, default=None, help=f"state folder (default {state_dir.relative_to(REPO)})")
    ap.add_argument("--overwrite", action="store_true", help="discard the state folder's run and start afresh")
    ap.add_argument("--report-only", action="store_true", help="only rewrite the section from the state")
    args = ap.parse_args(argv)
    folder = args.out or (REPO / "hgcnet-out" / "experiments" / f"{name}_quick" if args.quick else state_dir)
    if args.overwrite and folder.exists():
        for f in [p for g in forget for p in folder.glob(g)] + [folder / "state.json"]:
            f.unlink(missing_ok=True)
    t0 = time.perf_counter()

    def say(msg: str) -> None:
        print(f"[{time.perf_counter() - t0:7.1f}s] {msg}", flush=True)

    return args, folder, say


def graph_task(dataset: str, model: str, subset_nodes: int | None, batch_sizes) -> tuple:
    """``(dataset, task, n_train)`` of a node-classification experiment: the full 60/20/20 split of
    ``dataset`` (files under :func:`data_root`), or with ``subset_nodes`` a synthetic graph of that
    many nodes (the quick runs: no files). A batch size larger than the training split is refused
    (``SystemExit``), naming them.
    """
    from hgcnet_jax.data import load
    from hgcnet_jax.train import make_task

    ds = (load(dataset, num_nodes=subset_nodes) if subset_nodes
          else load(dataset, root=data_root(), split="full"))
    n_train = int(len(ds.splits["train"]))
    too_big = [b for b in batch_sizes if b > n_train]
    if too_big:
        raise SystemExit(f"batch sizes {too_big} exceed the {n_train} training nodes of {dataset}")
    return ds, make_task(ds, model), n_train
