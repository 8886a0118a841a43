"""The `http.request` access-log event (CONTRACT.md §5), built in one place.

REST requests, WebSocket upgrades (101) and every refusal, from the front door, the handshake or
the ASGI app, log the same fields, and a token in the query is always masked.
"""

from __future__ import annotations

import time

from .logconfig import get_logger, redact_text

access_log = get_logger("fitiq_rt.access")


def logged_path(target: str) -> str:
    """The request target for the access log, with any token in the query masked."""
    return redact_text(target) if "?" in target else target


def log_request(
    method: str | None, target: str, status: int, *, started: float, sent: int = 0
) -> None:
    """One `http.request` line; `started` is the request's `time.perf_counter()` start."""
    access_log.info(
        "http.request",
        method=method,
        path=logged_path(target),
        status=status,
        duration_ms=round((time.perf_counter() - started) * 1000, 3),
        bytes=sent,
    )
