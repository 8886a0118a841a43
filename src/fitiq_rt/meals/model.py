"""The meal log value and its JSON form (CONTRACT.md §3)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import attrs

MEAL_TYPES = ("breakfast", "lunch", "dinner", "snack")
STATUSES = ("pending", "processing", "completed", "failed")
ZERO_TOTALS: dict[str, float] = {"calories": 0, "protein_g": 0, "carbs_g": 0, "fat_g": 0}


def stamp(moment: datetime) -> str:
    """Fixed-width UTC timestamps (microseconds, Z): they sort as strings and as times alike."""
    # isoformat pads the year to four digits; strftime("%Y") writes year 87 as "87".
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def now_stamp() -> str:
    return stamp(datetime.now(UTC))


@attrs.frozen
class MealLog:
    id: str
    user_id: str
    raw_input: str
    meal_type: str | None
    logged_at: str
    status: str
    items: tuple[dict[str, Any], ...]
    totals: dict[str, float]
    error: str | None
    created_at: str
    updated_at: str
    idempotency_key: str | None = attrs.field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "user_id": self.user_id,
            "raw_input": self.raw_input,
            "meal_type": self.meal_type,
            "logged_at": self.logged_at,
            "status": self.status,
            "items": list(self.items),
            "totals": dict(self.totals),
            "error": self.error,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }

    def as_created(self) -> dict[str, Any]:
        """The body the creating request answered with: an idempotent retry gets it again."""
        body = self.to_json()
        body.update(
            status="pending",
            items=[],
            totals=dict(ZERO_TOTALS),
            error=None,
            updated_at=self.created_at,
        )
        return body
