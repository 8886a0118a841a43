"""One user's story from the logs: every event of theirs in order, anomalies marked.

The seed's incident was diagnosed by reading one user's lines side by side ("connected" at
09:32:24, "not connected" at 09:33:21, nothing between). :func:`timeline` gives that view for any
user, with the analyzer's verdicts on the lines that prove them. It runs the full analyzer (not a
grep) because some anomalies depend on lines that are not the user's: ``server.started`` and
``server.stopped`` decide whether a connection was lost; those lines are included as context.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from .. import events as ev
from .analyzer import Analyzer
from .kinds import SEVERITY_ERROR, SEVERITY_NOTE, SEVERITY_WARNING
from .model import Anomaly, LineRef
from .reading import check_inputs

_HIDDEN_FIELDS = frozenset({"event", "timestamp", "level", "user_id"})
_STYLE = {SEVERITY_ERROR: "bold red", SEVERITY_WARNING: "yellow", SEVERITY_NOTE: "dim"}
_EVENT_STYLE = {
    ev.WS_CONNECTED: "green",
    ev.WS_DISCONNECTED: "magenta",
    ev.NOTIFICATION_QUEUED: "yellow",
    ev.NOTIFICATION_DELIVERED: "cyan",
}


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One log line of (or relevant to) the user, with the anomaly kinds it proves."""

    ref: LineRef
    timestamp: str
    event: str
    level: str
    fields: dict[str, Any]
    marks: tuple[str, ...]
    severity: str | None  # the worst severity among ``marks``


@dataclass(frozen=True, slots=True)
class Timeline:
    """A user's events in log order and the anomalies that concern them."""

    user_id: str
    entries: tuple[TimelineEntry, ...]
    anomalies: tuple[Anomaly, ...]
    truncated: bool  # more than the analyzer's watch limit of lines for this user


def timeline(files: Iterable[str], user_id: str, **options: Any) -> Timeline:
    """Analyze ``files`` (as :func:`~fitiq_rt.logreport.analyze`) for one user."""
    paths = list(files)
    check_inputs(paths)
    analyzer = Analyzer(watch_user=user_id, **options)
    for path in paths:
        analyzer.read(path)
    report = analyzer.finish()
    mine = tuple(a for a in report.anomalies if a.user_id == user_id)
    marks: dict[LineRef, list[Anomaly]] = {}
    for anomaly in mine:
        for ref in anomaly.refs:
            marks.setdefault(ref, []).append(anomaly)
    entries = tuple(_entry(ref, obj, marks.get(ref, [])) for ref, obj in analyzer.watched)
    return Timeline(user_id, entries, mine, analyzer.watch_truncated)


def _entry(ref: LineRef, obj: dict[str, Any], anomalies: list[Anomaly]) -> TimelineEntry:
    severity = None
    if anomalies:
        severity = min((a.severity for a in anomalies), key=lambda s: list(_STYLE).index(s))
    return TimelineEntry(
        ref=ref,
        timestamp=str(obj.get("timestamp", "")),
        event=str(obj.get("event", "")),
        level=str(obj.get("level", "")),
        fields={k: v for k, v in obj.items() if k not in _HIDDEN_FIELDS},
        marks=tuple(dict.fromkeys(a.kind for a in anomalies)),
        severity=severity,
    )


def timeline_to_json(tl: Timeline) -> dict[str, Any]:
    """Plain-JSON form: ``{user_id, truncated, entries: [...], anomalies: [...]}``."""
    return {
        "user_id": tl.user_id,
        "truncated": tl.truncated,
        "entries": [
            {
                "line": str(e.ref),
                "timestamp": e.timestamp,
                "event": e.event,
                "level": e.level,
                "fields": e.fields,
                "anomalies": list(e.marks),
            }
            for e in tl.entries
        ],
        "anomalies": [
            {
                "kind": a.kind,
                "severity": a.severity,
                "connection_id": a.connection_id,
                "message": a.message,
                "lines": [str(r) for r in a.refs],
            }
            for a in tl.anomalies
        ],
    }


def _details(fields: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in fields.items())


def _clock(timestamp: str, previous_date: str | None) -> tuple[str, str]:
    """Compact time: the date only when it changes, milliseconds, no 'Z' (all UTC)."""
    date, _, clock = timestamp.partition("T")
    clock = clock.rstrip("Z")
    head, dot, frac = clock.partition(".")
    clock = f"{head}.{frac[:3]}" if dot else head
    return (clock if date == previous_date else f"{date} {clock}"), date


def render_timeline(tl: Timeline, console: Console | None = None) -> None:
    """Print the timeline as a rich table (anomalies under the event they mark), then verdicts."""
    console = console or Console()
    sources = {e.ref.source for e in tl.entries}
    single = len(sources) == 1  # then the line column holds numbers and the title the file
    title = f"Timeline of user {tl.user_id} (UTC)" + (
        f" in {next(iter(sources))}" if single else ""
    )
    table = Table(title=title, title_justify="left")
    table.add_column("line", overflow="fold", justify="right" if single else "left")
    table.add_column("time", overflow="fold")
    table.add_column("event", overflow="fold")
    table.add_column("details", overflow="fold", ratio=1, min_width=20)
    date: str | None = None
    for e in tl.entries:
        when, date = _clock(e.timestamp, date)
        event = Text(e.event, style=_EVENT_STYLE.get(e.event, ""))
        for kind in e.marks:
            event.append(f"\n⚠ {kind}", style=_STYLE.get(e.severity or "", ""))
        line = str(e.ref.line) if single else str(e.ref)
        table.add_row(line, when, event, _details(e.fields))
    console.print(table)
    if tl.truncated:
        console.print("[yellow]Only the first lines of this user are shown (watch limit).[/]")
    if not tl.entries:
        console.print(f"No event of user {tl.user_id} in these logs.")
    for a in tl.anomalies:
        where = ", ".join(str(r) for r in a.refs)
        header = Text.assemble((f"[{a.severity}] ", _STYLE[a.severity]), (a.kind, "bold"))
        console.print(header.append(f"  {where}", style="cyan"))
        console.print(Padding(Text(a.message), (0, 0, 0, 4)))
    if tl.entries and not tl.anomalies:
        console.print("[green]No anomaly for this user.[/]")
