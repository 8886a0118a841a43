"""After every run: does the server's registry go back to zero, and where did its RSS end?

A socket the client closed but the server still lists is exactly the seed bug's shape (a
registry that disagrees with reality), so `passed` requires the debug endpoint's
`total_connections` to reach 0 within a few seconds. RSS growth is reported, not judged: a
Python heap keeps freed memory, so growth alone is not a leak (compare 100k-session runs).
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from . import procfs
from .launch import Target

DEBUG_PATH = "/api/v1/debug/websocket/connections"


def total_connections(target: Target, client: httpx.Client) -> int | None:
    """The server's own count of open sockets, or None if the endpoint is not reachable."""
    token = target.tokens.admin_token()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = client.get(f"{target.base_url}{DEBUG_PATH}", headers=headers)
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    return int(response.json()["total_connections"])


def check(target: Target, rss_before_kib: int | None, timeout: float = 5.0) -> dict[str, Any]:
    started = time.monotonic()
    last: int | None = None
    with httpx.Client(timeout=10.0) as client:
        while True:
            last = total_connections(target, client)
            elapsed = time.monotonic() - started
            if last == 0 or last is None or elapsed > timeout:
                break
            time.sleep(0.1)
    rss_after = procfs.rss_kib(target.pid) if target.pid else None
    result: dict[str, Any] = {
        "checked": last is not None,
        "passed": last == 0,
        "total_connections_after": last,
        "seconds_to_zero": round(elapsed, 2) if last == 0 else None,
        "rss_before_kib": rss_before_kib,
        "rss_after_kib": rss_after,
        "rss_growth_pct": (
            round(100 * (rss_after - rss_before_kib) / rss_before_kib, 1)
            if rss_after and rss_before_kib
            else None
        ),
    }
    if last is None:
        result["reason"] = "debug endpoint unreachable (no admin token, or not exposed)"
    return result
