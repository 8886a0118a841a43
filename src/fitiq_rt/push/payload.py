"""The APNs body of one notification (CONTRACT.md §6), always under Apple's 4 KB.

The alert says what happened in words a lock screen shows ("Meal logged" / "2 eggs and toast —
300 kcal"); the phone must still fetch or resume for the meal log itself (docs/ios-client.md):
a push may be late, collapsed with the next one, or never arrive.
"""

from __future__ import annotations

from typing import Any

import orjson

from ..notifications import Notification

MAX_PAYLOAD_BYTES = 4096  # Apple's limit for an alert push
# About what a lock screen shows, and what keeps the body far below the limit: 178 characters
# escaped at worst to 6 bytes each, plus a fixed title, a uuid and a seq, is about 1.1 KB.
MAX_BODY_CHARS = 178
THREAD_ID = "meal-logs"


def alert_text(note: Notification) -> tuple[str, str]:
    """(title, body) for the alert: the meal as typed, and its calories or that it failed."""
    meal = note.data
    said = " ".join(str(meal.get("raw_input") or "").split())  # one line, no control characters
    if note.type == "meal_log.completed":
        calories = (meal.get("totals") or {}).get("calories")
        tail = f" — {round(calories):d} kcal" if isinstance(calories, int | float) else ""
        return "Meal logged", _shortened(said, MAX_BODY_CHARS - len(tail)) + tail
    tail = " — could not be read; tap to try again"
    return "Meal not logged", _shortened(said, MAX_BODY_CHARS - len(tail)) + tail


def build_payload(note: Notification) -> bytes:
    """The §6 JSON body, under MAX_PAYLOAD_BYTES because the alert text is capped."""
    title, body = alert_text(note)
    payload: dict[str, Any] = {
        "aps": {"alert": {"title": title, "body": body}, "thread-id": THREAD_ID},
        "seq": note.seq,
        "meal_log_id": note.meal_log_id or "",
        "type": note.type,
    }
    return orjson.dumps(payload)


def _shortened(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)].rstrip() + "…"
