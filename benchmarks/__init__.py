"""Side-by-side benchmarks against peer libraries.

Each ``benchmarks/<name>.py`` defines ``run(*, quick: bool = False) -> dict`` that
returns ``{"title": str, "figures": {str: number}, "summary": str}``; the
runner (``python -m benchmarks <name>``) adds the machine and the command, writes
``docs/benchmarks/<name>.json`` and upserts the row for ``<name>`` in the table of
``docs/benchmarks.md``. Timings never appear as assertions in tests.
"""
