"""The SQLite store's I/O layout on a real file: reads beside the writer, checkpoints aside.

Issue 16: one connection and one thread made every call wait for whichever call was slow (a
checkpoint's fsync, a write under another process's I/O). These check the parts that remove
that queue: reads never wait for a write in progress, commits never checkpoint, the background
checkpointer keeps the WAL bounded, and its timer runs at its interval.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import trio

from fitiq_rt.meals.sqlite_checkpoint import CheckpointResult
from fitiq_rt.meals.sqlite_store import SqliteStore
from fitiq_rt.meals.store import NewMealLog, Outcome

COMPLETED = Outcome(
    status="completed",
    items=({"name": "egg", "quantity": 2, "unit": "piece", "calories": 140.5},),
    totals={"calories": 140.5, "protein_g": 12.0, "carbs_g": 1.0, "fat_g": 10.0},
    error=None,
)


def new_meal(user: str = "u1", text: str = "two eggs") -> NewMealLog:
    return NewMealLog(
        user_id=user,
        raw_input=text,
        meal_type=None,
        logged_at="2024-05-01T08:00:00.000000Z",
        idempotency_key=None,
    )


async def until(condition: Callable[[], bool]) -> None:
    while not condition():
        await trio.sleep(0.001)


async def log_and_finish(store: SqliteStore, user: str, text: str = "two eggs") -> None:
    meal, _ = await store.create_meal_log(new_meal(user, text))
    await store.mark_processing(meal.id)
    await store.finish_meal_log(meal.id, COMPLETED, 1000)


async def test_reads_do_not_wait_for_a_write_in_progress(store: SqliteStore) -> None:
    await log_and_finish(store, "u1")
    meal, _ = await store.create_meal_log(new_meal("u1"))
    other = sqlite3.connect(store.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another writer holds the lock: the store's write waits
    write_done = trio.Event()

    async def write() -> None:
        await store.create_meal_log(new_meal("u2"))
        write_done.set()

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(write)
            await until(lambda: store._limiter.borrowed_tokens == 1)  # in the writer thread
            assert (await store.get_meal_log("u1", meal.id)) == meal
            assert [m.id for m in await store.list_meal_logs("u1", None, 10)][-1] == meal.id
            assert await store.latest_seq("u1") == 1
            assert (await store.since("u1", 0, 10)).latest == 1
            assert meal.id in {m.id for m in await store.unfinished_meal_logs()}
            assert await store.healthy()
            assert not write_done.is_set()  # every read answered while the write still waited
            other.execute("COMMIT")
    finally:
        other.close()
    assert write_done.is_set()
    assert len(await store.list_meal_logs("u2", None, 10)) == 1


def wal_size(store: SqliteStore) -> int:
    return Path(f"{store.path}-wal").stat().st_size


async def test_commits_never_checkpoint(store: SqliteStore) -> None:
    """Without the checkpointer the WAL only grows: no commit copied it back (autocheckpoint
    would have rewound it every 1,000 pages, about 4 MiB)."""
    for index in range(400):
        await log_and_finish(store, f"u{index % 20}", "x" * 2000)
    assert wal_size(store) > 8 << 20


async def test_the_checkpointer_keeps_the_wal_bounded(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "fitiq.sqlite3", wal_restart_bytes=1 << 20)
    await store.open()
    checkpointer = store.checkpointer
    checkpointer.interval = 1e9  # its timer is tested below; here it is driven by hand
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            for index in range(60):
                await log_and_finish(store, f"u{index % 5}", "x" * 2000)
            first = await checkpointer.checkpoint_once()
            assert first is not None and first.mode == "RESTART" and not first.busy
            assert checkpointer.restarts == 1
            size_after_restart = wal_size(store)
            for index in range(5):  # the next writes start the WAL over from its beginning
                await log_and_finish(store, f"u{index}", "y")
            second = await checkpointer.checkpoint_once()
            assert second is not None and second.mode == "PASSIVE"
            assert second.wal_frames < (1 << 20) // 4096  # tens of pages, not the bound
            assert wal_size(store) == size_after_restart  # rewound and reused, not appended to
            nursery.cancel_scope.cancel()
        # What the WAL held is in the database file: a reader of the file alone sees it all.
        with sqlite3.connect(f"file:{store.path}?immutable=1", uri=True) as main_file:
            assert main_file.execute("SELECT COUNT(*) FROM meal_logs").fetchone() == (65,)
    finally:
        await store.close()


async def test_the_checkpointer_runs_every_interval(
    store: SqliteStore, autojump_clock: object
) -> None:
    checkpointer = store.checkpointer
    checkpointer.interval = 0.25
    times: list[float] = []
    three = trio.Event()
    real = checkpointer.checkpoint_once

    async def recorded() -> CheckpointResult | None:
        times.append(trio.current_time())
        result = await real()
        if len(times) == 3:
            three.set()
        return result

    checkpointer.checkpoint_once = recorded  # type: ignore[method-assign]
    await log_and_finish(store, "u1")
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        await three.wait()  # no deadline of its own: the clock moves only for the checkpointer
        nursery.cancel_scope.cancel()
    assert times == [0.25, 0.5, 0.75]
    assert checkpointer.runs == 3
