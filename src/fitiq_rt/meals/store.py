"""The storage interfaces: narrow enough that SQLite and PostgreSQL implement the same thing.

One database holds three things, each with its own protocol: meal logs (`MealStore`, here),
notifications (`notifications.NotificationHistory`) and devices (`devices.DeviceStore`). One
class implements all three (`Store`), because finishing a meal log and storing its notification
happen in one transaction: a crash can never leave a completed meal log without its notification
(or a notification for a result that was not saved), and the per-user seq has no gap.
"""

from __future__ import annotations

import os
import socket
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import attrs
import trio

from ..devices import DeviceStore
from ..notifications import Notification, NotificationHistory
from .model import MealLog


class IdempotencyConflict(Exception):
    """The same Idempotency-Key was used before with a different request body."""


class StoreUnavailable(Exception):
    """The database cannot be reached; the API answers 503 and nothing is half-written."""


@attrs.frozen
class NewMealLog:
    user_id: str
    raw_input: str
    meal_type: str | None
    logged_at: str
    idempotency_key: str | None


@attrs.frozen
class Outcome:
    """What processing produced, stored together with the notification it causes."""

    status: str  # completed | failed
    items: tuple[dict[str, Any], ...]
    totals: dict[str, float]
    error: str | None


class MealStore(Protocol):
    """Meal logs: what the REST API and the dispatcher read and write."""

    #: Whether other nodes may take the same meal log (PostgreSQL's leased claims): then a worker
    #: claims a meal log before processing it. Without (SQLite: one process owns the file) the
    #: claim only tells readers `processing`, so a fast result can skip it.
    claims_are_shared: bool

    async def create_meal_log(self, new: NewMealLog) -> tuple[MealLog, bool]:
        """Insert a pending meal log; (existing, False) when the idempotency key was seen."""
        ...

    async def get_meal_log(self, user_id: str, meal_log_id: str) -> MealLog | None: ...

    async def list_meal_logs(
        self, user_id: str, updated_since: datetime | None, limit: int
    ) -> list[MealLog]: ...

    async def mark_processing(self, meal_log_id: str) -> MealLog | None: ...

    async def finish_meal_log(
        self, meal_log_id: str, outcome: Outcome, history_limit: int
    ) -> tuple[MealLog, Notification]:
        """Store the outcome and its notification (next per-user seq) in one transaction."""
        ...

    async def unfinished_meal_logs(self) -> list[MealLog]: ...


class Store(MealStore, NotificationHistory, DeviceStore, Protocol):
    """The whole database, with its life: what `open_store` returns."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Background upkeep while open (SQLite: WAL checkpoints), until cancelled."""
        ...

    async def healthy(self) -> bool: ...


def open_store(
    database_url: str,
    *,
    data_dir: Path,
    pool_size: int = 10,
    lease_seconds: float = 60.0,
    timeout: float = 3.0,
) -> Store:
    """The store for a FITIQ_DATABASE_URL (the scheme was validated with the settings).

    `pool_size`, `lease_seconds` and `timeout` are PostgreSQL's (FITIQ_DB_POOL_SIZE,
    FITIQ_DB_LEASE, FITIQ_DB_TIMEOUT); SQLite has one writer and no leases.

    On PostgreSQL the node's name is the host plus the settings' data directory (absolute), so a
    restarted node recognises the claims its previous incarnation left, however the directory
    was given (FITIQ_DATA_DIR, `serve --data-dir`, or settings built in-process).
    """
    if database_url.startswith("sqlite:///"):
        from .sqlite_store import SqliteStore

        return SqliteStore(database_url.removeprefix("sqlite:///"))
    from .postgres_store import PostgresStore

    node_name = f"{socket.gethostname()}:{os.path.abspath(data_dir)}"
    return PostgresStore(
        database_url,
        node_name=node_name,
        pool_size=pool_size,
        lease_seconds=lease_seconds,
        pool_timeout=timeout,
        connect_timeout=max(1, round(timeout)),
    )
