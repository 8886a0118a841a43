"""Renderers for a log :class:`~fitiq_rt.logreport.report.Report`: terminal, JSON, HTML.

- :func:`render_terminal` — rich tables for the operator at a shell.
- :func:`to_json` — a plain dict with stable keys (schema below) for scripts and CI gates.
- :func:`write_html` — one self-contained file (inline CSS, charts as inline SVG drawn by
  matplotlib, no external URL) to attach to an incident.

JSON schema ``fitiq_rt.logs.report/1`` (keys are only ever added, never renamed)::

    schema            "fitiq_rt.logs.report/1"
    sources           [str]                       inputs in the order read
    span              {first, last: RFC 3339 | null, seconds: float | null}
    parse             {lines, events, malformed, foreign, blank, incomplete,
                       damaged_inputs: [str], events_by_name: {event: count}}
    connections       {sessions, closed, unmatched_disconnects, lost, still_open, users,
                       duration_seconds: DIST, disconnect_reasons: {reason: n},
                       rejections: {reason: n}, stale, peak_concurrent, peak_concurrent_at,
                       peak_reported_by_server, top_users: [{user_id, sessions}],
                       series: {bucket_seconds, points: [[epoch_start, peak, level]]}}
    delivery          {delivered, queued, queued_while_connected, queued_no_socket,
                       queued_in_close_race, replayed, resumes, incomplete_resumes,
                       latency_ms: DIST}
    meal_logs         {created, processed, failed, unfinished, unmatched, processing_ms: DIST}
    http              {requests, ws_upgrades, ws_upgrade_failures}
    metrics           [{key, name, value, number, target, ok}]
    anomalies         {counts: {kind: n}, truncated: bool,
                       items: [{kind, severity, user_id, connection_id, message, lines: ["f:n"]}]}

    DIST = {count, min, p50, p90, p99, max, mean, histogram: [[low, high, count]]}
"""

from __future__ import annotations

import html
import io
import math
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from .report import (
    SEVERITY_ERROR,
    SEVERITY_WARNING,
    Anomaly,
    Percentiles,
    Report,
    format_seconds,
    parse_timestamp,
)

SCHEMA = "fitiq_rt.logs.report/1"
_SEVERITY_STYLE = {SEVERITY_ERROR: "bold red", SEVERITY_WARNING: "yellow"}


# --------------------------------------------------------------------------------------------
# JSON
# --------------------------------------------------------------------------------------------


def _dist(p: Percentiles) -> dict[str, Any]:
    return {
        "count": p.count,
        "min": p.min,
        "p50": p.p50,
        "p90": p.p90,
        "p99": p.p99,
        "max": p.max,
        "mean": p.mean,
        "histogram": [[low, high, n] for low, high, n in p.buckets],
    }


def _anomaly_json(a: Anomaly) -> dict[str, Any]:
    return {
        "kind": a.kind,
        "severity": a.severity,
        "user_id": a.user_id,
        "connection_id": a.connection_id,
        "message": a.message,
        "lines": [str(ref) for ref in a.refs],
    }


def _span_seconds(report: Report) -> float | None:
    first = parse_timestamp(report.first_timestamp)
    last = parse_timestamp(report.last_timestamp)
    return None if first is None or last is None else last - first


def to_json(report: Report) -> dict[str, Any]:
    """The report as plain JSON types, keys as in the module docstring."""
    c, d, m, p = report.connections, report.delivery, report.meal_logs, report.parse
    return {
        "schema": SCHEMA,
        "sources": list(report.sources),
        "span": {
            "first": report.first_timestamp,
            "last": report.last_timestamp,
            "seconds": _span_seconds(report),
        },
        "parse": {
            "lines": p.lines,
            "events": p.events,
            "malformed": p.malformed,
            "foreign": p.foreign,
            "blank": p.blank,
            "incomplete": p.incomplete,
            "damaged_inputs": list(p.damaged_inputs),
            "events_by_name": dict(p.events_by_name),
        },
        "connections": {
            "sessions": c.sessions,
            "closed": c.closed,
            "unmatched_disconnects": c.unmatched_disconnects,
            "lost": c.lost,
            "still_open": c.still_open,
            "users": c.users,
            "duration_seconds": _dist(c.durations),
            "disconnect_reasons": dict(c.disconnect_reasons),
            "rejections": dict(c.rejections),
            "stale": c.stale,
            "peak_concurrent": c.peak_concurrent,
            "peak_concurrent_at": c.peak_concurrent_at,
            "peak_reported_by_server": c.peak_reported_by_server,
            "top_users": [{"user_id": u, "sessions": n} for u, n in c.top_users],
            "series": {
                "bucket_seconds": c.series_bucket_seconds,
                "points": [[pt.start, pt.peak, pt.level] for pt in c.series],
            },
        },
        "delivery": {
            "delivered": d.delivered,
            "queued": d.queued,
            "queued_while_connected": d.queued_while_connected,
            "queued_no_socket": d.queued_no_socket,
            "queued_in_close_race": d.queued_in_close_race,
            "replayed": d.replayed,
            "resumes": d.resumes,
            "incomplete_resumes": d.incomplete_resumes,
            "latency_ms": _dist(d.latency_ms),
        },
        "meal_logs": {
            "created": m.created,
            "processed": m.processed,
            "failed": m.failed,
            "unfinished": m.unfinished,
            "unmatched": m.unmatched,
            "processing_ms": _dist(m.processing_ms),
        },
        "http": {
            "requests": report.http.requests,
            "ws_upgrades": report.http.ws_upgrades,
            "ws_upgrade_failures": report.http.ws_upgrade_failures,
        },
        "metrics": [
            {
                "key": x.key,
                "name": x.name,
                "value": x.value,
                "number": x.number,
                "target": x.target,
                "ok": x.ok,
            }
            for x in report.metrics
        ],
        "anomalies": {
            "counts": dict(report.anomaly_counts),
            "truncated": report.anomalies_truncated,
            "items": [_anomaly_json(a) for a in report.anomalies],
        },
    }


# --------------------------------------------------------------------------------------------
# Shared row builders (terminal and HTML show the same facts)
# --------------------------------------------------------------------------------------------


def _num(value: float | None, unit: str = "") -> str:
    if value is None:
        return "–"
    if unit == "s":
        return format_seconds(value)
    if unit == "ms":
        return f"{value:,.1f} ms"
    return f"{value:,.0f}"


def _ok_text(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


def _summary_rows(report: Report) -> list[tuple[str, str]]:
    p = report.parse
    span = _span_seconds(report)
    rows = [
        ("inputs", ", ".join(report.sources) or "–"),
        ("span", f"{report.first_timestamp or '–'} → {report.last_timestamp or '–'}"),
        ("duration", format_seconds(span)),
        ("lines read", f"{p.lines:,}"),
        ("events parsed", f"{p.events:,}"),
        ("malformed lines (skipped)", f"{p.malformed:,}"),
        ("foreign JSON lines (skipped)", f"{p.foreign:,}"),
        ("blank lines", f"{p.blank:,}"),
        ("events missing their id", f"{p.incomplete:,}"),
    ]
    if p.damaged_inputs:
        rows.append(("damaged inputs (read up to the damage)", ", ".join(p.damaged_inputs)))
    return rows


def _connection_rows(report: Report) -> list[tuple[str, str]]:
    c = report.connections
    d = c.durations
    peak_at = f" at {c.peak_concurrent_at}" if c.peak_concurrent_at else ""
    reported = "–" if c.peak_reported_by_server is None else f"{c.peak_reported_by_server:,}"
    return [
        ("sessions (ws.connected)", f"{c.sessions:,}"),
        ("users", f"{c.users:,}"),
        ("closed with ws.disconnected", f"{c.closed:,}"),
        ("disconnects whose connect is not in the log", f"{c.unmatched_disconnects:,}"),
        ("lost (no ws.disconnected before stop/restart)", f"{c.lost:,}"),
        ("still open at end of log", f"{c.still_open:,}"),
        (
            "session duration p50 / p90 / p99",
            " / ".join(_num(v, "s") for v in (d.p50, d.p90, d.p99)),
        ),
        ("session duration max", _num(d.max, "s")),
        ("peak concurrent connections", f"{c.peak_concurrent:,}{peak_at}"),
        ("peak total_connections reported by server", reported),
        ("stale (idle) detections", f"{c.stale:,}"),
    ]


def _delivery_rows(report: Report) -> list[tuple[str, str]]:
    d, m, h = report.delivery, report.meal_logs, report.http
    lat = d.latency_ms
    return [
        ("delivered live", f"{d.delivered:,}"),
        ("queued (no socket: stored for resume)", f"{d.queued_no_socket:,}"),
        ("queued while a socket was open (the seed's bug)", f"{d.queued_while_connected:,}"),
        ("queued while the sockets were closing", f"{d.queued_in_close_race:,}"),
        ("replayed on resume", f"{d.replayed:,} in {d.resumes:,} resumes"),
        ("incomplete resumes (history limit)", f"{d.incomplete_resumes:,}"),
        ("latency p50 / p90 / p99", " / ".join(_num(v, "ms") for v in (lat.p50, lat.p90, lat.p99))),
        ("latency max", _num(lat.max, "ms")),
        (
            "meal logs created / processed / failed",
            f"{m.created:,} / {m.processed:,} / {m.failed:,}",
        ),
        ("meal logs unfinished", f"{m.unfinished:,}"),
        (
            "processing p50 / p99",
            " / ".join(_num(v, "ms") for v in (m.processing_ms.p50, m.processing_ms.p99)),
        ),
        (
            "HTTP requests / WS upgrades (101) / failed upgrades",
            f"{h.requests:,} / {h.ws_upgrades:,} / {h.ws_upgrade_failures:,}",
        ),
    ]


# --------------------------------------------------------------------------------------------
# Terminal
# --------------------------------------------------------------------------------------------


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
        table.add_row(m.name, m.value, m.target, f"[{style}]{_ok_text(m.ok)}[/]")
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
    console.print(_kv_table("Log", _summary_rows(report)))
    console.print(_metrics_table(report))
    console.print(_kv_table("Connections", _connection_rows(report)))
    if report.connections.disconnect_reasons:
        console.print(
            _counts_table("Disconnect reasons", report.connections.disconnect_reasons, "reason")
        )
    if report.connections.rejections:
        console.print(_counts_table("Rejected handshakes", report.connections.rejections, "reason"))
    console.print(_kv_table("Delivery", _delivery_rows(report)))
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


# --------------------------------------------------------------------------------------------
# Charts (matplotlib → inline SVG)
# --------------------------------------------------------------------------------------------

_BAR_COLOR = "#1f77b4"
_SVG_PROLOGUE = re.compile(r"<\?xml[^>]*>\s*|<!DOCTYPE[^>]*>\s*", re.DOTALL)
_SVG_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.DOTALL)


def _display_bins(
    buckets: Sequence[tuple[float, float, int]], n: int = 40
) -> tuple[list[float], list[int]]:
    """Regroup the fine log buckets into ``n`` log-spaced bars for a readable chart."""
    positive = [(lo, hi, c) for lo, hi, c in buckets if lo > 0]
    zero = sum(c for lo, _hi, c in buckets if lo <= 0)
    low = positive[0][0] if positive else (buckets[0][1] if buckets else 1.0)
    high = positive[-1][1] if positive else low * 2
    if high <= low:
        high = low * 1.1
    ratio = (high / low) ** (1 / n)
    edges = [low * ratio**i for i in range(n + 1)]
    counts = [0] * n
    counts[0] += zero
    for lo, hi, c in positive:
        mid = (lo * hi) ** 0.5
        index = min(n - 1, max(0, int(_log_ratio(mid / low, ratio))))
        counts[index] += c
    return edges, counts


def _log_ratio(value: float, base: float) -> float:
    return math.log(value) / math.log(base) if value > 0 and base > 1 else 0.0


def _svg(fig: Any) -> str:
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": "fitiq-rt", "svg.fonttype": "path"}):
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = _SVG_METADATA.sub("", _SVG_PROLOGUE.sub("", buf.getvalue()))
    return text.strip()


def _figure() -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 3.0), dpi=100)
    return fig, fig.add_subplot(1, 1, 1)


def _histogram_svg(dist: Percentiles, xlabel: str, title: str, fmt: Callable[[float], str]) -> str:
    fig, ax = _figure()
    if dist.count == 0:
        _empty(ax, title)
        return _svg(fig)
    edges, counts = _display_bins(dist.buckets)
    widths = [edges[i + 1] - edges[i] for i in range(len(counts))]
    ax.bar(
        edges[:-1],
        counts,
        width=widths,
        align="edge",
        color=_BAR_COLOR,
        edgecolor="white",
        linewidth=0.4,
    )
    ax.set_xscale("log")
    for q, value, style in (("p50", dist.p50, "--"), ("p99", dist.p99, ":")):
        if value:
            ax.axvline(
                value, color="#d62728", linestyle=style, linewidth=1.2, label=f"{q} {fmt(value)}"
            )
    ax.legend(loc="best", fontsize=8, framealpha=0.9)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    ax.set_title(title, fontsize=10)
    return _svg(fig)


def _series_svg(report: Report) -> str:
    fig, ax = _figure()
    points = report.connections.series
    title = "Concurrent connections over time (UTC)"
    if not points:
        _empty(ax, title)
        return _svg(fig)
    import matplotlib.dates as mdates

    times = [datetime.fromtimestamp(p.start, UTC) for p in points]
    peaks = [p.peak for p in points]
    ax.fill_between(times, peaks, step="post", color=_BAR_COLOR, alpha=0.35, linewidth=0)
    ax.step(times, peaks, where="post", color=_BAR_COLOR, linewidth=1.2, label="peak per bucket")
    ax.set_ylim(bottom=0)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S"))
    width = report.connections.series_bucket_seconds
    ax.set_title(f"{title}, buckets of {width:g} s", fontsize=10)
    ax.set_ylabel("connections")
    return _svg(fig)


def _empty(ax: Any, title: str) -> None:
    ax.text(0.5, 0.5, "no data in this log", ha="center", va="center", transform=ax.transAxes)
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])


def charts(report: Report) -> dict[str, str]:
    """The three charts as inline SVG strings keyed by a stable id."""
    return {
        "session-durations": _histogram_svg(
            report.connections.durations,
            "session duration (s, log scale)",
            "Session durations",
            format_seconds,
        ),
        "latency": _histogram_svg(
            report.delivery.latency_ms,
            "meal log created → handed to sockets (ms, log scale)",
            "Notification latency (delivered live)",
            lambda v: _num(v, "ms"),
        ),
        "connections": _series_svg(report),
    }


# --------------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1b1b1b;
background:#fff;max-width:1100px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:6px 0 14px;font-size:13px}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f3f4f6}td.num{text-align:right}
.pass{color:#137333;font-weight:600}.fail{color:#c5221f;font-weight:600}.na{color:#777}
.error{color:#c5221f;font-weight:600}.warning{color:#b06000}.note{color:#555}
.charts{display:flex;flex-direction:column;gap:12px}.chart svg{max-width:100%;height:auto}
.muted{color:#666;font-size:12px}code{font-size:12px}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _html_kv(rows: Sequence[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _html_counts(counts: dict[str, int], label: str) -> str:
    rows = "".join(
        f"<tr><td>{_e(k)}</td><td class='num'>{n:,}</td></tr>" for k, n in counts.items()
    )
    return f"<table><tr><th>{_e(label)}</th><th>count</th></tr>{rows}</table>"


def _html_metrics(report: Report) -> str:
    rows = []
    for m in report.metrics:
        css = "na" if m.ok is None else ("pass" if m.ok else "fail")
        rows.append(
            f"<tr><td>{_e(m.name)}</td><td>{_e(m.value)}</td><td>{_e(m.target)}</td>"
            f"<td class='{css}'>{_ok_text(m.ok)}</td></tr>"
        )
    head = "<tr><th>Metric</th><th>Value</th><th>Target</th><th></th></tr>"
    return f"<table id='success-metrics'>{head}{''.join(rows)}</table>"


def _html_anomalies(report: Report, limit: int) -> str:
    if not report.anomaly_counts:
        return "<p class='pass'>No anomalies.</p>"
    shown = report.anomalies[:limit]
    total = sum(report.anomaly_counts.values())
    note = f"<p class='muted'>{len(shown):,} of {total:,} shown.</p>" if total > len(shown) else ""
    rows = "".join(
        f"<tr><td class='{_e(a.severity)}'>{_e(a.severity)}</td><td>{_e(a.kind)}</td>"
        f"<td><code>{'<br>'.join(_e(r) for r in a.refs)}</code></td>"
        f"<td>{_e(a.user_id or '')}</td><td>{_e(a.message)}</td></tr>"
        for a in shown
    )
    head = "<tr><th>severity</th><th>kind</th><th>lines</th><th>user</th><th>message</th></tr>"
    counts = _html_counts(report.anomaly_counts, "kind")
    return f"{counts}{note}<table id='anomalies'>{head}{rows}</table>"


def render_html(report: Report, max_anomalies: int = 500) -> str:
    """The whole report as one HTML document (every value from the log is escaped)."""
    c = report.connections
    svgs = charts(report)
    chart_html = "".join(
        f"<div class='chart' id='chart-{key}'>{svg}</div>" for key, svg in svgs.items()
    )
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<title>fitiq-rt log report</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>fitiq-rt log report</h1>",
        f"<p class='muted'>{_e(', '.join(report.sources))} · "
        f"{_e(report.first_timestamp or '–')} → {_e(report.last_timestamp or '–')}</p>",
        "<h2>Success Metrics</h2>",
        _html_metrics(report),
        "<h2>Charts</h2>",
        f"<div class='charts'>{chart_html}</div>",
        "<h2>Connections</h2>",
        _html_kv(_connection_rows(report)),
        _html_counts(c.disconnect_reasons, "disconnect reason") if c.disconnect_reasons else "",
        _html_counts(c.rejections, "rejection reason") if c.rejections else "",
        "<h2>Delivery</h2>",
        _html_kv(_delivery_rows(report)),
        "<h2>Sessions per user (top)</h2>",
        _html_counts(dict(c.top_users), "user") if c.top_users else "<p>none</p>",
        "<h2>Anomalies</h2>",
        _html_anomalies(report, max_anomalies),
        "<h2>Log</h2>",
        _html_kv(_summary_rows(report)),
        "</body></html>",
    ]
    return "\n".join(parts)


def write_html(report: Report, path: str | Path) -> None:
    """Write :func:`render_html` to ``path`` (UTF-8)."""
    Path(path).write_text(render_html(report), encoding="utf-8")
