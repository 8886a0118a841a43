"""Time helpers: wall-clock stamps for clients, trio's clock for every deadline.

Deadlines use `trio.current_time()` so tests under `autojump_clock` see exact virtual times;
wall-clock values only go into messages and into token `exp` arithmetic.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime


def utc_now() -> datetime:
    return datetime.now(UTC)


def rfc3339(moment: datetime | None = None) -> str:
    """RFC 3339 with milliseconds and a Z: the stamps of frames and notifications (`ts`,
    `created_at`, `expires_at`). Meal-log fields are stored with microseconds instead
    (`meals.model.stamp`), so that they sort and compare exactly as text."""
    moment = moment or utc_now()
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def rfc3339_from_epoch(seconds: float) -> str:
    return rfc3339(datetime.fromtimestamp(seconds, UTC))


def parse_rfc3339(text: str) -> datetime:
    """Parse an RFC 3339 timestamp; a naive or malformed one raises ValueError."""
    if not isinstance(text, str) or len(text) < 10 or len(text) > 40:
        raise ValueError("not an RFC 3339 timestamp")
    normalized = text.strip()
    if normalized[-1:] in ("z", "Z"):
        normalized = normalized[:-1] + "+00:00"
    if "T" not in normalized.upper():
        raise ValueError("RFC 3339 needs a date and a time")
    moment = datetime.fromisoformat(normalized)
    if moment.tzinfo is None:
        raise ValueError("RFC 3339 needs a time zone offset")
    return moment.astimezone(UTC)


wall_time = time.time
