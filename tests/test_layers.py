"""The import graph of xtl: no cycles, and no import from a lower layer up to a higher one.

Every `xtl` import counts, at module level and inside functions (a deferred import still ties
the two modules together; deferring only hides the tie). docs/architecture.md draws the
layers; a module's layer is its sub-package (LAYERS below).
"""

from __future__ import annotations

import ast
from pathlib import Path

import xtl

PACKAGE = Path(xtl.__file__).resolve().parent

# Layers, low to high: a module imports modules of its own layer (acyclically) and of lower
# layers only. Layers of the same rank (cell, analysis) do not import each other.
RANKS = {"base": 0, "offline": 1, "data": 2, "model": 3, "evaluate": 4, "train": 5,
         "cell": 6, "analysis": 6, "grid": 7, "cli": 8}
# module (or package prefix) -> layer; the longest matching prefix wins. Each layer is one
# sub-package of xtl, so where a module lives says what it may import.
LAYERS = {
    "xtl.core": "base", "xtl.offline": "offline", "xtl.data": "data", "xtl.model": "model",
    "xtl.evaluation": "evaluate", "xtl.training": "train", "xtl.cells": "cell",
    "xtl.analysis": "analysis", "xtl.grid": "grid", "xtl.cli": "cli",
}
# Upward imports still to remove, each with the step that removes it; the test fails once one
# is gone, so the list only shrinks.
PENDING: set[tuple[str, str]] = set()


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = ["xtl", *path.relative_to(PACKAGE).with_suffix("").parts]
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def layer_of(module: str) -> str:
    if module == "xtl":  # the package's face: a docstring and the version
        return "base"
    name = module
    while name not in LAYERS:
        name = name.rpartition(".")[0]
        assert name, f"{module} has no layer: add it to LAYERS in tests/test_layers.py"
    return LAYERS[name]


def imports(known: dict[str, Path]) -> dict[str, dict[str, int]]:
    """module -> {imported xtl module: line}, every import statement anywhere in the file."""

    def owner(name: str) -> str | None:  # the module that defines `name` (a.b.c -> a.b)
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, dict[str, int]] = {}
    for module, path in known.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        edges: dict[str, int] = {}
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                # `from a import b` names module a.b when b is one, else something of a
                targets = [owner(f"{base}.{alias.name}") or base for alias in node.names]
            else:
                continue
            for target in targets:
                found = owner(target) if target.split(".")[0] == "xtl" else None
                if found and found != module:
                    edges.setdefault(found, node.lineno)
        graph[module] = edges
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph.get(node, {}):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                other = stack.pop()
                component.append(other)
                if other == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_every_module_has_a_layer():
    for module in modules():
        layer_of(module)
    assert set(LAYERS.values()) <= set(RANKS)


def test_no_import_cycles():
    assert cycles(imports(modules())) == []


def test_no_upward_imports():
    known = modules()
    bad, seen = [], set()
    for module, edges in imports(known).items():
        mine = layer_of(module)
        for target, line in edges.items():
            theirs = layer_of(target)
            if (module, target) in PENDING:
                seen.add((module, target))
            elif theirs != mine and RANKS[theirs] >= RANKS[mine]:
                bad.append(f"{known[module].relative_to(PACKAGE.parent)}:{line}: {module} "
                           f"({mine}) imports {target} ({theirs})")
    assert bad == [], "\n".join(bad)
    assert seen == PENDING, f"no longer imported: remove from PENDING: {PENDING - seen}"


def test_the_walker_sees_deferred_and_relative_imports(tmp_path):
    """The graph must see what a cycle-dodging import hides; otherwise the tests above pass
    on a package that still has the cycle."""
    (tmp_path / "a.py").write_text("def f():\n    from xtl import b\n")
    (tmp_path / "b.py").write_text("from . import a\n")
    known = {"xtl.a": tmp_path / "a.py", "xtl.b": tmp_path / "b.py"}
    graph = imports(known)
    assert graph == {"xtl.a": {"xtl.b": 2}, "xtl.b": {"xtl.a": 1}}
    assert cycles(graph) == [["xtl.a", "xtl.b"]]
