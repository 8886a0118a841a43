"""A log report as rich tables for the operator at a shell (the default of ``logs report``)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from .formatting import verdict_text
from .kinds import SEVERITY_ERROR, SEVERITY_WARNING
from .model import Report
from .rows import connection_rows, delivery_rows, summary_rows

_SEVERITY_STYLE = {SEVERITY_ERROR: "bold red", SEVERITY_WARNING: "yellow"}


def _kv_table(title: str, rows: Sequence[tuple[str, str]]) -> Table:
    table = Table(title=title, title_justify="left", show_header=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in rows:
        table.add_row(key, value)
    return table


def _metrics_table(report: Report) -> Table:
    table = Table(title="Success Metrics", title_justify="left")
    for name in ("Metric", "Value", "Target", ""):
        table.add_column(name)
    for m in report.metrics:
        style = "green" if m.ok else ("red" if m.ok is False else "dim")
        table.add_row(m.name, m.value, m.target, f"[{style}]{verdict_text(m.ok)}[/]")
    return table


def _counts_table(title: str, counts: dict[str, int], label: str) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column(label)
    table.add_column("count", justify="right")
    for key, n in counts.items():
        table.add_row(key, f"{n:,}")
    return table


def _print_anomalies(console: Console, report: Report, limit: int) -> None:
    """One block per anomaly: a header line (severity, kind, who, where), then the message.

    A list reads better than a table at 80 columns: messages are sentences, not cells.
    """
    shown = report.anomalies[:limit]
    total = sum(report.anomaly_counts.values())
    more = f" — first {len(shown):,} shown" if total > len(shown) else ""
    console.print(f"[bold]Anomalies ({total:,}){more}[/]")
    for a in shown:
        style = _SEVERITY_STYLE.get(a.severity, "dim")
        who = " ".join(
            f"{k}={v}" for k, v in (("user", a.user_id), ("connection", a.connection_id)) if v
        )
        where = ", ".join(str(r) for r in a.refs)
        header = Text.assemble((f"[{a.severity}] ", style), (a.kind, "bold"), f"  {who}  ")
        header.append(where, style="cyan")
        console.print(header)
        body = Text(a.message, style="dim" if a.severity != SEVERITY_ERROR else "")
        console.print(Padding(body, (0, 0, 0, 4)))


def render_terminal(
    report: Report, console: Console | None = None, max_anomalies: int = 50
) -> None:
    """Print the report as rich tables; anomalies are capped at ``max_anomalies`` rows."""
    console = console or Console()
    console.print(_kv_table("Log", summary_rows(report)))
    console.print(_metrics_table(report))
    console.print(_kv_table("Connections", connection_rows(report)))
    if report.connections.disconnect_reasons:
        console.print(
            _counts_table("Disconnect reasons", report.connections.disconnect_reasons, "reason")
        )
    if report.connections.rejections:
        console.print(_counts_table("Rejected handshakes", report.connections.rejections, "reason"))
    console.print(_kv_table("Delivery", delivery_rows(report)))
    if report.connections.top_users:
        console.print(
            _counts_table("Sessions per user (top)", dict(report.connections.top_users), "user")
        )
    if report.anomaly_counts:
        console.print(_counts_table("Anomalies by kind", report.anomaly_counts, "kind"))
        _print_anomalies(console, report, max_anomalies)
    else:
        console.print(
            "[green]No anomalies: every connection has its disconnect, no notification "
            "was queued while its user had a socket open.[/]"
        )
