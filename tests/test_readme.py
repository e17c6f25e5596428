"""The README's tour runs as written.

Every ```python block between "## A short tour" and the next "## " heading runs, in order,
in one namespace (a later block may use an earlier one's names). A block directly preceded
by an HTML comment ``<!-- readme-test: skip (why) -->`` is not run (a full-size sweep);
its names are then missing, so a later block that needs them defines them or fails here.
Shell blocks (```bash) are never run: the setup commands are tested by tests/test_cli.py.
"""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"(<!-- readme-test: skip[^>]*-->\s*)?```(\w+)\n(.*?)```", re.S)


def tour_blocks() -> list[tuple[bool, str, str]]:
    """``(skipped, language, code)`` for every fenced block of the tour, in order."""
    text = README.read_text()
    start = text.index("## A short tour")
    end = text.index("\n## ", start + 1)
    return [(bool(m.group(1)), m.group(2), m.group(3)) for m in BLOCK.finditer(text[start:end])]


def test_the_tour_has_a_runnable_own_model_block():
    blocks = tour_blocks()
    runnable = [code for skipped, lang, code in blocks if lang == "python" and not skipped]
    assert any("make_task" in c and "nn.Module" in c for c in runnable)
    assert all(lang in ("python", "bash") for _, lang, _ in blocks)


def test_the_tour_runs(monkeypatch):
    pytest.importorskip("flax")
    namespace: dict = {"__name__": "readme"}
    ran = 0
    for i, (skipped, lang, code) in enumerate(tour_blocks()):
        if lang != "python":
            continue
        if skipped:
            # its imports and the graph it defines are what later blocks build on: run those lines only
            keep = _definitions(code)
            exec(compile(keep, f"README tour block {i} (definitions)", "exec"), namespace)
            continue
        exec(compile(code, f"README tour block {i}", "exec"), namespace)
        ran += 1
    assert ran >= 1
    table = namespace["table"]
    assert {"noise_b_simple", "noise_b_simple_se", "sharp_lambda_max_err"} <= set(table.columns)


def _definitions(code: str) -> str:
    """The import lines and the ``graph = hg.Hypergraph.paper(...)`` statement of a skipped block."""
    lines = [ln for ln in code.splitlines() if ln.startswith(("import ", "from "))]
    m = re.search(r"^graph = hg\.Hypergraph\.paper\(.*?^\)", code, re.S | re.M)
    if m:
        lines.append(m.group(0))
    return "\n".join(lines)
