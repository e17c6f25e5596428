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
