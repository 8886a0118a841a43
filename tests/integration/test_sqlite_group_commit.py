"""Group commit on a real SQLite file: writes that queue for the writer share one transaction.

Issue 16 (round 2): each caller still gets its own result or exception, a write that fails is
rolled back alone, a caller hears of its write only once it is committed, and cancellation
behaves as it did with one thread call per write (queued: dropped; taken: it runs and the
caller gets its result).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from fitiq_rt.meals.model import MealLog
from fitiq_rt.meals.sqlite_store import SqliteStore
from fitiq_rt.meals.sqlite_writer import GroupCommit
from fitiq_rt.meals.store import IdempotencyConflict, NewMealLog, StoreUnavailable

from .test_sqlite_io import COMPLETED, new_meal, until


def committed_ids(path: Path) -> set[str]:
    """What another connection sees: only committed rows."""
    with sqlite3.connect(path) as other:
        return {row[0] for row in other.execute("SELECT id FROM meal_logs")}


async def queued_behind_a_lock(
    store: SqliteStore, calls: dict[str, Callable[[], Any]]
) -> dict[str, Any]:
    """Hold the database's write lock from another connection while one write (`u0`) waits
    for it in the writer thread and `calls` queue behind it; then let go. Each call's result,
    or the exception it raised."""
    results: dict[str, Any] = {}
    other = sqlite3.connect(store.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")

    async def call(name: str, fn: Callable[[], Any]) -> None:
        try:
            results[name] = await fn()
        except Exception as error:
            results[name] = error

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(call, "u0", lambda: store.create_meal_log(new_meal("u0")))
            await until(lambda: store._limiter.borrowed_tokens == 1)
            for name, fn in calls.items():
                nursery.start_soon(call, name, fn)
            await until(lambda: len(store._writes._queue) == len(calls))
            other.execute("COMMIT")
    finally:
        other.close()
    return results


async def test_queued_writes_commit_together_each_with_its_own_result(
    store: SqliteStore,
) -> None:
    results = await queued_behind_a_lock(
        store,
        {
            f"u{index}": (lambda index=index: store.create_meal_log(new_meal(f"u{index}")))
            for index in range(1, 6)
        },
    )
    assert store._writes.batches == 2  # the first alone, then the five that queued behind it
    assert store._writes.writes == 6
    for name, (meal, created) in results.items():
        assert isinstance(meal, MealLog) and created
        assert meal.user_id == name
    assert len({meal.id for meal, _ in results.values()}) == 6
    assert committed_ids(store.path) == {meal.id for meal, _ in results.values()}


async def test_a_failing_write_is_rolled_back_alone(store: SqliteStore) -> None:
    keyed = NewMealLog("u1", "two eggs", None, "2024-05-01T08:00:00.000000Z", "key-1")
    meal, _ = await store.create_meal_log(keyed)
    await store.mark_processing(meal.id)
    other_body = NewMealLog("u1", "toast", None, "2024-05-01T08:00:00.000000Z", "key-1")
    results = await queued_behind_a_lock(
        store,
        {
            "before": lambda: store.create_meal_log(new_meal("u2")),
            "unknown": lambda: store.finish_meal_log("no-such-id", COMPLETED, 100),
            "finish": lambda: store.finish_meal_log(meal.id, COMPLETED, 100),
            "conflict": lambda: store.create_meal_log(other_body),
            "after": lambda: store.create_meal_log(new_meal("u3")),
        },
    )
    assert store._writes.batches == 4  # two before, the first alone, then the five together
    assert isinstance(results["unknown"], LookupError)
    assert isinstance(results["conflict"], IdempotencyConflict)
    finished, note = results["finish"]
    assert (finished.status, note.seq) == ("completed", 1)
    ids = committed_ids(store.path)
    assert {results[name][0].id for name in ("u0", "before", "after")} <= ids
    assert len(ids) == 4  # the keyed one and three new: the conflicting body wrote nothing
    assert await store.latest_seq("u1") == 1


async def test_a_caller_hears_of_its_write_only_once_it_is_committed(
    store: SqliteStore,
) -> None:
    seen: dict[str, bool] = {}

    async def create_and_look(user: str) -> None:
        meal, _ = await store.create_meal_log(new_meal(user))
        seen[user] = meal.id in committed_ids(store.path)  # before yielding to anyone

    await queued_behind_a_lock(
        store,
        {f"u{index}": (lambda index=index: create_and_look(f"u{index}")) for index in (1, 2, 3)},
    )
    assert seen == {"u1": True, "u2": True, "u3": True}


async def test_a_lost_transaction_reruns_each_write_alone(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "t.sqlite3", isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE t (name TEXT)")
    writer = GroupCommit(trio.CapacityLimiter(1))
    results: dict[str, Any] = {}

    def insert(name: str) -> Callable[[sqlite3.Connection], str]:
        def fn(conn: sqlite3.Connection) -> str:
            conn.execute("INSERT INTO t VALUES (?)", (name,))
            return name

        return fn

    def gives_up(conn: sqlite3.Connection) -> str:
        conn.execute("ROLLBACK")  # as SQLite does itself on an I/O error or a full disk
        return "never"

    async def call(name: str, fn: Callable[[sqlite3.Connection], str]) -> None:
        try:
            results[name] = await writer.run(db, fn, name)
        except Exception as error:
            results[name] = error

    await writer.limiter.acquire()  # hold the writer so that all four queue into one batch
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(call, "a", insert("a"))
            await until(lambda: writer._leading)
            for name, fn in (("b", insert("b")), ("bad", gives_up), ("c", insert("c"))):
                nursery.start_soon(call, name, fn)
            await until(lambda: len(writer._queue) == 3)
            writer.limiter.release()
    finally:
        if writer.limiter.borrowed_tokens:
            writer.limiter.release()
    assert (results["a"], results["b"], results["c"]) == ("a", "b", "c")
    assert isinstance(results["bad"], StoreUnavailable)
    assert sorted(row[0] for row in db.execute("SELECT name FROM t")) == ["a", "b", "c"]
    db.close()


async def test_cancelled_while_queued_drops_the_write(store: SqliteStore) -> None:
    other = sqlite3.connect(store.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    outcome: dict[str, Any] = {}
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(store.create_meal_log, new_meal("u0"))
            await until(lambda: store._limiter.borrowed_tokens == 1)
            with trio.CancelScope() as queued:
                nursery.start_soon(lambda: _cancel_when_queued(store, queued))
                outcome["meal"] = await store.create_meal_log(new_meal("u1"))
            outcome["cancelled"] = queued.cancelled_caught
            other.execute("COMMIT")
    finally:
        other.close()
    assert outcome == {"cancelled": True}
    assert await store.list_meal_logs("u1", None, 10) == []
    assert len(await store.list_meal_logs("u0", None, 10)) == 1


async def _cancel_when_queued(store: SqliteStore, scope: trio.CancelScope) -> None:
    await until(lambda: len(store._writes._queue) == 1)
    scope.cancel()


async def test_cancelled_once_taken_still_gets_the_result(store: SqliteStore) -> None:
    other = sqlite3.connect(store.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    got: list[MealLog] = []
    try:
        async with trio.open_nursery() as nursery:
            with trio.CancelScope() as taken:

                async def cancel_then_release() -> None:
                    await until(lambda: store._limiter.borrowed_tokens == 1)
                    taken.cancel()  # the write is in the writer thread, waiting for the lock
                    await trio.sleep(0.01)
                    other.execute("COMMIT")

                nursery.start_soon(cancel_then_release)
                meal, _ = await store.create_meal_log(new_meal("u1"))
                got.append(meal)
    finally:
        other.close()
    assert len(got) == 1 and got[0].id in committed_ids(store.path)


async def test_cancelled_in_a_batch_led_by_another_still_gets_the_result(
    store: SqliteStore,
) -> None:
    """The writer token held (as the checkpointer's RESTART holds it) while w2 leads a batch
    with w3 in it: cancelling w3 then cannot recall its write, so it waits for the result."""
    writes = store._writes
    results: dict[str, Any] = {}
    w3_scope = trio.CancelScope()

    async def write(name: str, scope: trio.CancelScope | None = None) -> None:
        with scope or trio.CancelScope():
            results[name] = await store.create_meal_log(new_meal(name))

    async def hold_next(released: trio.Event) -> None:
        async with store._limiter:  # queued behind w1's batch, ahead of w2's
            await released.wait()

    release = trio.Event()
    await store._limiter.acquire()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(write, "w1")
        await until(lambda: writes._leading and not writes._queue)
        nursery.start_soon(hold_next, release)
        await until(lambda: store._limiter.statistics().tasks_waiting == 2)
        nursery.start_soon(write, "w2")
        nursery.start_soon(write, "w3", w3_scope)
        await until(lambda: len(writes._queue) == 2)
        store._limiter.release()  # w1 runs; then hold_next takes the token; w2 leads [w2, w3]
        await until(lambda: not writes._queue and store._limiter.borrowed_tokens == 1)
        assert "w1" in results and writes.batches == 1
        w3_scope.cancel()
        await trio.sleep(0.01)
        assert "w3" not in results  # still waiting for the batch, not cancelled out of it
        release.set()
    assert not w3_scope.cancelled_caught
    assert set(results) == {"w1", "w2", "w3"} and writes.batches == 2
    assert {meal.id for meal, _ in results.values()} == committed_ids(store.path)


async def test_a_batch_that_cannot_begin_fails_once_not_write_by_write(
    store: SqliteStore,
) -> None:
    """Another process holding the lock past busy_timeout: each batch waits for it once, and
    every write in it gets StoreUnavailable (not one busy_timeout per write)."""
    assert store._db is not None
    store._db.execute("PRAGMA busy_timeout=50")
    begins: list[str] = []
    store._db.set_trace_callback(lambda sql: begins.append(sql) if "BEGIN" in sql else None)
    results = await queued_behind_a_lock_for_good(store, 4)
    assert all(isinstance(result, StoreUnavailable) for result in results.values())
    assert len(results) == 5 and store._writes.batches == 2
    assert begins == ["BEGIN IMMEDIATE", "BEGIN IMMEDIATE"]
    assert committed_ids(store.path) == set()


async def queued_behind_a_lock_for_good(store: SqliteStore, queued: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    other = sqlite3.connect(store.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")

    async def call(name: str) -> None:
        try:
            results[name] = await store.create_meal_log(new_meal(name))
        except Exception as error:
            results[name] = error

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(call, "u0")
            await until(lambda: store._limiter.borrowed_tokens == 1)
            for index in range(1, queued + 1):
                nursery.start_soon(call, f"u{index}")
    finally:
        other.close()
    return results
