"""WAL checkpoints off the commit path: a background task with its own connection and thread.

Why: with SQLite's automatic checkpoint, whichever commit pushes the WAL past 1,000 pages copies
the WAL into the database and fsyncs both, inside the store's single writer thread; under
another process's fsync-heavy I/O that took 10-40 ms, and every POST, claim and notification
queued behind it (measured: see benchmarks/README.md, issue 16). Here the writer runs with
`wal_autocheckpoint=0` and this task checkpoints PASSIVE every CHECKPOINT_INTERVAL: a passive
checkpoint never takes the write lock, so commits go on while it fsyncs.

A passive checkpoint alone cannot always bound the WAL: SQLite rewinds the WAL only when a
write starts after a checkpoint that copied every frame, and under steady writes a few new
frames usually arrive while the checkpoint runs. So once the WAL file is over WAL_RESTART_BYTES
the task runs one RESTART checkpoint, which waits for the writer and holds it off until the WAL
can rewind: one short stall per that many bytes of writes, instead of one per 1,000 pages.
Durability is unchanged: commits are in the WAL (synchronous=NORMAL), which a process crash
does not lose; the checkpoint only moves them into the main file.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import attrs
import trio

from ..logconfig import get_logger

log = get_logger("fitiq_rt.store")

# Short enough that a checkpoint has little to copy (the WAL stays a few MiB at 200 meal logs/s),
# long enough that its two fsyncs are a small share of the disk's time.
CHECKPOINT_INTERVAL = 0.25
# Over this the next checkpoint is a RESTART (see above): ~5 s of writes at 200 meal logs/s.
WAL_RESTART_BYTES = 64 << 20


@attrs.frozen
class CheckpointResult:
    mode: str
    busy: bool  # SQLite could not finish (a reader or writer held it off); the next one retries
    wal_frames: int
    checkpointed_frames: int


def open_checkpoint_connection(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA busy_timeout=5000")  # a RESTART waits this long for the writer at most
    return db


def checkpoint(db: sqlite3.Connection, mode: str) -> CheckpointResult:
    """One `PRAGMA wal_checkpoint(MODE)` (blocking: call it in a worker thread)."""
    busy, frames, done = db.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
    return CheckpointResult(mode, bool(busy), frames, done)


def wal_bytes(path: Path) -> int:
    try:
        return os.stat(f"{path}-wal").st_size
    except FileNotFoundError:
        return 0


class Checkpointer:
    """Checkpoints one database every `interval` seconds on its own connection and thread."""

    def __init__(
        self,
        path: Path,
        *,
        interval: float = CHECKPOINT_INTERVAL,
        restart_bytes: int = WAL_RESTART_BYTES,
    ) -> None:
        self.path = path
        self.interval = interval
        self.restart_bytes = restart_bytes
        self._limiter = trio.CapacityLimiter(1)
        self._db: sqlite3.Connection | None = None
        self.runs = 0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Until cancelled; a failed checkpoint is logged and the next one tries again."""
        self._db = await trio.to_thread.run_sync(open_checkpoint_connection, self.path)
        try:
            task_status.started()
            while True:
                await trio.sleep(self.interval)
                await self.checkpoint_once()
        finally:
            db, self._db = self._db, None
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(db.close, limiter=self._limiter)

    async def checkpoint_once(self) -> CheckpointResult | None:
        db = self._db
        if db is None:
            return None
        mode = "RESTART" if wal_bytes(self.path) > self.restart_bytes else "PASSIVE"
        try:
            # Not abandoned on cancel: the connection must not be closed under a running call.
            result = await trio.to_thread.run_sync(checkpoint, db, mode, limiter=self._limiter)
        except sqlite3.Error as error:
            log.warning("store.checkpoint_failed", mode=mode, error=str(error)[:300])
            return None
        self.runs += 1
        if mode == "RESTART":
            log.info(
                "store.wal_restarted",
                busy=result.busy,
                wal_frames=result.wal_frames,
                checkpointed_frames=result.checkpointed_frames,
            )
        return result
