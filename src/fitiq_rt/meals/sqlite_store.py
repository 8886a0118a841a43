"""The embedded store: one SQLite file in WAL mode, called through `trio.to_thread`.

sqlite3 is blocking, so every call runs in a worker thread. Writes share one connection behind
a CapacityLimiter of one (the single writer SQLite wants), and the writes that queue for it
commit together (`sqlite_writer`); reads use their own connections, and WAL checkpoints run in
the background (`sqlite_checkpoint`), so neither waits behind a write.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import orjson
import trio

from ..devices import Device
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
    pending_meal,
    same_request,
)
from .sqlite_checkpoint import CHECKPOINT_INTERVAL, WAL_RESTART_BYTES, Checkpointer
from .sqlite_writer import GroupCommit, unavailable
from .store import NewMealLog, Outcome, StoreUnavailable
from .store_trace import CallTimer

T = TypeVar("T")

# Reader connections: reads run in parallel threads, and two cover this workload's reads
# (resume pages, welcome seqs, GETs) on a 2-core host; more only hold file descriptors.
READERS = 2

SCHEMA_VERSION = 2
MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE meal_logs (
        id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL,
        raw_input TEXT NOT NULL,
        meal_type TEXT,
        logged_at TEXT NOT NULL,
        status TEXT NOT NULL,
        items TEXT NOT NULL DEFAULT '[]',
        totals TEXT NOT NULL,
        error TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        idempotency_key TEXT
    );
    CREATE UNIQUE INDEX meal_logs_idempotency
        ON meal_logs (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
    CREATE INDEX meal_logs_user_updated ON meal_logs (user_id, updated_at);
    CREATE INDEX meal_logs_unfinished ON meal_logs (status)
        WHERE status IN ('pending', 'processing');
    CREATE TABLE user_seq (
        user_id TEXT PRIMARY KEY,
        last_seq INTEGER NOT NULL
    );
    CREATE TABLE notifications (
        user_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        type TEXT NOT NULL,
        event_id TEXT NOT NULL,
        created_at TEXT NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (user_id, seq)
    ) WITHOUT ROWID;
    """,
    2: """
    CREATE TABLE devices (
        device_token TEXT PRIMARY KEY,
        user_id TEXT NOT NULL,
        platform TEXT NOT NULL,
        environment TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX devices_user ON devices (user_id);
    """,
}


def migrate(db: sqlite3.Connection) -> None:
    """Bring the schema to SCHEMA_VERSION; each step runs once, in its own transaction."""
    db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    row = db.execute("SELECT MAX(version) FROM schema_version").fetchone()
    current = row[0] or 0
    if current > SCHEMA_VERSION:
        raise RuntimeError(
            f"the database schema is version {current}, newer than this server ({SCHEMA_VERSION})"
        )
    for version in range(current + 1, SCHEMA_VERSION + 1):
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in MIGRATIONS[version].split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise


def _open_reader(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA busy_timeout=5000")
    db.execute("PRAGMA query_only=1")  # a reader that tried to write would bypass the writer
    return db


class SqliteStore:
    """One writer connection (and thread), a few reader connections, a background checkpointer.

    Why three parts: SQLite has one writer at a time, so writes share one connection in one
    thread; in WAL mode readers see the last commit without waiting for the writer, so reads
    (history, welcome seqs, GETs, /healthz) get their own connections and never queue behind a
    slow write; and the WAL checkpoint's fsyncs run on their own connection (`Checkpointer`,
    started by `run`), never inside a commit.
    """

    # One node per file: its claim re-takes `processing` rows, so it never kept a process out.
    claims_are_shared = False

    def __init__(
        self,
        path: str | Path,
        *,
        readers: int = READERS,
        checkpoint_interval: float = CHECKPOINT_INTERVAL,
        wal_restart_bytes: int = WAL_RESTART_BYTES,
    ) -> None:
        self.path = Path(path)
        self._db: sqlite3.Connection | None = None
        self._limiter = trio.CapacityLimiter(1)  # one thread at a time uses the writer
        self._writes = GroupCommit(self._limiter)
        self._readers = readers
        self._idle_readers: list[sqlite3.Connection] = []
        self._read_limiter = trio.CapacityLimiter(readers)  # one token per reader connection
        self.checkpointer = Checkpointer(
            self.path, self._limiter, interval=checkpoint_interval, restart_bytes=wal_restart_bytes
        )

    async def open(self) -> None:
        await trio.to_thread.run_sync(self._open_sync)

    def _open_sync(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")  # durable across a process crash in WAL mode
        db.execute("PRAGMA busy_timeout=5000")
        db.execute("PRAGMA foreign_keys=ON")
        # Checkpoints are the Checkpointer's (run), not the commit that crosses 1,000 pages.
        db.execute("PRAGMA wal_autocheckpoint=0")
        migrate(db)
        self._idle_readers = [_open_reader(self.path) for _ in range(self._readers)]
        self._db = db

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Background upkeep while the store is open: the WAL checkpoints. Until cancelled."""
        await self.checkpointer.run(task_status=task_status)

    async def close(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            readers, self._idle_readers = self._idle_readers, []
            for reader in readers:
                reader.close()
            # The last connection to close checkpoints the WAL into the database.
            await trio.to_thread.run_sync(db.close, limiter=self._limiter)

    async def _run(self, fn: Callable[[sqlite3.Connection], T], kind: str) -> T:
        """A write on the writer, in a transaction shared with the writes queued beside it."""
        db = self._db
        if db is None:
            raise StoreUnavailable("the store is not open")
        return await self._writes.run(db, fn, kind)

    async def _read(self, fn: Callable[[sqlite3.Connection], T], kind: str) -> T:
        """A read on a reader connection: sees the last commit, never waits for the writer."""
        if self._db is None:
            raise StoreUnavailable("the store is not open")
        timer = CallTimer(kind)

        def call(db: sqlite3.Connection) -> T:
            timer.start()
            try:
                return fn(db)
            except sqlite3.OperationalError as error:
                raise unavailable(error) from error
            finally:
                timer.stop()

        try:
            async with self._read_limiter:
                db = self._idle_readers.pop()
                try:
                    return await trio.to_thread.run_sync(call, db)
                finally:
                    self._idle_readers.append(db)
        finally:
            timer.report()

    async def healthy(self) -> bool:
        try:
            return await self._read(lambda db: db.execute("SELECT 1").fetchone() == (1,), "healthy")
        except StoreUnavailable:
            return False

    async def create_meal_log(self, new: NewMealLog) -> tuple[MealLog, bool]:
        def insert(db: sqlite3.Connection) -> tuple[MealLog, bool]:
            if new.idempotency_key is not None:
                row = db.execute(
                    f"SELECT {MEAL_COLUMNS} FROM meal_logs "
                    "WHERE user_id = ? AND idempotency_key = ?",
                    (new.user_id, new.idempotency_key),
                ).fetchone()
                if row is not None:
                    return same_request(meal_from_row(row), new), False
            meal = pending_meal(new)
            db.execute(
                f"INSERT INTO meal_logs ({MEAL_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                meal_params(meal),
            )
            return meal, True

        return await self._run(insert, "create")

    async def get_meal_log(self, user_id: str, meal_log_id: str) -> MealLog | None:
        def select(db: sqlite3.Connection) -> MealLog | None:
            row = db.execute(
                f"SELECT {MEAL_COLUMNS} FROM meal_logs WHERE id = ? AND user_id = ?",
                (meal_log_id, user_id),
            ).fetchone()
            return meal_from_row(row) if row else None

        return await self._read(select, "get")

    async def list_meal_logs(
        self, user_id: str, updated_since: datetime | None, limit: int
    ) -> list[MealLog]:
        since = stamp(updated_since) if updated_since is not None else ""

        def select(db: sqlite3.Connection) -> list[MealLog]:
            rows = db.execute(
                f"SELECT {MEAL_COLUMNS} FROM meal_logs WHERE user_id = ? AND updated_at > ? "
                "ORDER BY updated_at, id LIMIT ?",
                (user_id, since, limit),
            ).fetchall()
            return [meal_from_row(row) for row in rows]

        return await self._read(select, "list")

    async def mark_processing(self, meal_log_id: str) -> MealLog | None:
        def update(db: sqlite3.Connection) -> MealLog | None:
            row = db.execute(
                "UPDATE meal_logs SET status = 'processing', updated_at = ? "
                f"WHERE id = ? AND status IN ('pending', 'processing') RETURNING {MEAL_COLUMNS}",
                (now_stamp(), meal_log_id),
            ).fetchone()
            return meal_from_row(row) if row else None

        return await self._run(update, "mark_processing")

    async def finish_meal_log(
        self, meal_log_id: str, outcome: Outcome, history_limit: int
    ) -> tuple[MealLog, Notification]:
        def finish(db: sqlite3.Connection) -> tuple[MealLog, Notification]:
            return _finish_in_transaction(db, meal_log_id, outcome, history_limit)

        return await self._run(finish, "finish")

    async def unfinished_meal_logs(self) -> list[MealLog]:
        def select(db: sqlite3.Connection) -> list[MealLog]:
            rows = db.execute(
                f"SELECT {MEAL_COLUMNS} FROM meal_logs "
                "WHERE status IN ('pending', 'processing') ORDER BY created_at, id"
            ).fetchall()
            return [meal_from_row(row) for row in rows]

        return await self._read(select, "unfinished")

    async def latest_seq(self, user_id: str) -> int:
        def select(db: sqlite3.Connection) -> int:
            row = db.execute(
                "SELECT last_seq FROM user_seq WHERE user_id = ?", (user_id,)
            ).fetchone()
            return row[0] if row else 0

        return await self._read(select, "latest_seq")

    async def latest_seqs(self, user_ids: Sequence[str]) -> dict[str, int]:
        """One statement however many users: the ids travel as one JSON array parameter."""
        ids = orjson.dumps(list(user_ids)).decode()

        def select(db: sqlite3.Connection) -> dict[str, int]:
            rows = db.execute(
                "SELECT user_id, last_seq FROM user_seq "
                "WHERE user_id IN (SELECT value FROM json_each(?))",
                (ids,),
            ).fetchall()
            return {user_id: last_seq for user_id, last_seq in rows}

        return await self._read(select, "latest_seqs")

    async def since(self, user_id: str, after_seq: int, limit: int) -> HistoryPage:
        def select(db: sqlite3.Connection) -> HistoryPage:
            db.execute("BEGIN")  # one snapshot for the page, the newest and the oldest seq
            try:
                return _history_page(db, user_id, after_seq, limit)
            finally:
                db.execute("COMMIT")

        return await self._read(select, "since")

    async def put_device(
        self, user_id: str, device_token: str, platform: str, environment: str
    ) -> tuple[Device, bool]:
        now = now_stamp()

        def upsert(db: sqlite3.Connection) -> tuple[Device, bool]:
            row = db.execute(
                _UPSERT_DEVICE, (device_token, user_id, platform, environment, now, now)
            ).fetchone()
            device = device_from_row(row)
            return device, device.created_at == now

        return await self._run(upsert, "put_device")

    async def delete_device(self, user_id: str, device_token: str) -> bool:
        def delete(db: sqlite3.Connection) -> bool:
            cursor = db.execute(
                "DELETE FROM devices WHERE device_token = ? AND user_id = ?",
                (device_token, user_id),
            )
            return cursor.rowcount > 0

        return await self._run(delete, "delete_device")

    async def list_devices(self, user_id: str) -> list[Device]:
        def select(db: sqlite3.Connection) -> list[Device]:
            rows = db.execute(
                f"SELECT {DEVICE_COLUMNS} FROM devices WHERE user_id = ? "
                "ORDER BY created_at, device_token",
                (user_id,),
            ).fetchall()
            return [device_from_row(row) for row in rows]

        return await self._read(select, "list_devices")


def _history_page(db: sqlite3.Connection, user_id: str, after_seq: int, limit: int) -> HistoryPage:
    latest_row = db.execute(
        "SELECT last_seq FROM user_seq WHERE user_id = ?", (user_id,)
    ).fetchone()
    oldest_row = db.execute(
        "SELECT MIN(seq) FROM notifications WHERE user_id = ?", (user_id,)
    ).fetchone()
    rows = db.execute(
        "SELECT seq, type, event_id, created_at, data FROM notifications "
        "WHERE user_id = ? AND seq > ? ORDER BY seq LIMIT ?",
        (user_id, after_seq, limit),
    ).fetchall()
    return HistoryPage(
        items=tuple(note_from_row(user_id, row) for row in rows),
        latest=latest_row[0] if latest_row else 0,
        oldest=oldest_row[0] if oldest_row else None,
    )


_UPSERT_DEVICE = UPSERT_DEVICE.format(p="?")


def _finish_in_transaction(
    db: sqlite3.Connection, meal_log_id: str, outcome: Outcome, history_limit: int
) -> tuple[MealLog, Notification]:
    row = db.execute(
        "UPDATE meal_logs SET status = ?, items = ?, totals = ?, error = ?, updated_at = ? "
        f"WHERE id = ? AND status IN ('pending', 'processing') RETURNING {MEAL_COLUMNS}",
        (
            outcome.status,
            *json_columns(outcome.items, outcome.totals),
            outcome.error,
            now_stamp(),
            meal_log_id,
        ),
    ).fetchone()
    if row is None:  # a retried save whose first attempt did commit ends here: no second seq
        raise LookupError(f"meal log {meal_log_id} does not exist or is finished")
    meal = meal_from_row(row)
    seq = db.execute(
        "INSERT INTO user_seq (user_id, last_seq) VALUES (?, 1) "
        "ON CONFLICT (user_id) DO UPDATE SET last_seq = last_seq + 1 RETURNING last_seq",
        (meal.user_id,),
    ).fetchone()[0]
    note = finished_notification(meal, outcome, seq)
    db.execute(
        "INSERT INTO notifications (user_id, seq, type, event_id, created_at, data) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (note.user_id, seq, note.type, note.event_id, note.created_at, orjson.dumps(note.data)),
    )
    db.execute(
        "DELETE FROM notifications WHERE user_id = ? AND seq <= ?",
        (note.user_id, seq - history_limit),
    )
    return meal, note
