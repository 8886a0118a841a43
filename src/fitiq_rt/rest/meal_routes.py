"""REST for meal logs (CONTRACT.md §3): create (idempotent), read one, and the polling list.

Every bad input answers the contract's JSON error with a precise status; nothing a client sends
reaches a 500. The checks are hand-written for those precise codes; their bounds and the
documented shapes come from `schemas.py`, which `/openapi.json` is generated from.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from quart import Quart, request

from .. import events
from ..clock import parse_rfc3339
from ..logconfig import get_logger
from ..meals.model import MEAL_TYPES, now_stamp, stamp
from ..meals.store import IdempotencyConflict, NewMealLog
from .common import ApiError, authenticate, invalid, json_response, read_json_object
from .openapi import describe
from .schemas import (
    DEFAULT_LIST_LIMIT,
    MAX_IDEMPOTENCY_KEY,
    MAX_LIST_LIMIT,
    MAX_RAW_INPUT,
    CreateHeaders,
    CreateRejected,
    InvalidJson,
    ListQuery,
    MealLogCreate,
    MealLogList,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
    Unavailable,
    ValidationFailed,
)
from .schemas import MealLog as MealLogBody

if TYPE_CHECKING:
    from ..app import Services

log = get_logger("fitiq_rt.meals")

_DIGITS = re.compile(r"[0-9]{1,9}")


def parse_new_meal_log(
    payload: dict[str, Any], user_id: str, idempotency_key: str | None
) -> NewMealLog:
    raw_input = payload.get("raw_input")
    if not isinstance(raw_input, str):
        raise invalid("raw_input is required and must be a string")
    if not raw_input.strip():
        raise invalid("raw_input must not be empty")
    if len(raw_input) > MAX_RAW_INPUT:
        raise invalid(f"raw_input must be at most {MAX_RAW_INPUT} characters")
    if "\x00" in raw_input:
        raise invalid("raw_input must not contain NUL characters")
    meal_type = payload.get("meal_type")
    if meal_type is not None and meal_type not in MEAL_TYPES:
        raise invalid("meal_type must be one of breakfast, lunch, dinner, snack")
    logged_at_raw = payload.get("logged_at")
    if logged_at_raw is None:
        logged_at = now_stamp()
    else:
        try:
            moment = parse_rfc3339(logged_at_raw)
        except (ValueError, TypeError, OverflowError):
            raise invalid("logged_at must be an RFC 3339 timestamp with a time zone") from None
        logged_at = stamp(moment)
    return NewMealLog(
        user_id=user_id,
        raw_input=raw_input,
        meal_type=meal_type,
        logged_at=logged_at,
        idempotency_key=idempotency_key,
    )


def _idempotency_key() -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY or not key.isprintable():
        raise invalid(f"Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY} printable characters")
    return key


def _list_params() -> tuple[datetime | None, int]:
    since_raw = request.args.get("updated_since")
    since = None
    if since_raw is not None:
        try:
            since = parse_rfc3339(since_raw)
        except (ValueError, OverflowError):
            raise invalid("updated_since must be an RFC 3339 timestamp with a time zone") from None
    limit_raw = request.args.get("limit")
    limit = DEFAULT_LIST_LIMIT
    if limit_raw is not None:
        # Not str.isdigit(): it accepts "²", which int() then refuses (a 500).
        if not _DIGITS.fullmatch(limit_raw) or not 1 <= int(limit_raw) <= MAX_LIST_LIMIT:
            raise invalid(f"limit must be an integer from 1 to {MAX_LIST_LIMIT}")
        limit = int(limit_raw)
    return since, limit


def register_meal_routes(app: Quart, services: Services) -> None:
    store = services.store

    @app.post("/api/v1/meal-logs/natural")
    @describe(
        request=MealLogCreate,
        headers=CreateHeaders,
        responses={
            200: MealLogBody,
            201: MealLogBody,
            400: InvalidJson,
            401: Unauthorized,
            413: PayloadTooLarge,
            422: CreateRejected,
            503: Unavailable,
        },
    )
    async def create_meal_log() -> Any:
        """Log a meal typed in natural language.

        Answers 201 with the new meal log (status pending); the parsed items arrive later as a
        `meal_log.completed` notification on the WebSocket. A retry with the same
        Idempotency-Key answers 200 with the body of the first answer.
        """
        identity = authenticate(services.verifier)
        key = _idempotency_key()
        new = parse_new_meal_log(await read_json_object(), identity.user_id, key)
        try:
            meal, created = await store.create_meal_log(new)
        except IdempotencyConflict as conflict:
            raise ApiError(422, "idempotency_key_reused", str(conflict)) from None
        if not created:
            return json_response(meal.as_created(), 200)
        services.metrics.meal_logs.labels("pending").inc()
        log.info(events.MEAL_LOG_CREATED, meal_log_id=meal.id, user_id=meal.user_id)
        services.dispatcher.submit(meal.id, meal)
        return json_response(meal.to_json(), 201)

    @app.get("/api/v1/meal-logs/<meal_log_id>")
    @describe(
        responses={200: MealLogBody, 401: Unauthorized, 404: NotFound, 503: Unavailable},
        path_formats={"meal_log_id": "uuid"},
    )
    async def get_meal_log(meal_log_id: str) -> Any:
        """Read one of the caller's meal logs.

        Another user's meal log is a 404, exactly like one that does not exist.
        """
        identity = authenticate(services.verifier)
        try:
            uuid.UUID(meal_log_id)
        except ValueError:
            raise ApiError(404, "not_found", "no such meal log") from None
        meal = await store.get_meal_log(identity.user_id, meal_log_id)
        if meal is None:
            raise ApiError(404, "not_found", "no such meal log")
        return json_response(meal.to_json())

    @app.get("/api/v1/meal-logs")
    @describe(
        query=ListQuery,
        responses={
            200: MealLogList,
            401: Unauthorized,
            422: ValidationFailed,
            503: Unavailable,
        },
    )
    async def list_meal_logs() -> Any:
        """List the caller's meal logs updated since a moment: the polling fallback.

        Meal logs updated strictly after `updated_since`, oldest update first, newest last.
        """
        identity = authenticate(services.verifier)
        since, limit = _list_params()
        meals = await store.list_meal_logs(identity.user_id, since, limit)
        return json_response({"items": [meal.to_json() for meal in meals]})
