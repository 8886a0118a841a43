"""The shared store for several nodes: PostgreSQL through psycopg 3 and a connection pool.

psycopg has no trio support (its async API is asyncio-only), so every call runs the sync API in
a worker thread through `trio.to_thread.run_sync`, at most one thread per pooled connection.

What makes N nodes safe on one database:
- the per-user seq is taken with `INSERT ... ON CONFLICT DO UPDATE ... RETURNING` on the user's
  `user_seq` row in the same transaction that stores the outcome and the notification: the row
  lock serialises every node finishing for that user, and a rollback takes the increment back, so
  no seq is issued twice and none is skipped;
- a meal log is claimed with a lease (`claimed_by`, `claimed_until`, on the database's clock), so
  two dispatchers never process it at once, and a crashed node's claim expires and is recovered;
- migrations run under a PostgreSQL advisory lock, so nodes starting together migrate once.

Rows render exactly like the SQLite store's: timestamps are the same fixed-width text, JSON is
stored as the text orjson wrote (key order and numbers unchanged).
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import psycopg
import trio
from psycopg_pool import ConnectionPool

from .. import events
from ..devices import Device
from ..logconfig import get_logger
from ..notifications import HistoryPage, Notification
from .model import MealLog, now_stamp, stamp
from .rows import (
    DEVICE_COLUMNS,
    MEAL_COLUMNS,
    UPSERT_DEVICE,
    device_from_row,
    finished_notification,
    json_columns,
    meal_from_row,
    meal_params,
    note_from_row,
    notification_identity,
    notification_type,
    pending_meal,
    same_request,
)
from .store import NewMealLog, Outcome, StoreUnavailable
from .store_trace import CallTimer

log = get_logger("fitiq_rt.store")

T = TypeVar("T")
Conn = psycopg.Connection[tuple[Any, ...]]

SCHEMA_VERSION = 2
HEALTH_TIMEOUT = 2.0
RECONNECT_GIVE_UP = 10.0
# A pooled connection back from a call this recently is lent again without the pool's check
# (a round trip per call); one idle longer is checked, since a database restart kills them all.
# Within the window a dead connection fails its call, which the callers already handle
# (StoreUnavailable: the API answers 503, the dispatcher retries), and the pool drops it.
CHECK_AFTER_IDLE = 1.0
MIGRATION_LOCK_KEY = 0x66697469_71727431  # "fitiqrt1": one advisory lock for schema changes
# Timestamps and ids are compared as text: the "C" collation keeps that a plain byte order (the
# same order SQLite uses), whatever the database's default collation is.
MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE meal_logs (
        id TEXT COLLATE "C" PRIMARY KEY,
        user_id TEXT NOT NULL,
        raw_input TEXT NOT NULL,
        meal_type TEXT,
        logged_at TEXT NOT NULL,
        status TEXT NOT NULL,
        items TEXT NOT NULL DEFAULT '[]',
        totals TEXT NOT NULL,
        error TEXT,
        created_at TEXT COLLATE "C" NOT NULL,
        updated_at TEXT COLLATE "C" NOT NULL,
        idempotency_key TEXT,
        claimed_by TEXT,
        claimed_until TIMESTAMPTZ
    );
    CREATE UNIQUE INDEX meal_logs_idempotency
        ON meal_logs (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
    CREATE INDEX meal_logs_user_updated ON meal_logs (user_id, updated_at);
    CREATE INDEX meal_logs_unfinished ON meal_logs (created_at)
        WHERE status IN ('pending', 'processing');
    CREATE TABLE user_seq (
        user_id TEXT PRIMARY KEY,
        last_seq BIGINT NOT NULL
    );
    CREATE TABLE notifications (
        user_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        type TEXT NOT NULL,
        event_id TEXT NOT NULL,
        created_at TEXT NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (user_id, seq)
    );
    """,
    2: """
    CREATE TABLE devices (
        device_token TEXT PRIMARY KEY,
        user_id TEXT NOT NULL,
        platform TEXT NOT NULL,
        environment TEXT NOT NULL,
        created_at TEXT COLLATE "C" NOT NULL,
        updated_at TEXT COLLATE "C" NOT NULL
    );
    CREATE INDEX devices_user ON devices (user_id);
    """,
}

_INSERT_MEAL = (
    f"INSERT INTO meal_logs ({MEAL_COLUMNS}) VALUES "
    "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING "
    "RETURNING id"
)
# A row may be claimed (or finished) when nobody holds a live lease on it.
_CLAIMABLE = (
    "(status = 'pending' OR (status = 'processing' "
    "AND (claimed_until IS NULL OR claimed_until < now() OR claimed_by = %(node)s)))"
)
_SINCE = """
WITH head AS (
    SELECT (SELECT last_seq FROM user_seq WHERE user_id = %(user)s) AS latest,
           (SELECT MIN(seq) FROM notifications WHERE user_id = %(user)s) AS oldest
)
SELECT head.latest, head.oldest, n.seq, n.type, n.event_id, n.created_at, n.data
FROM head LEFT JOIN LATERAL (
    SELECT seq, type, event_id, created_at, data FROM notifications
    WHERE user_id = %(user)s AND seq > %(after)s ORDER BY seq LIMIT %(limit)s
) AS n ON true
ORDER BY n.seq
"""


class RecentUse:
    """When each pooled connection was last handed back, so a busy pool skips its checks."""

    def __init__(
        self, idle: float = CHECK_AFTER_IDLE, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.idle = idle
        self.clock = clock
        self._returned: weakref.WeakKeyDictionary[Conn, float] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()  # worker threads lend and return connections at once
        self.checks = 0

    def returned(self, conn: Conn) -> None:
        with self._lock:
            self._returned[conn] = self.clock()

    def check(self, conn: Conn) -> None:
        """The pool's `check`: raise if a connection idle past `idle` does not answer."""
        with self._lock:
            returned = self._returned.get(conn)
        if returned is not None and self.clock() - returned < self.idle:
            return
        self.checks += 1
        ConnectionPool.check_connection(conn)


def _select_one(conn: Conn) -> bool:
    return conn.execute("SELECT 1").fetchone() == (1,)


def default_node_name() -> str:
    """The name of a store opened without one (tests, tools): this host and process.

    A server passes the name `open_store` derives from its data directory instead, which is what
    lets a restarted node recognise the claims its previous incarnation left.
    """
    return f"{socket.gethostname()}:pid{os.getpid()}"


def migrate(conn: Conn) -> None:
    """Bring the schema to SCHEMA_VERSION once, however many nodes start at the same moment."""
    conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
        current = (row[0] if row else None) or 0
        if current > SCHEMA_VERSION:
            raise RuntimeError(
                f"the database schema is version {current}, newer than this server "
                f"({SCHEMA_VERSION})"
            )
        for version in range(current + 1, SCHEMA_VERSION + 1):
            with conn.transaction():
                for statement in MIGRATIONS[version].split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (version,))
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))


class PostgresStore:
    """The Store protocol on PostgreSQL; one instance per process (node)."""

    claims_are_shared = True  # every node's sweep may take a meal log whose lease ran out

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        lease_seconds: float = 60.0,
        pool_timeout: float = 3.0,
        connect_timeout: int = 3,
        open_timeout: float = 10.0,
        node_name: str | None = None,
    ) -> None:
        self.url = url
        self.lease_seconds = lease_seconds
        # claimed_by = "<name>#<incarnation>": unique per process start, and a restarted node
        # recognises (and releases) the claims its previous incarnation left behind.
        self.node_name = node_name or default_node_name()
        self.node_id = f"{self.node_name}#{uuid.uuid4().hex[:12]}"
        self._open_timeout = open_timeout
        self.recent_use = RecentUse()
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            open=False,
            timeout=pool_timeout,
            # Pooled connections die with a database restart: check one idle for a while
            # before lending it out (see CHECK_AFTER_IDLE).
            check=self.recent_use.check,
            kwargs={"autocommit": True, "connect_timeout": connect_timeout},
            # The pool's reconnect backoff doubles without a cap; giving up early means the next
            # request starts a fresh attempt, so recovery after a long outage stays quick.
            reconnect_timeout=RECONNECT_GIVE_UP,
            name="fitiq",
        )
        # One worker thread per pooled connection; more would only queue inside the pool.
        self._limiter = trio.CapacityLimiter(pool_size)
        self._opened = False

    async def open(self) -> None:
        await trio.to_thread.run_sync(self._open_sync)

    def _open_sync(self) -> None:
        try:
            self._pool.open(wait=True, timeout=self._open_timeout)
            with self._pool.connection() as conn:
                migrate(conn)
                released = _release_previous_claims(conn, self.node_name, self.node_id)
        except psycopg.OperationalError as error:
            self._pool.close()
            raise StoreUnavailable(f"PostgreSQL is unreachable: {error}") from error
        self._opened = True
        if released:
            log.info(events.STORE_CLAIMS_RELEASED, meal_logs=released, node=self.node_name)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Nothing to keep up in the background: PostgreSQL checkpoints by itself."""
        task_status.started()
        await trio.sleep_forever()

    async def close(self) -> None:
        if self._opened:
            self._opened = False
            await trio.to_thread.run_sync(self._pool.close, limiter=self._limiter)

    async def _run(
        self,
        fn: Callable[[Conn], T],
        kind: str,
        pool_wait: float | None = None,
        abandon: bool = False,
    ) -> T:
        """Run `fn` on a pooled connection in a worker thread; outages become StoreUnavailable."""
        if not self._opened:
            raise StoreUnavailable("the store is not open")
        timer = CallTimer(kind)

        def call() -> T:
            try:
                with self._pool.connection(timeout=pool_wait) as conn:
                    timer.start()  # queue_ms covers the wait for a thread and a connection
                    try:
                        return fn(conn)
                    finally:
                        timer.stop()
                        self.recent_use.returned(conn)
            except (psycopg.OperationalError, psycopg.InterfaceError) as error:
                raise StoreUnavailable(str(error).strip()[:300]) from error

        try:
            return await trio.to_thread.run_sync(
                call, limiter=self._limiter, abandon_on_cancel=abandon
            )
        finally:
            timer.report()

    async def healthy(self) -> bool:
        """A quick probe for /healthz: a hung database answers "down", it does not hang."""
        with trio.move_on_after(HEALTH_TIMEOUT):
            try:
                return await self._run(
                    _select_one, "healthy", pool_wait=HEALTH_TIMEOUT / 2, abandon=True
                )
            except StoreUnavailable:
                return False
        return False

    async def create_meal_log(self, new: NewMealLog) -> tuple[MealLog, bool]:
        def insert(conn: Conn) -> tuple[MealLog, bool]:
            meal = pending_meal(new)
            inserted = conn.execute(_INSERT_MEAL, meal_params(meal)).fetchone()
            if inserted is not None:
                return meal, True
            # The key was used before (perhaps on another node a moment ago): the same meal log.
            row = conn.execute(
                f"SELECT {MEAL_COLUMNS} FROM meal_logs WHERE user_id = %s AND idempotency_key = %s",
                (new.user_id, new.idempotency_key),
            ).fetchone()
            if row is None:  # pragma: no cover - a conflict always leaves the row behind
                raise StoreUnavailable("the idempotent meal log vanished; retry")
            return same_request(meal_from_row(row), new), False

        return await self._run(insert, "create")

    async def get_meal_log(self, user_id: str, meal_log_id: str) -> MealLog | None:
        def select(conn: Conn) -> MealLog | None:
            row = conn.execute(
                f"SELECT {MEAL_COLUMNS} FROM meal_logs WHERE id = %s AND user_id = %s",
                (meal_log_id, user_id),
            ).fetchone()
            return meal_from_row(row) if row else None

        return await self._run(select, "get")

    async def list_meal_logs(
        self, user_id: str, updated_since: datetime | None, limit: int
    ) -> list[MealLog]:
        since = stamp(updated_since) if updated_since is not None else ""

        def select(conn: Conn) -> list[MealLog]:
            rows = conn.execute(
                f"SELECT {MEAL_COLUMNS} FROM meal_logs WHERE user_id = %s AND updated_at > %s "
                "ORDER BY updated_at, id LIMIT %s",
                (user_id, since, limit),
            ).fetchall()
            return [meal_from_row(row) for row in rows]

        return await self._run(select, "list")

    async def mark_processing(self, meal_log_id: str) -> MealLog | None:
        """Claim the meal log for this node for one lease; None when finished or claimed."""

        def update(conn: Conn) -> MealLog | None:
            row = conn.execute(
                "UPDATE meal_logs SET status = 'processing', updated_at = %(now)s, "
                "claimed_by = %(node)s, "
                "claimed_until = now() + make_interval(secs => %(lease)s) "
                f"WHERE id = %(id)s AND {_CLAIMABLE} RETURNING {MEAL_COLUMNS}",
                {
                    "now": now_stamp(),
                    "node": self.node_id,
                    "lease": self.lease_seconds,
                    "id": meal_log_id,
                },
            ).fetchone()
            return meal_from_row(row) if row else None

        return await self._run(update, "mark_processing")

    async def finish_meal_log(
        self, meal_log_id: str, outcome: Outcome, history_limit: int
    ) -> tuple[MealLog, Notification]:
        def finish(conn: Conn) -> tuple[MealLog, Notification]:
            return _finish_in_one_statement(conn, self.node_id, meal_log_id, outcome, history_limit)

        return await self._run(finish, "finish")

    async def unfinished_meal_logs(self) -> list[MealLog]:
        """Pending meal logs, and processing ones nobody else holds a live claim on.

        That includes this node's own claims: one whose save failed in an outage is not in
        flight any more, and must not wait out its own lease (the dispatcher skips the ones it
        is still working on).
        """

        def select(conn: Conn) -> list[MealLog]:
            rows = conn.execute(
                f"SELECT {MEAL_COLUMNS} FROM meal_logs WHERE {_CLAIMABLE} ORDER BY created_at, id",
                {"node": self.node_id},
            ).fetchall()
            return [meal_from_row(row) for row in rows]

        return await self._run(select, "unfinished")

    async def latest_seq(self, user_id: str) -> int:
        def select(conn: Conn) -> int:
            row = conn.execute(
                "SELECT last_seq FROM user_seq WHERE user_id = %s", (user_id,)
            ).fetchone()
            return int(row[0]) if row else 0

        return await self._run(select, "latest_seq")

    async def latest_seqs(self, user_ids: Sequence[str]) -> dict[str, int]:
        """One statement however many users: the ids travel as one text[] parameter."""
        ids = list(user_ids)

        def select(conn: Conn) -> dict[str, int]:
            rows = conn.execute(
                "SELECT user_id, last_seq FROM user_seq WHERE user_id = ANY(%s)", (ids,)
            ).fetchall()
            return {user_id: int(last_seq) for user_id, last_seq in rows}

        return await self._run(select, "latest_seqs")

    async def since(self, user_id: str, after_seq: int, limit: int) -> HistoryPage:
        """One statement, so the page, the newest and the oldest seq come from one snapshot."""

        def select(conn: Conn) -> HistoryPage:
            rows = conn.execute(
                _SINCE, {"user": user_id, "after": after_seq, "limit": limit}
            ).fetchall()
            latest, oldest = rows[0][0], rows[0][1]
            items = tuple(note_from_row(user_id, row[2:]) for row in rows if row[2] is not None)
            return HistoryPage(
                items=items,
                latest=int(latest) if latest is not None else 0,
                oldest=int(oldest) if oldest is not None else None,
            )

        return await self._run(select, "since")

    async def put_device(
        self, user_id: str, device_token: str, platform: str, environment: str
    ) -> tuple[Device, bool]:
        now = now_stamp()

        def upsert(conn: Conn) -> tuple[Device, bool]:
            row = conn.execute(
                _UPSERT_DEVICE, (device_token, user_id, platform, environment, now, now)
            ).fetchone()
            assert row is not None
            device = device_from_row(row)
            return device, device.created_at == now

        return await self._run(upsert, "put_device")

    async def delete_device(self, user_id: str, device_token: str) -> bool:
        def delete(conn: Conn) -> bool:
            cursor = conn.execute(
                "DELETE FROM devices WHERE device_token = %s AND user_id = %s",
                (device_token, user_id),
            )
            return cursor.rowcount > 0

        return await self._run(delete, "delete_device")

    async def list_devices(self, user_id: str) -> list[Device]:
        def select(conn: Conn) -> list[Device]:
            rows = conn.execute(
                f"SELECT {DEVICE_COLUMNS} FROM devices WHERE user_id = %s "
                "ORDER BY created_at, device_token",
                (user_id,),
            ).fetchall()
            return [device_from_row(row) for row in rows]

        return await self._run(select, "list_devices")


_UPSERT_DEVICE = UPSERT_DEVICE.format(p="%s")


def _release_previous_claims(conn: Conn, node_name: str, node_id: str) -> int:
    """Free what this node's previous incarnation held: that process is gone (we are it now),
    so its meal logs need not wait out the lease before the recovery pass takes them."""
    cursor = conn.execute(
        "UPDATE meal_logs SET claimed_until = NULL "
        "WHERE status = 'processing' AND claimed_by <> %(me)s "
        "AND left(claimed_by, length(%(name)s) + 1) = %(name)s || '#'",
        {"me": node_id, "name": node_name},
    )
    return cursor.rowcount


def _meal_json_sql(alias: str) -> str:
    """The finished meal log as JSON text built in SQL, keys in `MealLog.to_json` order; items
    and totals are cast from the text orjson wrote, which `json` keeps byte for byte."""
    fields = ", ".join(
        f"'{name}', {alias}.{name}"
        for name in ("id", "user_id", "raw_input", "meal_type", "logged_at", "status")
    )
    return (
        f"json_build_object({fields}, 'items', {alias}.items::json, "
        f"'totals', {alias}.totals::json, 'error', {alias}.error, "
        f"'created_at', {alias}.created_at, 'updated_at', {alias}.updated_at)::text"
    )


# The whole finish in one statement, so one round trip and its own transaction (autocommit):
# the outcome, the user's next seq (its row lock orders concurrent finishes on every node and is
# held until this statement commits), the notification, and the pruning of old history. No row
# when the meal log is gone, finished or claimed elsewhere: then nothing at all is written.
_FINISH = f"""
WITH meal AS (
    UPDATE meal_logs SET status = %(status)s, items = %(items)s, totals = %(totals)s,
        error = %(error)s, updated_at = %(now)s, claimed_by = NULL, claimed_until = NULL
    WHERE id = %(id)s AND {_CLAIMABLE} RETURNING {MEAL_COLUMNS}
), seq AS (
    INSERT INTO user_seq (user_id, last_seq) SELECT user_id, 1 FROM meal
    ON CONFLICT (user_id) DO UPDATE SET last_seq = user_seq.last_seq + 1
    RETURNING user_id, last_seq
), note AS (
    INSERT INTO notifications (user_id, seq, type, event_id, created_at, data)
    SELECT seq.user_id, seq.last_seq, %(type)s, %(event_id)s, %(created_at)s,
        {_meal_json_sql("meal")}
    FROM seq, meal
), pruned AS (
    DELETE FROM notifications old USING seq
    WHERE old.user_id = seq.user_id AND old.seq <= seq.last_seq - %(history_limit)s
)
SELECT {", ".join(f"meal.{column.strip()}" for column in MEAL_COLUMNS.split(","))}, seq.last_seq
FROM meal, seq
"""


def _finish_in_one_statement(
    conn: Conn, node_id: str, meal_log_id: str, outcome: Outcome, history_limit: int
) -> tuple[MealLog, Notification]:
    """Outcome, next seq, notification and pruning: all of it commits, or none of it."""
    event_id, created_at = notification_identity()
    items, totals = json_columns(outcome.items, outcome.totals)
    row = conn.execute(
        _FINISH,
        {
            "status": outcome.status,
            "items": items,
            "totals": totals,
            "error": outcome.error,
            "now": now_stamp(),
            "id": meal_log_id,
            "node": node_id,
            "type": notification_type(outcome),
            "event_id": event_id,
            "created_at": created_at,
            "history_limit": history_limit,
        },
    ).fetchone()
    if row is None:
        raise LookupError(
            f"meal log {meal_log_id} does not exist, is finished or claimed elsewhere"
        )
    meal = meal_from_row(row[:-1])
    note = finished_notification(
        meal, outcome, int(row[-1]), event_id=event_id, created_at=created_at
    )
    return meal, note
