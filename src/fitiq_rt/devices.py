"""An APNs device of a user (CONTRACT.md §3 `/api/v1/devices`): the record both stores keep.

The device token is a secret-ish identifier (whoever holds it can address the phone through the
app's key): it is stored whole, but only `device_tail` of it ever reaches a log line.
"""

from __future__ import annotations

import re
from typing import Any

import attrs

PLATFORMS = ("ios",)
ENVIRONMENTS = ("production", "sandbox")
MIN_TOKEN_HEX = 64
MAX_TOKEN_HEX = 200
TAIL = 8  # characters of a device token a log line may carry

_HEX_TOKEN = re.compile(rf"[0-9a-fA-F]{{{MIN_TOKEN_HEX},{MAX_TOKEN_HEX}}}")


@attrs.frozen
class Device:
    device_token: str  # lower-case hex
    user_id: str
    platform: str
    environment: str
    created_at: str
    updated_at: str

    def to_json(self) -> dict[str, Any]:
        return {
            "device_token": self.device_token,
            "platform": self.platform,
            "environment": self.environment,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


def normalized_token(text: str) -> str | None:
    """The stored form of a device token (lower-case hex), or None when it is not one."""
    return text.lower() if _HEX_TOKEN.fullmatch(text) else None


def device_tail(token: str) -> str:
    """What a log line may say about a device: the token's last TAIL characters."""
    return token[-TAIL:]
