"""``hgcnet study --devices 2`` against ``--devices 1`` end to end, and a resume across device counts.

Each side is the CLI in a fresh process (``python -m hgcnet_jax.cli study``), on the embedded
default (the quick preset; ``--quick``: the tiny one), with ``--no-compile-cache`` so that no
side reuses programs another compiled. On a CPU ``--devices 2`` restarts the command with two
host devices (``XLA_FLAGS=--xla_force_host_platform_device_count=2``) and shards each bucket's
runs over them, and each mediator call's runs; the causal fits run as with one device.

1. ``--devices 1`` into folder ``one``; 2. ``--devices 2`` into folder ``two``: end-to-end
   seconds, the sweep and mediator phases' seconds (``phases.json``), and the runs tables compared
   (largest absolute difference over the numeric columns, timing columns left out).
3. ``--devices 1`` into folder ``resumed``, killed with SIGKILL once the sweep has saved a
   checkpoint of its second bucket, then ``--devices 2`` on the same folder: it resumes the
   sweep and its runs table is compared with ``one``'s.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TIMING = ["wall_time_s", "bucket_wall_time_s", "bucket_compile_time_s"]


def _cmd(preset: str, devices: int, out: Path) -> list[str]:
    return [sys.executable, "-m", "hgcnet_jax.cli", "study", "--preset", preset, "--devices", str(devices),
            "--out", str(out), "--no-compile-cache", "--no-progress"]


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "HGCNET_HOST_DEVICES")}


def _study(preset: str, devices: int, out: Path) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(_cmd(preset, devices, out), env=_env(), capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"hgcnet study --devices {devices} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - t0


def _killed_mid_sweep(preset: str, out: Path) -> None:
    proc = subprocess.Popen(_cmd(preset, 1, out), env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    second = out / "checkpoints" / "sweep" / "bucket_001"
    while proc.poll() is None:
        if second.is_dir() and any(p.name.isdigit() for p in second.iterdir()):
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.wait()
    if proc.returncode != -signal.SIGKILL:
        raise RuntimeError(f"the study to interrupt ended by itself (status {proc.returncode}); nothing was resumed")


def _runs(out: Path):
    import pandas as pd

    return pd.read_parquet(out / "runs.parquet").drop(columns=TIMING)


def _max_diff(a, b) -> float:
    import numpy as np
    import pandas as pd

    if list(a.columns) != list(b.columns) or len(a) != len(b):
        return float("inf")
    num = [c for c in a.columns if pd.api.types.is_numeric_dtype(a[c])]
    other = [c for c in a.columns if c not in num]
    if not a[other].equals(b[other]):
        return float("inf")
    return max(float(np.nanmax(np.abs(a[c].to_numpy(float) - b[c].to_numpy(float)))) if len(a) else 0.0 for c in num)


def _phase_seconds(out: Path, phase: str) -> float:
    return float(json.loads((out / "phases.json").read_text())[phase]["seconds"])


def _sweep_seconds(out: Path) -> float:
    return _phase_seconds(out, "sweep")


def run(*, quick: bool = False) -> dict:
    preset = "tiny" if quick else "quick"
    root = Path(tempfile.mkdtemp(prefix="hgcnet-bench-devices-"))
    try:
        t1 = _study(preset, 1, root / "one")
        t2 = _study(preset, 2, root / "two")
        one, two = _runs(root / "one"), _runs(root / "two")
        _killed_mid_sweep(preset, root / "resumed")
        t_resume = _study(preset, 2, root / "resumed")
        resumed = _runs(root / "resumed")
        phases2 = json.loads((root / "two" / "phases.json").read_text())["sweep"]
        figures = {
            "preset": preset,
            "runs": len(one),
            "devices_1_s": round(t1, 1),
            "devices_2_s": round(t2, 1),
            "end_to_end_ratio": round(t1 / t2, 3),
            "sweep_devices_1_s": _sweep_seconds(root / "one"),
            "sweep_devices_2_s": _sweep_seconds(root / "two"),
            "sweep_ratio": round(_sweep_seconds(root / "one") / _sweep_seconds(root / "two"), 3),
            "mediators_devices_1_s": _phase_seconds(root / "one", "mediators"),
            "mediators_devices_2_s": _phase_seconds(root / "two", "mediators"),
            "mediators_ratio": round(_phase_seconds(root / "one", "mediators")
                                     / _phase_seconds(root / "two", "mediators"), 3),
            "idle_replicas_devices_2": phases2.get("idle_replicas"),
            "tables_max_abs_diff": _max_diff(two, one),
            "tables_bit_identical": bool(two.equals(one)),
            "resume_after_sigkill_s": round(t_resume, 1),
            "resumed_table_max_abs_diff": _max_diff(resumed, one),
            "resumed_bit_identical": bool(resumed.equals(one)),
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return {"title": "study on 1 vs 2 devices", "figures": figures, "summary": summary_of(figures)}


def summary_of(f: dict) -> str:
    """The benchmarks.md row of figures ``f``."""
    same = "bit-identical" if f["tables_bit_identical"] else f"differ by at most {f['tables_max_abs_diff']:.1e}"
    resumed = ("bit-identical" if f["resumed_bit_identical"]
               else f"max diff {f['resumed_table_max_abs_diff']:.1e}")
    return (f"hgcnet study ({f['preset']} preset, {f['runs']} runs) --devices 2 over --devices 1 on this CPU: end to "
            f"end {f['end_to_end_ratio']:.2f}x (--devices 1 {f['devices_1_s']:.0f} s, --devices 2 "
            f"{f['devices_2_s']:.0f} s), sweep alone {f['sweep_ratio']:.2f}x ({f['sweep_devices_1_s']:.1f} s, "
            f"{f['sweep_devices_2_s']:.1f} s), mediators {f['mediators_ratio']:.2f}x (sharded too; the causal fits are "
            f"not); runs tables {same}; a --devices 1 "
            f"study SIGKILLed mid-sweep and resumed with --devices 2: {resumed} to the uninterrupted table")
