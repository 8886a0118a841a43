"""The offline log product: ``fitiq-rt logs report`` and ``timeline`` over the server's JSON logs.

It runs on an operator's machine against log files, not inside the server, so it lives apart
from ``observability/`` (the server's own metrics and debug routes). The public API is here;
the modules behind it each hold one concept:

- ``model`` (the report's value types), ``kinds`` (anomaly kinds and severities),
- ``reading`` (opening files, ``.gz`` and stdin; timestamps), ``aggregates`` (bounded
  histograms, the concurrency series, capped counters),
- ``analyzer`` (the one pass over the lines), ``success`` (the seed's success metrics),
- ``formatting`` and ``rows`` (text shared by the renderers), ``json_report``,
  ``terminal_report``, ``charts`` and ``html_report``, ``user_timeline`` (one user's story),
- ``cli`` (the ``fitiq-rt logs`` subcommands).

The renderers and the timeline need rich (and ``--html`` matplotlib); they are imported on first
use, so ``fitiq-rt serve``, which only wires the ``logs`` subcommand, never loads them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .aggregates import ConcurrencySeries, LogHistogram
from .analyzer import DEFAULT_CLOSE_RACE_GRACE, Analyzer, analyze
from .cli import add_logs_parser, run_logs
from .formatting import format_seconds
from .json_report import SCHEMA, to_json
from .kinds import (
    DISCONNECT_WITHOUT_CONNECT,
    DUPLICATE_DISCONNECT,
    QUEUED_WHILE_CONNECTED,
    SEVERITY_ERROR,
    SEVERITY_NOTE,
    SEVERITY_WARNING,
    UNCLOSED_CONNECTION,
    UNFINISHED_MEAL_LOG,
    WS_UPGRADE_FAILED,
)
from .model import (
    Anomaly,
    ConnectionStats,
    DeliveryStats,
    HttpStats,
    LineRef,
    MealLogStats,
    Metric,
    ParseStats,
    Percentiles,
    Report,
    SeriesPoint,
)
from .reading import STDIN, LogReadError, check_inputs, parse_timestamp
from .success import success_metrics

if TYPE_CHECKING:
    from .html_report import render_html, write_html
    from .terminal_report import render_terminal
    from .user_timeline import Timeline, TimelineEntry, render_timeline, timeline, timeline_to_json

#: Public names whose modules import rich or matplotlib: loaded by ``__getattr__`` on first use.
_LAZY = {
    "render_html": ".html_report",
    "write_html": ".html_report",
    "render_terminal": ".terminal_report",
    "Timeline": ".user_timeline",
    "TimelineEntry": ".user_timeline",
    "render_timeline": ".user_timeline",
    "timeline": ".user_timeline",
    "timeline_to_json": ".user_timeline",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)


__all__ = [
    "DEFAULT_CLOSE_RACE_GRACE",
    "DISCONNECT_WITHOUT_CONNECT",
    "DUPLICATE_DISCONNECT",
    "QUEUED_WHILE_CONNECTED",
    "SCHEMA",
    "SEVERITY_ERROR",
    "SEVERITY_NOTE",
    "SEVERITY_WARNING",
    "STDIN",
    "UNCLOSED_CONNECTION",
    "UNFINISHED_MEAL_LOG",
    "WS_UPGRADE_FAILED",
    "Analyzer",
    "Anomaly",
    "ConcurrencySeries",
    "ConnectionStats",
    "DeliveryStats",
    "HttpStats",
    "LineRef",
    "LogHistogram",
    "LogReadError",
    "MealLogStats",
    "Metric",
    "ParseStats",
    "Percentiles",
    "Report",
    "SeriesPoint",
    "Timeline",
    "TimelineEntry",
    "add_logs_parser",
    "analyze",
    "check_inputs",
    "format_seconds",
    "parse_timestamp",
    "render_html",
    "render_terminal",
    "render_timeline",
    "run_logs",
    "success_metrics",
    "timeline",
    "timeline_to_json",
    "to_json",
    "write_html",
]
