"""The APNs body of one notification (CONTRACT.md §6), always under Apple's 4 KB.

The alert says what happened in words a lock screen shows ("Meal logged" / "2 eggs and toast —
300 kcal"); the phone must still fetch or resume for the meal log itself (docs/ios-client.md):
a push may be late, collapsed with the next one, or never arrive.
"""

from __future__ import annotations

from typing import Any

import orjson

from ..notification import Notification

MAX_PAYLOAD_BYTES = 4096  # Apple's limit for an alert push
MAX_BODY_CHARS = 178  # about what a lock screen shows; keeps the body far below the limit
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
    """The §6 JSON body; a body that would pass MAX_PAYLOAD_BYTES is shortened until it fits."""
    title, body = alert_text(note)
    while True:
        payload: dict[str, Any] = {
            "aps": {"alert": {"title": title, "body": body}, "thread-id": THREAD_ID},
            "seq": note.seq,
            "meal_log_id": note.meal_log_id or "",
            "type": note.type,
        }
        encoded = orjson.dumps(payload)
        if len(encoded) <= MAX_PAYLOAD_BYTES or not body:
            return encoded
        body = _shortened(body, len(body) // 2)


def _shortened(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)].rstrip() + "…"
