"""A log report as plain JSON types (``--json``): the stable form scripts and CI gates read.

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

from typing import Any

from .model import Anomaly, Percentiles, Report

SCHEMA = "fitiq_rt.logs.report/1"


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


def to_json(report: Report) -> dict[str, Any]:
    """The report as plain JSON types, keys as in the module docstring."""
    c, d, m, p = report.connections, report.delivery, report.meal_logs, report.parse
    return {
        "schema": SCHEMA,
        "sources": list(report.sources),
        "span": {
            "first": report.first_timestamp,
            "last": report.last_timestamp,
            "seconds": report.span_seconds(),
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
