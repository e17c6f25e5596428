"""Run one benchmark and record its figures: ``python -m benchmarks <name> [--quick]``."""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib
import json
import os
import platform
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "benchmarks.md"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
HEADER = "| benchmark | result | command | machine | date |\n|---|---|---|---|---|"


def available() -> list[str]:
    return sorted(
        p.stem for p in (REPO / "benchmarks").glob("*.py") if not p.stem.startswith("_")
    )


def machine() -> str:
    import jax

    dev = jax.devices()[0]
    return f"{os.cpu_count()} CPU cores, {platform.machine()}, JAX {jax.__version__} on {dev.platform}"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def upsert_row(doc: str, name: str, row: str) -> str:
    """Replace (or add) the table row whose first cell is ``name``."""
    if BEGIN not in doc:
        doc = doc.rstrip() + f"\n\n{BEGIN}\n{HEADER}\n{END}\n"
    head, rest = doc.split(BEGIN, 1)
    table, tail = rest.split(END, 1)
    lines = [ln for ln in table.strip().splitlines() if ln.strip()]
    body = [ln for ln in lines[2:] if not ln.startswith(f"| {name} |")]
    body.append(row)
    body.sort()
    return f"{head}{BEGIN}\n{HEADER}\n" + "\n".join(body) + f"\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("name", help=f"one of: {', '.join(available())}")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run; not recorded")
    args = parser.parse_args(argv)
    if args.name not in available():
        parser.error(f"unknown benchmark {args.name!r}; choose one of: {', '.join(available())}")
    sys.path.insert(0, str(REPO))
    module = importlib.import_module(f"benchmarks.{args.name}")
    result = module.run(quick=args.quick)
    for field in ("title", "figures", "summary"):
        if field not in result:
            raise SystemExit(f"benchmark {args.name} returned no {field!r}")
    command = "python -m benchmarks " + args.name + (" --quick" if args.quick else "")
    record = {
        **result,
        "name": args.name,
        "command": command,
        "machine": machine(),
        "date": _dt.date.today().isoformat(),
    }
    print(json.dumps(record, indent=2, default=float))
    if args.quick:
        return 0
    from hgcnet_jax._io import write_json, write_text

    write_json(REPO / "docs" / "benchmarks" / f"{args.name}.json", record)
    doc = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    row = (
        f"| {args.name} | {_cell(result['summary'])} | `{command}` | "
        f"{_cell(record['machine'])} | {record['date']} |"
    )
    write_text(DOC, upsert_row(doc, args.name, row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
