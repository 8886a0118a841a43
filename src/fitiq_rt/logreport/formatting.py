"""Human-readable numbers shared by the success metrics and every text renderer."""

from __future__ import annotations


def format_seconds(value: float | None) -> str:
    """Human duration: 850 ms, 12.3 s, 4m 12s, 2h 03m."""
    if value is None:
        return "–"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 60:
        return f"{value:.1f} s"
    if value < 3600:
        minutes, seconds = divmod(round(value), 60)
        return f"{minutes}m {seconds:02d}s"
    hours, rest = divmod(round(value), 3600)
    return f"{hours}h {rest // 60:02d}m"


def number_text(value: float | None, unit: str = "") -> str:
    """A table cell: seconds as :func:`format_seconds`, ms with one decimal, else an integer."""
    if value is None:
        return "–"
    if unit == "s":
        return format_seconds(value)
    if unit == "ms":
        return f"{value:,.1f} ms"
    return f"{value:,.0f}"


def verdict_text(ok: bool | None) -> str:
    """A success metric's verdict: PASS, FAIL, or n/a when the log has no data for it."""
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")
