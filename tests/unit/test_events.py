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


def _logger_calls() -> list[tuple[str, ast.expr]]:
    """(where, first argument) of every logger call under src/fitiq_rt."""
    calls = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in LOG_METHODS
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id in ("log", "access_log")
                and node.args
            ):
                calls.append((f"{path.relative_to(SRC)}:{node.lineno}", node.args[0]))
    return calls


def test_every_logger_call_names_its_event_from_events() -> None:
    """`log.info(events.WS_CONNECTED, …)`: the name the analyzer reads, never a literal."""
    calls = _logger_calls()
    assert len(calls) >= 50  # the scan does see the emitters (fails if it silently found none)
    declared = set(_declared())
    wrong = [
        where
        for where, first in calls
        if not (
            isinstance(first, ast.Attribute)
            and isinstance(first.value, ast.Name)
            and first.value.id == "events"
            and first.attr in declared
        )
    ]
    assert wrong == []


def test_every_declared_event_is_logged_somewhere() -> None:
    used = {first.attr for _, first in _logger_calls() if isinstance(first, ast.Attribute)}
    assert set(_declared()) - used == set()


def test_event_names_are_distinct_and_dotted() -> None:
    names = list(_declared().values())
    assert len(names) == len(set(names))
    assert all(name.count(".") == 1 and name == name.lower() for name in names)
    servers = [name for name in names if name.startswith(events.SERVER_PREFIX)]
    assert events.SERVER_STARTED in servers and events.SERVER_STOPPED in servers
