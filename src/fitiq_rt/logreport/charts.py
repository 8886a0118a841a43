"""The HTML report's charts: matplotlib figures turned into inline SVG strings.

Inline SVG keeps the report one self-contained file (no external URL, nothing to fetch), and a
fixed hash salt with no date makes the same log give the same bytes. matplotlib is imported
inside the functions: it is the optional ``report`` extra, needed only for ``--html``.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from .formatting import format_seconds, number_text
from .model import Percentiles, Report

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
            lambda v: number_text(v, "ms"),
        ),
        "connections": _series_svg(report),
    }
