"""The REST API's request and response types (CONTRACT.md §3), as pydantic models.

They are the single source of `/openapi.json` and of the limits the handlers enforce: the
handlers keep their own hand-written checks (so every bad input keeps its precise status and
error code), but read every bound from here, and the integration tests validate live responses
against the schemas generated from these classes, so the description cannot drift from the code.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field, create_model
from pydantic.json_schema import SkipJsonSchema

from ..devices import ENVIRONMENTS, MAX_TOKEN_HEX, MIN_TOKEN_HEX, PLATFORMS
from ..meals.model import MEAL_TYPES, STATUSES

MAX_BODY_BYTES = 64 * 1024
MAX_RAW_INPUT = 2000
MAX_IDEMPOTENCY_KEY = 255
DEFAULT_LIST_LIMIT = 100
MAX_LIST_LIMIT = 1000
MAX_USER_ID = 128

MealType = Literal[MEAL_TYPES]  # type: ignore[valid-type]
Status = Literal[STATUSES]  # type: ignore[valid-type]
NonNegative = Annotated[float, Field(ge=0)]
Count = Annotated[int, Field(ge=0)]
Platform = Literal[PLATFORMS]  # type: ignore[valid-type]
Environment = Literal[ENVIRONMENTS]  # type: ignore[valid-type]
DEVICE_TOKEN_PATTERN = f"^[0-9a-fA-F]{{{MIN_TOKEN_HEX},{MAX_TOKEN_HEX}}}$"


def _no_default(schema: dict[str, Any]) -> None:
    """An optional field that is never null: say nothing of its `None` default."""
    schema.pop("default", None)


# ------------------------------------------------------------------------------ requests


class MealLogCreate(BaseModel):
    """A meal typed in natural language; the server parses it into items in the background."""

    raw_input: str = Field(
        min_length=1,
        max_length=MAX_RAW_INPUT,
        description="What the user typed; must contain a non-blank character and no NUL.",
    )
    meal_type: MealType | None = None
    logged_at: datetime | None = Field(
        default=None,
        description=("RFC 3339 with a time zone offset; defaults to now."),
    )


class CreateHeaders(BaseModel):
    """Optional headers of the create request."""

    idempotency_key: str | SkipJsonSchema[None] = Field(
        default=None,
        min_length=1,
        max_length=MAX_IDEMPOTENCY_KEY,
        description="Same user + same key answers the first meal log again (200), never a second.",
        json_schema_extra=_no_default,
    )


class ListQuery(BaseModel):
    """The polling fallback's query."""

    updated_since: datetime | SkipJsonSchema[None] = Field(
        default=None,
        description="Only meal logs updated after this RFC 3339 instant.",
        json_schema_extra=_no_default,
    )
    limit: int = Field(default=DEFAULT_LIST_LIMIT, ge=1, le=MAX_LIST_LIMIT)


class DeviceRegister(BaseModel):
    """The APNs device the caller registers (its token is the path)."""

    platform: Platform
    environment: Environment = Field(
        default="production",
        description="`sandbox` for a development build: pushes go to Apple's sandbox gateway.",
    )


# ----------------------------------------------------------------------------- responses


class FoodItem(BaseModel):
    """One food the processor recognized (or not) in the raw input."""

    name: str
    quantity: float
    unit: str
    calories: float | None
    protein_g: float | None
    carbs_g: float | None
    fat_g: float | None
    recognized: bool | SkipJsonSchema[None] = Field(
        default=None,
        description="Whether the food is in the nutrition table.",
        json_schema_extra=_no_default,
    )


class Totals(BaseModel):
    """Sums over the recognized items."""

    calories: NonNegative
    protein_g: NonNegative
    carbs_g: NonNegative
    fat_g: NonNegative


class MealLog(BaseModel):
    """A meal log; `status` moves pending → processing → completed | failed.

    On SQLite a meal log processed within FITIQ_CLAIM_DELAY goes from pending to its result.
    """

    id: UUID
    user_id: str = Field(min_length=1, max_length=MAX_USER_ID)
    raw_input: str
    meal_type: MealType | None
    logged_at: datetime
    status: Status
    items: list[FoodItem]
    totals: Totals
    error: str | None
    created_at: datetime
    updated_at: datetime


class MealLogList(BaseModel):
    """The caller's meal logs, oldest update first (newest update last)."""

    items: list[MealLog]


class HealthOk(BaseModel):
    """The process answers (liveness); `ready` is what /readyz would say."""

    status: Literal["ok"]
    ready: bool
    checks: dict[str, str]


class Ready(BaseModel):
    """The node takes traffic: its database is up and it is not draining."""

    status: Literal["ready"]
    checks: dict[str, str]


class HealthDown(BaseModel):
    """The database is down, or the server is draining for shutdown: route elsewhere."""

    status: Literal["unavailable", "shutting_down"]
    checks: dict[str, str]


class ConnectionInfo(BaseModel):
    """One open WebSocket, as the registry sees it."""

    user_id: str
    connection_id: str
    connected_at: datetime
    last_seen: datetime
    age_seconds: NonNegative
    idle_seconds: NonNegative
    state: Literal["active", "idle"]
    messages_in: Count
    messages_out: Count
    queued: Count


class ConnectionsListing(BaseModel):
    """Every socket this process holds (the seed report's "registry state")."""

    total_connections: Count
    total_users: Count
    connections: list[ConnectionInfo]


class Device(BaseModel):
    """One APNs device of the caller: a queued notification is pushed to it."""

    device_token: str = Field(
        pattern=f"^[0-9a-f]{{{MIN_TOKEN_HEX},{MAX_TOKEN_HEX}}}$", description="Lower-case hex."
    )
    platform: Platform
    environment: Environment
    created_at: datetime
    updated_at: datetime


class DeviceList(BaseModel):
    """The caller's devices, oldest registration first."""

    items: list[Device]


# -------------------------------------------------------------------------------- errors


def error_model(name: str, codes: tuple[str, ...], description: str) -> type[BaseModel]:
    """`{"error": {"code", "message"}}` whose `code` is limited to what this status can say."""
    detail: Any = create_model(
        f"{name}Detail",
        code=(Literal[codes], ...),  # type: ignore[valid-type,arg-type]
        message=(str, Field(min_length=1)),
    )
    return create_model(name, __doc__=description, error=(detail, ...))


InvalidJson = error_model("InvalidJson", ("invalid_json",), "The body is not valid JSON.")
Unauthorized = error_model(
    "Unauthorized", ("unauthorized",), "No bearer token, or a bad or expired one."
)
Forbidden = error_model("Forbidden", ("forbidden",), "The token is not an admin token.")
NotFound = error_model("NotFound", ("not_found",), "No such meal log for this user.")
PayloadTooLarge = error_model(
    "PayloadTooLarge", ("payload_too_large",), "The body is larger than 64 KiB."
)
ValidationFailed = error_model(
    "ValidationFailed", ("validation_error",), "A field, header or parameter fails validation."
)
CreateRejected = error_model(
    "CreateRejected",
    ("validation_error", "idempotency_key_reused"),
    "A field or header fails validation, or the Idempotency-Key was used for another request.",
)
HeadersTooLarge = error_model(
    "HeadersTooLarge", ("headers_too_large",), "The request headers are too large."
)
Unavailable = error_model("Unavailable", ("unavailable",), "The database is unavailable; retry.")
DeviceNotFound = error_model("DeviceNotFound", ("not_found",), "No such device for this user.")
