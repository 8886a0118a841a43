"""fitiq_rt.events names every event the code logs, so emitters and the analyzer cannot drift."""

from __future__ import annotations

import ast
from pathlib import Path

from fitiq_rt import events

SRC = Path(events.__file__).resolve().parent
LOG_METHODS = {"debug", "info", "warning", "error", "exception", "critical"}


def _declared() -> dict[str, str]:
    return {
        name: value
        for name, value in vars(events).items()
        if name.isupper() and isinstance(value, str) and name != "SERVER_PREFIX"
    }


def _literal_event_names() -> dict[str, list[str]]:
    """Event names passed as a string literal to a logger call anywhere under src/fitiq_rt."""
    found: dict[str, list[str]] = {}
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in LOG_METHODS
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                continue
            where = f"{path.relative_to(SRC)}:{node.lineno}"
            found.setdefault(node.args[0].value, []).append(where)
    return found


def test_every_logged_event_is_declared() -> None:
    emitted = _literal_event_names()
    assert len(emitted) >= 40  # the scan does see the emitters (fails if it silently found none)
    declared = set(_declared().values())
    undeclared = {name: where for name, where in emitted.items() if name not in declared}
    assert undeclared == {}


def test_event_names_are_distinct_and_dotted() -> None:
    names = list(_declared().values())
    assert len(names) == len(set(names))
    assert all(name.count(".") == 1 and name == name.lower() for name in names)
    servers = [name for name in names if name.startswith(events.SERVER_PREFIX)]
    assert events.SERVER_STARTED in servers and events.SERVER_STOPPED in servers
