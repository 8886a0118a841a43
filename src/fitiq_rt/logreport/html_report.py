"""A log report as one self-contained HTML file (``--html``) to attach to an incident.

Inline CSS and inline SVG charts, no external URL; every value that came from the log is
escaped, since log fields are untrusted input.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

from .charts import charts
from .formatting import verdict_text
from .model import Report
from .rows import connection_rows, delivery_rows, summary_rows

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
            f"<td class='{css}'>{verdict_text(m.ok)}</td></tr>"
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
        _html_kv(connection_rows(report)),
        _html_counts(c.disconnect_reasons, "disconnect reason") if c.disconnect_reasons else "",
        _html_counts(c.rejections, "rejection reason") if c.rejections else "",
        "<h2>Delivery</h2>",
        _html_kv(delivery_rows(report)),
        "<h2>Sessions per user (top)</h2>",
        _html_counts(dict(c.top_users), "user") if c.top_users else "<p>none</p>",
        "<h2>Anomalies</h2>",
        _html_anomalies(report, max_anomalies),
        "<h2>Log</h2>",
        _html_kv(summary_rows(report)),
        "</body></html>",
    ]
    return "\n".join(parts)


def write_html(report: Report, path: str | Path) -> None:
    """Write :func:`render_html` to ``path`` (UTF-8)."""
    Path(path).write_text(render_html(report), encoding="utf-8")
