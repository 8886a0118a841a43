"""The `http.request` access-log event (CONTRACT.md §5), built in one place.

REST requests, WebSocket upgrades (101) and every refusal, from the front door, the handshake or
the ASGI app, log the same fields, and a token in the query is always masked.
"""

from __future__ import annotations

import re
import time

from .devices import TAIL
from .logconfig import get_logger, redact_text

access_log = get_logger("fitiq_rt.access")

DEVICES_PREFIX = "/api/v1/devices/"
# The path segment after the prefix, whatever it holds (a malformed token is masked too).
_DEVICE_SEGMENT = re.compile(r"^(/api/v1/devices/)([^/?#]*)")


def logged_path(target: str) -> str:
    """The request target for the access log: a token in the query masked, a device token in
    the path cut to its last characters (enough to match a `push.*` line, not to push)."""
    if target.startswith(DEVICES_PREFIX):
        target = _DEVICE_SEGMENT.sub(_device_tail, target, count=1)
    return redact_text(target) if "?" in target else target


def _device_tail(match: re.Match[str]) -> str:
    segment = match.group(2)
    return match.group(1) + ("..." + segment[-TAIL:] if len(segment) > TAIL else segment)


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
