"""What both stores share: the meal-log columns, row mapping, the idempotency rule and the
values a new meal log or a finished one's notification start from.

The SQL dialects differ (placeholders, locking); the data and the rules must not.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import orjson

from ..clock import rfc3339
from ..devices import Device
from ..notifications import Notification
from .model import ZERO_TOTALS, MealLog, now_stamp
from .store import IdempotencyConflict, NewMealLog, Outcome

MEAL_COLUMNS = (
    "id, user_id, raw_input, meal_type, logged_at, status, items, totals, error, "
    "created_at, updated_at, idempotency_key"
)


def meal_from_row(row: tuple[Any, ...]) -> MealLog:
    return MealLog(
        id=row[0],
        user_id=row[1],
        raw_input=row[2],
        meal_type=row[3],
        logged_at=row[4],
        status=row[5],
        items=tuple(orjson.loads(row[6])),
        totals=orjson.loads(row[7]),
        error=row[8],
        created_at=row[9],
        updated_at=row[10],
        idempotency_key=row[11],
    )


def json_columns(items: Sequence[dict[str, Any]], totals: dict[str, float]) -> tuple[str, str]:
    """The `items` and `totals` columns: the text orjson writes (key order and numbers kept)."""
    return orjson.dumps(list(items)).decode(), orjson.dumps(totals).decode()


def meal_params(meal: MealLog) -> tuple[Any, ...]:
    """The row values of a meal log, in MEAL_COLUMNS order."""
    return (
        meal.id,
        meal.user_id,
        meal.raw_input,
        meal.meal_type,
        meal.logged_at,
        meal.status,
        *json_columns(meal.items, meal.totals),
        meal.error,
        meal.created_at,
        meal.updated_at,
        meal.idempotency_key,
    )


def pending_meal(new: NewMealLog) -> MealLog:
    now = now_stamp()
    return MealLog(
        id=str(uuid.uuid4()),
        user_id=new.user_id,
        raw_input=new.raw_input,
        meal_type=new.meal_type,
        logged_at=new.logged_at,
        status="pending",
        items=(),
        totals=dict(ZERO_TOTALS),
        error=None,
        created_at=now,
        updated_at=now,
        idempotency_key=new.idempotency_key,
    )


def same_request(meal: MealLog, new: NewMealLog) -> MealLog:
    """An idempotent retry must be the same request; a different body is a client bug."""
    if (meal.raw_input, meal.meal_type) != (new.raw_input, new.meal_type):
        raise IdempotencyConflict("this Idempotency-Key was used with a different request body")
    return meal


def notification_type(outcome: Outcome) -> str:
    return f"meal_log.{outcome.status}"


def notification_identity() -> tuple[str, str]:
    """A new notification's event id and creation time (a store may need them before the row)."""
    return str(uuid.uuid4()), rfc3339()


def finished_notification(
    meal: MealLog,
    outcome: Outcome,
    seq: int,
    *,
    event_id: str | None = None,
    created_at: str | None = None,
) -> Notification:
    """The notification a finished meal log causes, carrying the stored meal log."""
    if event_id is None or created_at is None:
        event_id, created_at = notification_identity()
    return Notification(
        user_id=meal.user_id,
        seq=seq,
        type=notification_type(outcome),
        event_id=event_id,
        created_at=created_at,
        data=meal.to_json(),
    )


def note_from_row(user_id: str, row: tuple[Any, ...]) -> Notification:
    """A stored notification from (seq, type, event_id, created_at, data)."""
    return Notification(
        user_id=user_id,
        seq=int(row[0]),
        type=row[1],
        event_id=row[2],
        created_at=row[3],
        data=orjson.loads(row[4]),
    )


DEVICE_COLUMNS = "device_token, user_id, platform, environment, created_at, updated_at"

# Registering a device is one statement (on PostgreSQL the row lock orders two nodes registering
# one token): a token that was the caller's keeps its created_at (the caller learns "not new"
# from that), one of another user's moves to the caller. `{p}` is the driver's placeholder.
UPSERT_DEVICE = (
    f"INSERT INTO devices ({DEVICE_COLUMNS}) VALUES ({{p}}, {{p}}, {{p}}, {{p}}, {{p}}, {{p}}) "
    "ON CONFLICT (device_token) DO UPDATE SET "
    "created_at = CASE WHEN devices.user_id = excluded.user_id "
    "THEN devices.created_at ELSE excluded.created_at END, "
    "user_id = excluded.user_id, platform = excluded.platform, "
    "environment = excluded.environment, updated_at = excluded.updated_at "
    f"RETURNING {DEVICE_COLUMNS}"
)


def device_from_row(row: tuple[Any, ...]) -> Device:
    token, user_id, platform, environment, created_at, updated_at = row
    return Device(
        device_token=token,
        user_id=user_id,
        platform=platform,
        environment=environment,
        created_at=created_at,
        updated_at=updated_at,
    )
