"""WAL checkpoints off the commit path: a background task with its own connection and thread.

Why: with SQLite's automatic checkpoint, whichever commit pushes the WAL past 1,000 pages copies
the WAL into the database and fsyncs both, inside the store's single writer thread; under
another process's fsync-heavy I/O that took 10-40 ms, and every POST, claim and notification
queued behind it (measured: see benchmarks/README.md, issue 16). Here the writer runs with
`wal_autocheckpoint=0` and this task checkpoints PASSIVE every CHECKPOINT_INTERVAL: a passive
checkpoint never takes the write lock, so commits go on while it fsyncs.

A passive checkpoint alone cannot bound the WAL: SQLite rewinds the WAL only when a write
starts after a checkpoint that copied every frame, and under steady writes new frames arrive
while the checkpoint fsyncs (measured: at 200 meal logs/s the WAL grew ~6 MiB/s and never
rewound). So once a passive checkpoint finds more than WAL_RESTART_BYTES of frames, a RESTART
follows at once: it has only the frames since the passive one to copy, and it runs holding the
store's writer token, so writes wait for it in trio (and start the moment it ends) instead of
sleeping in SQLite's busy handler. One short stall per that many bytes of writes, instead of
one checkpoint per 1,000 pages inside a commit.
Durability is unchanged: commits are in the WAL (synchronous=NORMAL), which a process crash
does not lose; the checkpoint only moves them into the main file.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import attrs
import trio

from .. import events
from ..logconfig import get_logger

log = get_logger("fitiq_rt.store")

# Each checkpoint first fsyncs the WAL, and a commit appending to the WAL's last page while that
# page is under writeback waits for the write to reach the disk (measured beside another
# process's fsync loop: 4,000 appends, 38 of them 5-25 ms, none without the fsync; issue 16).
# So checkpoints are rare enough that few commits meet one: 2 s, about 12 MiB to copy at
# 200 meal logs/s, well inside the RESTART bound.
CHECKPOINT_INTERVAL = 2.0
# Past this a RESTART rewinds the WAL (see above): ~10 s of writes at 200 meal logs/s.
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


def page_size(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA page_size").fetchone()[0])


class Checkpointer:
    """Checkpoints one database every `interval` seconds on its own connection and thread."""

    def __init__(
        self,
        path: Path,
        writer: trio.CapacityLimiter,
        *,
        interval: float = CHECKPOINT_INTERVAL,
        restart_bytes: int = WAL_RESTART_BYTES,
    ) -> None:
        self.path = path
        self.writer = writer  # the store's writer token: held by a RESTART, so writes queue in trio
        self.interval = interval
        self.restart_bytes = restart_bytes
        self._limiter = trio.CapacityLimiter(1)
        self._db: sqlite3.Connection | None = None
        self._restart_frames = 0
        self.runs = 0
        self.restarts = 0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Until cancelled; a failed checkpoint is logged and the next one tries again."""
        self._db = await trio.to_thread.run_sync(open_checkpoint_connection, self.path)
        self._restart_frames = max(1, self.restart_bytes // page_size(self._db))
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
        """A PASSIVE checkpoint; a RESTART right after it when the WAL is over the bound."""
        db = self._db
        if db is None:
            return None
        result = await self._checkpoint(db, "PASSIVE", self._limiter)
        if result is None or result.wal_frames <= self._restart_frames:
            return result
        began = time.perf_counter()
        restarted = await self._checkpoint(db, "RESTART", self.writer)
        if restarted is not None:
            self.restarts += 1
            log.info(
                events.STORE_WAL_RESTARTED,
                busy=restarted.busy,
                wal_frames=result.wal_frames,
                writes_held_ms=round((time.perf_counter() - began) * 1000, 3),
                at=round(time.monotonic(), 4),  # the clock a benchmark's window is taken on
            )
        return restarted

    async def _checkpoint(
        self, db: sqlite3.Connection, mode: str, limiter: trio.CapacityLimiter
    ) -> CheckpointResult | None:
        try:
            # Not abandoned on cancel: the connection must not be closed under a running call.
            result = await trio.to_thread.run_sync(checkpoint, db, mode, limiter=limiter)
        except sqlite3.Error as error:
            log.warning(events.STORE_CHECKPOINT_FAILED, mode=mode, error=str(error)[:300])
            return None
        self.runs += 1
        return result
