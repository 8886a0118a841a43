"""The facts the terminal and the HTML report both show, as (label, value) rows.

One builder for both renderers, so the two views can never disagree about a number.
"""

from __future__ import annotations

from .formatting import format_seconds, number_text
from .model import Report


def summary_rows(report: Report) -> list[tuple[str, str]]:
    """What was read: inputs, span, lines, and the lines skipped and why."""
    p = report.parse
    span = report.span_seconds()
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


def connection_rows(report: Report) -> list[tuple[str, str]]:
    """Sessions and how they ended, durations, the concurrency peak."""
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
            " / ".join(number_text(v, "s") for v in (d.p50, d.p90, d.p99)),
        ),
        ("session duration max", number_text(d.max, "s")),
        ("peak concurrent connections", f"{c.peak_concurrent:,}{peak_at}"),
        ("peak total_connections reported by server", reported),
        ("stale (idle) detections", f"{c.stale:,}"),
    ]


def delivery_rows(report: Report) -> list[tuple[str, str]]:
    """Notifications, meal logs and HTTP: what was delivered, queued, processed, upgraded."""
    d, m, h = report.delivery, report.meal_logs, report.http
    lat = d.latency_ms
    return [
        ("delivered live", f"{d.delivered:,}"),
        ("queued (no socket: stored for resume)", f"{d.queued_no_socket:,}"),
        ("queued while a socket was open (the seed's bug)", f"{d.queued_while_connected:,}"),
        ("queued while the sockets were closing", f"{d.queued_in_close_race:,}"),
        ("replayed on resume", f"{d.replayed:,} in {d.resumes:,} resumes"),
        ("incomplete resumes (history limit)", f"{d.incomplete_resumes:,}"),
        (
            "latency p50 / p90 / p99",
            " / ".join(number_text(v, "ms") for v in (lat.p50, lat.p90, lat.p99)),
        ),
        ("latency max", number_text(lat.max, "ms")),
        (
            "meal logs created / processed / failed",
            f"{m.created:,} / {m.processed:,} / {m.failed:,}",
        ),
        ("meal logs unfinished", f"{m.unfinished:,}"),
        (
            "processing p50 / p99",
            " / ".join(number_text(v, "ms") for v in (m.processing_ms.p50, m.processing_ms.p99)),
        ),
        (
            "HTTP requests / WS upgrades (101) / failed upgrades",
            f"{h.requests:,} / {h.ws_upgrades:,} / {h.ws_upgrade_failures:,}",
        ),
    ]
