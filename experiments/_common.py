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


def write_section(name: str, markdown: str) -> None:
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    _io.upsert_section(RESULTS, name, markdown.rstrip() + f"\n\n_Run {stamp} on {machine()}._\n")
