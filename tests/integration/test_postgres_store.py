"""The store contract, run against SQLite and a real PostgreSQL, plus what only PostgreSQL promises.

One fresh database (`fitiq_test_<random>`) per test session, dropped at the end. The PostgreSQL
cases are marked `postgres` and FAIL when the server is down: CI starts it, so a silent skip would
hide a broken scale-out path.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import trio

from benchmarks.chaos.services import CuttableProxy
from fitiq_rt.meals.postgres_store import PostgresStore, RecentUse
from fitiq_rt.meals.sqlite_store import SqliteStore
from fitiq_rt.meals.store import IdempotencyConflict, NewMealLog, Outcome, Store, StoreUnavailable
from tests.servers import fresh_database  # shared with the server tests (tests/conftest.py)

COMPLETED = Outcome(
    status="completed",
    items=({"name": "egg", "quantity": 2, "unit": "piece", "calories": 140.5},),
    totals={"calories": 140.5, "protein_g": 12.0, "carbs_g": 1.0, "fat_g": 10.0},
    error=None,
)
FAILED = Outcome(
    status="failed",
    items=(),
    totals={"calories": 0, "protein_g": 0, "carbs_g": 0, "fat_g": 0},
    error="processor error: boom",
)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """One fresh database for this session's store tests (they truncate it between tests)."""
    with fresh_database() as url:
        yield url


def truncate(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE meal_logs, user_seq, notifications, devices")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """Each contract test runs on both stores, each starting empty."""
    opened: Store
    if request.param == "sqlite":
        opened = SqliteStore(tmp_path / "fitiq.sqlite3")
        await opened.open()
    else:
        url = request.getfixturevalue("pg_database")
        opened = PostgresStore(url)
        await opened.open()
        await trio.to_thread.run_sync(truncate, url)
    try:
        yield opened
    finally:
        await opened.close()


def new_meal(user: str = "u1", text: str = "two eggs", key: str | None = None) -> NewMealLog:
    return NewMealLog(
        user_id=user,
        raw_input=text,
        meal_type="breakfast",
        logged_at="2024-05-01T08:00:00.000000Z",
        idempotency_key=key,
    )


async def finished(store: Store, user: str, history_limit: int = 1000) -> Any:
    meal, _ = await store.create_meal_log(new_meal(user))
    await store.mark_processing(meal.id)
    return await store.finish_meal_log(meal.id, COMPLETED, history_limit)


# ---------------------------------------------------------------- the contract, on both stores


async def test_create_and_get(store: Store) -> None:
    meal, created = await store.create_meal_log(new_meal())
    assert created
    body = meal.to_json()
    assert body["status"] == "pending"
    assert body["items"] == []
    assert body["totals"] == {"calories": 0, "protein_g": 0, "carbs_g": 0, "fat_g": 0}
    assert body["created_at"] == body["updated_at"]
    assert body["created_at"].endswith("Z") and len(body["created_at"]) == 27
    assert (await store.get_meal_log("u1", meal.id)) == meal
    assert await store.get_meal_log("someone-else", meal.id) is None
    assert await store.get_meal_log("u1", str(uuid.uuid4())) is None


async def test_idempotency_key(store: Store) -> None:
    first, created = await store.create_meal_log(new_meal(key="k1"))
    again, created_again = await store.create_meal_log(new_meal(key="k1"))
    assert created and not created_again
    assert again.id == first.id
    with pytest.raises(IdempotencyConflict):
        await store.create_meal_log(new_meal(text="a banana", key="k1"))
    other_user, created_other = await store.create_meal_log(new_meal(user="u2", key="k1"))
    assert created_other and other_user.id != first.id
    no_key_1, _ = await store.create_meal_log(new_meal())
    no_key_2, _ = await store.create_meal_log(new_meal())
    assert no_key_1.id != no_key_2.id


async def test_list_updated_since(store: Store) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    ids = [(await store.create_meal_log(new_meal(text=f"meal {i}")))[0].id for i in range(4)]
    await store.create_meal_log(new_meal(user="u2"))
    listed = await store.list_meal_logs("u1", before, 100)
    assert [m.id for m in listed] == ids  # oldest update first
    assert [m.id for m in await store.list_meal_logs("u1", None, 2)] == ids[:2]
    await store.mark_processing(ids[0])
    await store.finish_meal_log(ids[0], COMPLETED, 1000)
    newest = await store.list_meal_logs("u1", before, 100)
    assert newest[-1].id == ids[0] and newest[-1].status == "completed"
    cutoff = datetime.fromisoformat(newest[-2].updated_at.replace("Z", "+00:00"))
    assert [m.id for m in await store.list_meal_logs("u1", cutoff, 100)] == [ids[0]]
    assert await store.list_meal_logs("u1", datetime.now(UTC) + timedelta(hours=1), 100) == []


async def test_process_and_finish_issue_seq_one_to_n(store: Store) -> None:
    meal, _ = await store.create_meal_log(new_meal())
    claimed = await store.mark_processing(meal.id)
    assert claimed is not None and claimed.status == "processing"
    done, note = await store.finish_meal_log(meal.id, COMPLETED, 1000)
    assert done.status == "completed"
    assert done.items == COMPLETED.items and done.totals == COMPLETED.totals
    assert note.seq == 1 and note.type == "meal_log.completed" and note.user_id == "u1"
    assert note.data == done.to_json()
    assert await store.mark_processing(meal.id) is None  # finished: nobody claims it again
    failing, _ = await store.create_meal_log(new_meal(text="mystery"))
    await store.mark_processing(failing.id)
    failed, failed_note = await store.finish_meal_log(failing.id, FAILED, 1000)
    assert failed.status == "failed" and failed.error == FAILED.error
    assert (failed_note.seq, failed_note.type) == (2, "meal_log.failed")
    seqs = [(await finished(store, "u1"))[1].seq for _ in range(3)]
    assert seqs == [3, 4, 5]
    assert (await finished(store, "u2"))[1].seq == 1  # per user
    assert await store.latest_seq("u1") == 5
    assert await store.latest_seq("nobody") == 0


async def test_finish_unknown_meal_log_raises(store: Store) -> None:
    with pytest.raises(LookupError):
        await store.finish_meal_log(str(uuid.uuid4()), COMPLETED, 1000)
    assert await store.latest_seq("u1") == 0


async def test_since_and_prune_to_history_limit(store: Store) -> None:
    notes = [(await finished(store, "u1", history_limit=3))[1] for _ in range(5)]
    page = await store.since("u1", 0, 100)
    assert [n.seq for n in page.items] == [3, 4, 5]
    assert (page.latest, page.oldest) == (5, 3)
    assert page.items[-1].frame == notes[-1].frame  # stored and live render identically
    assert page.items[0].event_id == notes[2].event_id
    assert [n.seq for n in (await store.since("u1", 3, 1)).items] == [4]
    tail = await store.since("u1", 5, 100)
    assert (tail.items, tail.latest, tail.oldest) == ((), 5, 3)
    empty = await store.since("nobody", 0, 100)
    assert (empty.items, empty.latest, empty.oldest) == ((), 0, None)


async def test_stored_and_live_notifications_are_the_same_for_any_text(store: Store) -> None:
    """PostgreSQL builds the stored notification's JSON in SQL (one statement per finish): it
    must read back as exactly what was published, whatever the meal log's text holds."""
    text = 'caf\u00e9 "au lait" \\ tab\there\nnew line \u0001 \U0001f373 \u2028'
    meal, _ = await store.create_meal_log(new_meal(text=text))
    await store.mark_processing(meal.id)
    odd = Outcome(
        status="failed",
        items=({"name": '\u00e9clair "x"', "quantity": 1e-7, "unit": "g", "calories": 1.5e300},),
        totals={"calories": 0.1, "protein_g": -0.0, "carbs_g": 12345678901234567, "fat_g": 1},
        error='processor error: "boom" \\ \u00fc',
    )
    done, note = await store.finish_meal_log(meal.id, odd, 1000)
    assert note.data == done.to_json() and done.raw_input == text
    (stored,) = (await store.since("u1", 0, 10)).items
    assert stored.data == note.data
    assert stored.frame == note.frame
    assert (stored.event_id, stored.created_at, stored.type) == (
        note.event_id,
        note.created_at,
        "meal_log.failed",
    )


async def test_latest_seqs_answers_for_many_users_at_once(store: Store) -> None:
    for user, meals in (("u1", 3), ("u2", 1), ("o'brien", 2)):
        for _ in range(meals):
            await finished(store, user)
    asked = ["u1", "u2", "o'brien", "nobody", *(f"idle-{i}" for i in range(5000))]
    assert await store.latest_seqs(asked) == {"u1": 3, "u2": 1, "o'brien": 2}
    assert await store.latest_seqs([]) == {}


async def test_unfinished_meal_logs(store: Store) -> None:
    pending, _ = await store.create_meal_log(new_meal(text="a"))
    processing, _ = await store.create_meal_log(new_meal(text="b"))
    done, _ = await store.create_meal_log(new_meal(text="c"))
    await store.mark_processing(done.id)
    await store.finish_meal_log(done.id, COMPLETED, 1000)
    await store.mark_processing(processing.id)
    unfinished = {m.id for m in await store.unfinished_meal_logs()}
    assert pending.id in unfinished and done.id not in unfinished
    # This node's own claim is offered too: after a failed save it is nobody's work in flight,
    # and must not wait out its own lease (the dispatcher skips the ones it still works on).
    assert processing.id in unfinished


async def test_a_finished_meal_log_is_never_finished_twice(store: Store) -> None:
    """A save retried after one that did commit gets LookupError, not a second notification."""
    meal, _ = await store.create_meal_log(new_meal())
    await store.mark_processing(meal.id)
    await store.finish_meal_log(meal.id, COMPLETED, 1000)
    with pytest.raises(LookupError):
        await store.finish_meal_log(meal.id, FAILED, 1000)
    assert await store.latest_seq("u1") == 1
    kept = await store.get_meal_log("u1", meal.id)
    assert kept is not None and kept.status == "completed"


async def test_healthy(store: Store) -> None:
    assert await store.healthy()


# ---------------------------------------------------------------- PostgreSQL across nodes


@pytest.fixture
async def two_nodes(pg_database: str) -> AsyncIterator[tuple[PostgresStore, PostgresStore]]:
    """Two stores on one database, as two server processes would hold them."""
    a = PostgresStore(pg_database, lease_seconds=0.5, node_name="node-a")
    b = PostgresStore(pg_database, lease_seconds=0.5, node_name="node-b")
    async with trio.open_nursery() as nursery:  # both migrate at once: the advisory lock decides
        nursery.start_soon(a.open)
        nursery.start_soon(b.open)
    await trio.to_thread.run_sync(truncate, pg_database)
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


@pytest.mark.postgres
async def test_concurrent_nodes_never_share_or_skip_a_seq(
    two_nodes: tuple[PostgresStore, PostgresStore],
) -> None:
    """200 finishes for 5 users from two nodes at once: per user exactly 1..n."""
    nodes = two_nodes
    users = [f"user-{i}" for i in range(5)]
    meals = []
    for i in range(200):
        meal, _ = await nodes[i % 2].create_meal_log(new_meal(users[i % 5], text=f"meal {i}"))
        meals.append(meal)
    seqs: dict[str, list[int]] = defaultdict(list)

    async def finish(i: int) -> None:
        node = nodes[(i // 5) % 2]  # each user's meals alternate between the nodes
        await node.mark_processing(meals[i].id)
        _, note = await node.finish_meal_log(meals[i].id, COMPLETED, 1000)
        seqs[note.user_id].append(note.seq)

    async with trio.open_nursery() as nursery:
        for i in range(200):
            nursery.start_soon(finish, i)
    for user in users:
        assert sorted(seqs[user]) == list(range(1, 41)), user
        page = await nodes[0].since(user, 0, 1000)
        assert [n.seq for n in page.items] == list(range(1, 41))
        assert len({n.data["id"] for n in page.items}) == 40  # one notification per meal log
        assert await nodes[1].latest_seq(user) == 40


@pytest.mark.postgres
async def test_claims_are_leased_across_nodes(
    two_nodes: tuple[PostgresStore, PostgresStore],
) -> None:
    a, b = two_nodes
    meal, _ = await a.create_meal_log(new_meal())
    assert (await a.mark_processing(meal.id)) is not None
    assert await b.mark_processing(meal.id) is None  # a holds a live lease
    assert meal.id not in {m.id for m in await b.unfinished_meal_logs()}
    with pytest.raises(LookupError):
        await b.finish_meal_log(meal.id, COMPLETED, 1000)
    await trio.sleep(0.7)  # a "crashed": its lease expires
    assert meal.id in {m.id for m in await b.unfinished_meal_logs()}
    assert (await b.mark_processing(meal.id)) is not None
    assert await a.mark_processing(meal.id) is None  # now b holds it
    _, note = await b.finish_meal_log(meal.id, COMPLETED, 1000)
    assert note.seq == 1
    assert await a.unfinished_meal_logs() == []


@pytest.mark.postgres
async def test_a_restarted_node_takes_back_its_claims_at_once(
    two_nodes: tuple[PostgresStore, PostgresStore],
) -> None:
    """Killed mid-processing and started again: no waiting out the lease (others still wait)."""
    a, other = two_nodes
    mine, _ = await a.create_meal_log(new_meal(text="mine"))
    theirs, _ = await a.create_meal_log(new_meal(text="theirs"))
    await a.mark_processing(mine.id)
    await other.mark_processing(theirs.id)
    again = PostgresStore(a.url, node_name=a.node_name)  # the same node, a new process
    await again.open()
    try:
        unfinished = {m.id for m in await again.unfinished_meal_logs()}
        assert unfinished == {mine.id}  # the other node's live lease is respected
        assert (await again.mark_processing(mine.id)) is not None
        _, note = await again.finish_meal_log(mine.id, COMPLETED, 1000)
        assert note.seq == 1
    finally:
        await again.close()


@pytest.mark.postgres
async def test_two_nodes_create_with_the_same_idempotency_key(
    two_nodes: tuple[PostgresStore, PostgresStore],
) -> None:
    results = []

    async def create(node: PostgresStore) -> None:
        results.append(await node.create_meal_log(new_meal(key="same-key")))

    async with trio.open_nursery() as nursery:
        for node in two_nodes * 5:
            nursery.start_soon(create, node)
    assert len({meal.id for meal, _ in results}) == 1
    assert sum(created for _, created in results) == 1


@pytest.mark.postgres
async def test_migration_is_recorded_once(two_nodes: tuple[PostgresStore, PostgresStore]) -> None:
    def versions() -> list[int]:
        with psycopg.connect(two_nodes[0].url) as conn:
            return [row[0] for row in conn.execute("SELECT version FROM schema_version")]

    assert await trio.to_thread.run_sync(versions) == [1, 2]


DEVICE = "5e" * 32


async def test_devices_one_user_several_and_a_moved_token_belongs_to_the_new_user(
    store: Store,
) -> None:
    first, created = await store.put_device("ana", DEVICE, "ios", "production")
    assert created and (first.user_id, first.environment) == ("ana", "production")
    again, created = await store.put_device("ana", DEVICE, "ios", "sandbox")
    assert not created and again.created_at == first.created_at and again.environment == "sandbox"
    other, _ = await store.put_device("ana", "6f" * 40, "ios", "production")
    assert await store.list_devices("ana") == [again, other]
    moved, created = await store.put_device("bob", DEVICE, "ios", "production")
    assert created and moved.user_id == "bob"
    assert await store.list_devices("ana") == [other]
    assert await store.list_devices("bob") == [moved]
    assert not await store.delete_device("ana", DEVICE)  # not ana's any more
    assert await store.delete_device("bob", DEVICE)
    assert await store.list_devices("bob") == []


@pytest.mark.postgres
async def test_a_schema_1_database_migrates_to_devices() -> None:
    """A database the previous release created (schema 1, with data) gains the devices table."""
    from fitiq_rt.meals import postgres_store

    with fresh_database() as url:

        def create_version_1() -> None:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
                for statement in postgres_store.MIGRATIONS[1].split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute("INSERT INTO schema_version VALUES (1)")
                conn.execute("INSERT INTO user_seq VALUES ('ana', 3)")

        await trio.to_thread.run_sync(create_version_1)
        node = PostgresStore(url, node_name="upgraded")
        await node.open()
        try:
            assert await node.latest_seq("ana") == 3  # the old data is kept
            device, created = await node.put_device("ana", DEVICE, "ios", "sandbox")
            assert created and await node.list_devices("ana") == [device]
        finally:
            await node.close()


# ---------------------------------------------------------------- PostgreSQL unreachable


@pytest.mark.postgres
async def test_unreachable_database_is_unavailable_and_nothing_is_half_written(
    pg_database: str, nursery: trio.Nursery
) -> None:
    proxy = CuttableProxy()
    port = await nursery.start(proxy.serve)
    url = pg_database.replace("127.0.0.1:5432", f"127.0.0.1:{port}")
    store = PostgresStore(url, pool_timeout=1.0, connect_timeout=1)
    await store.open()
    try:
        meal, _ = await store.create_meal_log(new_meal(user="cut-user"))
        await store.mark_processing(meal.id)
        proxy.cut()
        assert not await store.healthy()
        with pytest.raises(StoreUnavailable):
            await store.finish_meal_log(meal.id, COMPLETED, 1000)
        with pytest.raises(StoreUnavailable):
            await store.create_meal_log(new_meal(user="cut-user"))
        proxy.restore()
        restored = trio.current_time()
        while not await store.healthy():  # the pool reconnects with backoff
            assert trio.current_time() - restored < 15, "the pool did not reconnect"
        kept = await store.get_meal_log("cut-user", meal.id)
        assert kept is not None and kept.status == "processing"  # the finish left no trace
        assert await store.latest_seq("cut-user") == 0
        _, note = await store.finish_meal_log(meal.id, COMPLETED, 1000)
        assert note.seq == 1
    finally:
        await store.close()


@pytest.mark.postgres
async def test_open_fails_clearly_when_the_database_is_down() -> None:
    with trio.socket.socket() as probe:  # a port with nobody listening
        await probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    store = PostgresStore(
        f"postgresql://postgres@127.0.0.1:{port}/x", connect_timeout=1, open_timeout=1.0
    )
    with pytest.raises(StoreUnavailable):
        await store.open()
    assert not await store.healthy()


@pytest.mark.postgres
def test_a_connection_back_a_moment_ago_is_lent_without_a_check(pg_database: str) -> None:
    """The pool's check is a round trip per call; it is skipped for a connection handed back
    less than `idle` ago, and one idle longer is checked (and a dead one refused)."""
    now = [100.0]
    recent = RecentUse(idle=1.0, clock=lambda: now[0])
    conn = psycopg.connect(pg_database, autocommit=True)
    recent.check(conn)  # never seen: checked
    assert recent.checks == 1
    recent.returned(conn)
    now[0] += 0.999
    recent.check(conn)
    assert recent.checks == 1
    now[0] += 0.002
    recent.check(conn)
    assert recent.checks == 2
    conn.close()
    with pytest.raises(psycopg.OperationalError):
        recent.check(conn)
