"""Group commit: the writes waiting for SQLite's one writer go in together, in one transaction.

Why: every commit appends its pages to the WAL, and a meal log is two or three writes (insert, a
claim if its processing is slow, finish) touching the same few table and index pages. While one
write runs (or waits on the disk) the next ones queue; run one by one, each pays its own BEGIN,
page writes and WAL append, and the queue drains slowly just when the disk is slow. Here whoever
finds the writer idle leads: it takes every queued write (up to MAX_BATCH), runs them in one `BEGIN
IMMEDIATE … COMMIT` in the writer thread, wakes their callers, and hands the lead to the next
queued write, if any.

Each write still gets its own result or exception: it runs inside its own SAVEPOINT, so one that
raises is rolled back alone and the others commit. If the transaction itself is lost (COMMIT
fails, or SQLite rolled it back under an I/O error), every write of the batch runs again alone,
in its own transaction, so each caller gets what its own write would have got; if it never
began (another process held the lock past busy_timeout) every write gets that error at once.
A caller hears of its write only after COMMIT: a notification is committed before it can be
published.

Cancellation matches `trio.to_thread.run_sync`: a write still queued is dropped and its caller
cancelled; once taken into a batch it cannot be recalled, so its caller waits for the result.
"""

from __future__ import annotations

import sqlite3
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import outcome
import trio

from .store import StoreUnavailable
from .store_trace import CallTimer

T = TypeVar("T")

# A bound on one transaction: the first write of a batch waits for all the others in it.
MAX_BATCH = 32

_LEAD = object()  # the wake-up value that makes a queued write the next leader


class _Write(Generic[T]):
    __slots__ = ("fn", "result", "taken", "task", "timer")

    def __init__(self, fn: Callable[[sqlite3.Connection], T], timer: CallTimer) -> None:
        self.fn = fn
        self.timer = timer
        self.task = trio.lowlevel.current_task()
        self.taken = False
        self.result: outcome.Outcome[T] | None = None


class GroupCommit:
    """Runs write functions on one connection, several to a transaction when they queue up."""

    def __init__(self, limiter: trio.CapacityLimiter, *, max_batch: int = MAX_BATCH) -> None:
        self.limiter = limiter  # the writer token, shared with the checkpointer's RESTART
        self.max_batch = max_batch
        self._queue: deque[_Write[Any]] = deque()
        self._leading = False
        self.batches = 0
        self.writes = 0

    async def run(
        self, db: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T], kind: str
    ) -> T:
        """Run `fn(db)` inside a write transaction; its result once that transaction committed."""
        await trio.lowlevel.checkpoint_if_cancelled()
        write: _Write[T] = _Write(fn, CallTimer(kind))
        self._queue.append(write)
        try:
            if self._leading:
                woken = await trio.lowlevel.wait_task_rescheduled(self._abort_for(write))
                if woken is not _LEAD:
                    assert write.result is not None
                    return write.result.unwrap()
            self._leading = True
            await self._lead(db)
            assert write.result is not None
            return write.result.unwrap()
        finally:
            write.timer.report()

    def _abort_for(self, write: _Write[Any]) -> Callable[[Any], trio.lowlevel.Abort]:
        def abort(_: Any) -> trio.lowlevel.Abort:
            if write.taken:
                return trio.lowlevel.Abort.FAILED  # in a running batch: wait for its result
            self._queue.remove(write)
            return trio.lowlevel.Abort.SUCCEEDED

        return abort

    async def _lead(self, db: sqlite3.Connection) -> None:
        """Run one batch from the head of the queue (which holds the leader's own write)."""
        batch = [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]
        for write in batch:
            write.taken = True
        try:
            with trio.CancelScope(shield=True):  # taken writes must run: their callers wait
                await trio.to_thread.run_sync(commit_batch, db, batch, limiter=self.limiter)
        except BaseException as error:  # the thread could not run: every write gets the error
            for write in batch:
                if write.result is None:
                    write.result = outcome.Error(error)
        self.batches += 1
        self.writes += len(batch)
        leader = trio.lowlevel.current_task()
        for write in batch:
            if write.task is not leader:
                trio.lowlevel.reschedule(write.task, outcome.Value(None))
        if self._queue:
            trio.lowlevel.reschedule(self._queue[0].task, outcome.Value(_LEAD))
        else:
            self._leading = False


class _TransactionLost(Exception):
    """SQLite rolled the whole transaction back (an I/O error, a full disk) under a write."""


def commit_batch(db: sqlite3.Connection, batch: list[_Write[Any]]) -> None:
    """In the writer thread: the batch in one transaction, or each alone if that one is lost."""
    try:
        db.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as error:  # the lock stayed taken for busy_timeout: once is enough
        for write in batch:
            write.result = outcome.Error(unavailable(error))
        return
    try:
        _run_together(db, batch)
    except (sqlite3.Error, _TransactionLost):
        _rollback(db)
        for write in batch:
            write.result = None
            _run_alone(db, write)


def _run_together(db: sqlite3.Connection, batch: list[_Write[Any]]) -> None:
    """The batch inside the transaction the caller began; COMMIT at the end."""
    if len(batch) == 1:  # the usual case when nothing queues: no savepoint to pay for
        _run_single(db, batch[0])
        return
    for write in batch:
        write.timer.start()
        write.timer.batch = len(batch)
        db.execute("SAVEPOINT write")
        try:
            write.result = outcome.Value(write.fn(db))
        except Exception as error:
            if not db.in_transaction:
                raise _TransactionLost from error
            db.execute("ROLLBACK TO write")
            write.result = outcome.Error(unavailable(error))
        db.execute("RELEASE write")
    db.execute("COMMIT")
    for write in batch:  # a write's run time ends when it is durable: at COMMIT
        write.timer.stop()


def _run_single(db: sqlite3.Connection, write: _Write[Any]) -> None:
    """One write in the open transaction: committed, or rolled back if it raises."""
    write.timer.start()
    try:
        value = write.fn(db)
    except Exception as error:
        if not db.in_transaction:
            raise _TransactionLost from error
        db.execute("ROLLBACK")
        write.result = outcome.Error(unavailable(error))
    else:
        db.execute("COMMIT")
        write.result = outcome.Value(value)
    finally:
        write.timer.stop()


def _run_alone(db: sqlite3.Connection, write: _Write[Any]) -> None:
    write.timer.start()
    write.timer.batch = 1
    try:
        db.execute("BEGIN IMMEDIATE")
        value = write.fn(db)
        db.execute("COMMIT")
        write.result = outcome.Value(value)
    except Exception as error:
        _rollback(db)
        write.result = outcome.Error(unavailable(error))
    finally:
        write.timer.stop()


def _rollback(db: sqlite3.Connection) -> None:
    if db.in_transaction:
        try:
            db.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # nothing more to undo: SQLite ended the transaction itself


def unavailable(error: Exception) -> Exception:
    """What the caller sees: the database's operational errors as StoreUnavailable."""
    if isinstance(error, sqlite3.OperationalError):
        unavailable = StoreUnavailable(str(error))
        unavailable.__cause__ = error
        return unavailable
    return error
