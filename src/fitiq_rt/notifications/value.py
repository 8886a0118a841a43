"""The notification value: one stored event for one user, with its per-user seq.

The frame text is rendered once when the value is built, so fan-out to ten sockets costs one
JSON encoding, not ten.
"""

from __future__ import annotations

from typing import Any

import attrs
import orjson


@attrs.frozen
class Notification:
    user_id: str
    seq: int
    type: str  # meal_log.completed | meal_log.failed
    event_id: str
    created_at: str
    data: dict[str, Any] = attrs.field(eq=False, repr=False)
    frame: str = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        payload = {
            "type": self.type,
            "seq": self.seq,
            "event_id": self.event_id,
            "created_at": self.created_at,
            "data": self.data,
        }
        object.__setattr__(self, "frame", orjson.dumps(payload).decode())

    @property
    def meal_log_id(self) -> str | None:
        value = self.data.get("id")
        return value if isinstance(value, str) else None
