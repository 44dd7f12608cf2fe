"""The import graph reads top-down: no cycles among module-level imports, and core knows no layer above it."""

from __future__ import annotations

import ast
from pathlib import Path

import npuprofile

PACKAGE = Path(npuprofile.__file__).resolve().parent


def module_imports() -> dict[str, set[str]]:
    """Module name -> npuprofile modules it imports at module level (``TYPE_CHECKING`` blocks excluded)."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("npuprofile"):
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    graph[name].add(full if full in modules else str(node.module))
            elif isinstance(node, ast.Import):
                graph[name].update(a.name for a in node.names if a.name.startswith("npuprofile"))
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle a depth-first walk meets (empty for a graph that reads top-down)."""
    found: list[list[str]] = []
    done: set[str] = set()

    def walk(node: str, path: list[str]) -> None:
        for target in sorted(graph.get(node, ())):
            if target in path:
                found.append(path[path.index(target):] + [target])
            elif target not in done:
                walk(target, path + [target])
        done.add(node)

    for start in sorted(graph):
        if start not in done:
            walk(start, [start])
    return found


def test_no_import_cycles() -> None:
    graph = module_imports()
    assert len(graph) > 50, "the package modules were not found"
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]


def test_core_imports_no_layer_above_it() -> None:
    above = ("npuprofile.sessions", "npuprofile.summary", "npuprofile.backends", "npuprofile.analysis",
             "npuprofile.tools", "npuprofile.cli")
    offenders = {
        name: sorted(target for target in targets if target.startswith(above))
        for name, targets in module_imports().items()
        if name.startswith("npuprofile.core")
    }
    assert {name: found for name, found in offenders.items() if found} == {}
