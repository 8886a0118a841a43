"""Push's start-up error, in a module that imports nothing heavy (startup_errors.py reads it)."""

from __future__ import annotations


class PushKeyError(Exception):
    """FITIQ_APNS_KEY_FILE cannot be used; the message is the one start-up line."""

    def __init__(self, message: str, exit_status: int) -> None:
        super().__init__(message)
        self.exit_status = exit_status
