"""The layout's rule, checked: no import cycle between fitiq_rt's packages and top-level modules,
and the REST edge is imported by `app` alone. Type-only imports (under TYPE_CHECKING) don't count:
they never run."""

from __future__ import annotations

import ast
from pathlib import Path

import fitiq_rt

ROOT = Path(fitiq_rt.__file__).resolve().parent


def _unit(path: Path) -> str:
    """The package (or top-level module) a file belongs to: `meals`, `app`, …"""
    parts = path.relative_to(ROOT).parts
    return parts[0] if len(parts) > 1 else path.stem


def _type_only(tree: ast.AST) -> set[int]:
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            found.update(id(inner) for inner in ast.walk(node))
    return found


def _imported_units(path: Path) -> set[str]:
    module = list(path.relative_to(ROOT).with_suffix("").parts)
    package = module[:-1]  # an __init__.py's package, or a module's: where `.` points
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _type_only(tree)
    units: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip or not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            base = package[: len(package) - (node.level - 1)]
            target = base + (node.module.split(".") if node.module else [])
            units.update([target[0]] if target else [alias.name for alias in node.names])
        elif node.module and node.module.startswith("fitiq_rt."):
            units.add(node.module.split(".")[1])
    return units


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in ROOT.rglob("*.py"):
        me = _unit(path)
        graph.setdefault(me, set()).update(u for u in _imported_units(path) if u != me)
    return graph


def _cycle_from(graph: dict[str, set[str]], start: str) -> list[str] | None:
    stack = [(start, [start])]
    seen: set[str] = set()
    while stack:
        unit, trail = stack.pop()
        for nxt in sorted(graph.get(unit, ())):
            if nxt == start:
                return [*trail, nxt]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, [*trail, nxt]))
    return None


def test_no_two_packages_import_each_other() -> None:
    graph = _graph()
    assert {"meals", "notifications", "realtime", "rest", "push"} <= set(graph)
    cycles = [cycle for unit in sorted(graph) if (cycle := _cycle_from(graph, unit))]
    assert cycles == []


def test_only_app_imports_the_rest_edge() -> None:
    graph = _graph()
    assert sorted(unit for unit, deps in graph.items() if "rest" in deps) == ["app"]
