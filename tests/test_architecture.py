"""The package's module import graph has no cycle: data flows one way (read with ``ast``, nothing is imported).

Every ``import`` counts, at module level or inside a function: a deferred import is
still a dependency, and two modules that reach each other are one concept split in two.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "hgcnet_jax"

#: Cycles that are known and owned elsewhere; the test fails once one of them is gone, so
#: that this list only shrinks. (The model registry's circle is gone: the registry lives in
#: ``models.registry``, which the model modules import and ``models`` imports after it.)
KNOWN_CYCLES: list[set[str]] = []


def _modules() -> dict[str, tuple[Path, bool]]:
    """``{dotted name: (path, is_package)}`` of every module of the package."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_pkg else parts)] = (path, is_pkg)
    return out


def import_graph() -> dict[str, set[str]]:
    """``{module: modules of the package it imports}``.

    ``from a import b`` is an edge to ``a.b`` when that is a module, else to ``a``. The
    implicit import of a module's parent packages is not an edge (Python runs a package's
    ``__init__`` before its modules, whoever imports them).
    """
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, (path, is_pkg) in mods.items():
        here = name if is_pkg else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                graph[name] |= {a.name for a in node.names if a.name in mods}
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here.split(".")[: len(here.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                for a in node.names:
                    sub = f"{target}.{a.name}"
                    if sub in mods:
                        graph[name].add(sub)
                    elif target in mods:
                        graph[name].add(target)
        graph[name].discard(name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(comp)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_reader_sees_relative_absolute_and_deferred_imports():
    g = import_graph()
    assert "hgcnet_jax.causal.hypergraph" in g["hgcnet_jax.causal.data"]  # from .hypergraph import ...
    assert "hgcnet_jax.causal" in g["hgcnet_jax"]  # from hgcnet_jax import causal
    assert "hgcnet_jax.models.cnn" in g["hgcnet_jax.models"]  # from hgcnet_jax.models import cnn
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]


def test_no_import_cycle_in_the_package():
    found = cycles(import_graph())
    new = [c for c in found if c not in KNOWN_CYCLES]
    assert new == [], f"import cycle(s): {[sorted(c) for c in new]}"
    gone = [c for c in KNOWN_CYCLES if c not in found]
    assert gone == [], f"no longer a cycle, remove from KNOWN_CYCLES: {[sorted(c) for c in gone]}"


@pytest.mark.parametrize("module, allowed", [
    ("data", {"hypergraph"}),
    ("identify", {"hypergraph"}),  # beside data: a table against a graph, no model
    ("model", {"hypergraph", "data"}),
    ("fit", {"hypergraph", "data", "identify", "model", "convergence"}),
    ("inference", {"hypergraph", "data", "identify", "model", "convergence", "fit"}),
])
def test_causal_layers_import_only_the_layers_below(module, allowed):
    """The fitted model is a leaf under the queries: fit.py reaches no query and no inference."""
    g = import_graph()
    seen, todo = set(), [f"hgcnet_jax.causal.{module}"]
    while todo:
        for w in g[todo.pop()] - seen:
            seen.add(w)
            todo.append(w)
    assert {m.rpartition(".")[2] for m in seen if m.startswith("hgcnet_jax.causal.")} <= allowed


#: The flow of the package, upstream first: a module may import only from its own
#: folder or from folders of a lower rank (``prune`` is a branch beside ``causal``:
#: it reuses the trainer and the curvature, nothing downstream).
RANKS = {
    "_io": 0, "_keys": 0, "_compat": 0, "_version": 0, "config": 0, "compile_cache": 0,
    "data": 1, "models": 2, "train": 3, "curvature": 4, "mediators": 5,
    "causal": 6, "prune": 6, "report": 7, "study": 8, "cli": 9, "<root>": 10,
}


def _folder(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "<root>"


def test_folders_follow_the_flow():
    """data -> models -> train -> curvature -> mediators -> causal -> report -> study -> cli."""
    g = import_graph()
    unranked = sorted({_folder(m) for m in g} - set(RANKS))
    assert unranked == [], f"give these folders a rank in RANKS: {unranked}"
    upstream = sorted((a, b) for a, bs in g.items() for b in bs
                      if _folder(a) != _folder(b) and RANKS[_folder(b)] >= RANKS[_folder(a)])
    assert upstream == [], f"imports against the flow: {upstream}"
