"""Several nodes, one user, nothing lost: real `fitiq-rt serve` processes on PostgreSQL and Redis.

Each test gets a fresh database and its own `redis-server` on a free port (so killing Redis here
never disturbs another test using 6379), starts two nodes on them, and talks to the nodes the way
devices do: REST with httpx, WebSockets with trio-websocket. These FAIL (never skip) when
PostgreSQL or the redis-server binary is missing: CI provides both.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trio_websocket

from benchmarks.chaos.services import CuttableProxy, RedisProcess
from fitiq_rt.client import Backoff, Connector, ReferenceClient, static_token
from fitiq_rt.meals.postgres_store import PostgresStore
from fitiq_rt.meals.store import NewMealLog, Outcome
from tests.cluster import (
    WAIT,
    Socket,
    assert_no_errors,
    eventually,
    got_all,
    open_socket,
    post_meal,
    start_node,
    stored_seqs,
    two_nodes,
    unique_user,
)
from tests.servers import SubprocessServer, token_for

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


# ---------------------------------------------------------------- services and nodes


@pytest.fixture
async def nodes(
    tmp_path: Path, database: str, redis_server: RedisProcess
) -> AsyncIterator[list[SubprocessServer]]:
    """Two nodes on one database and one Redis."""
    env = {"FITIQ_DATABASE_URL": database, "FITIQ_REDIS_URL": redis_server.url}
    async with two_nodes(tmp_path, **env) as started:
        yield started


# ---------------------------------------------------------------- the tests


async def test_one_user_on_two_nodes_gets_every_notification_on_every_socket(
    nodes: list[SubprocessServer], nursery: trio.Nursery
) -> None:
    node_a, node_b = nodes
    user = unique_user("alice")
    sockets = [
        await open_socket(nursery, node_a, user, "a1"),
        await open_socket(nursery, node_b, user, "b1"),
        await open_socket(nursery, node_a, user, "a2"),
    ]
    count = 30
    async with httpx.AsyncClient(timeout=10) as http:
        for i in range(count):
            await post_meal(http, nodes[i % 2], user, f"{i + 1} eggs")
    await eventually(got_all(sockets, count), "every socket to reach the last seq")
    await trio.sleep(0.2)  # a late duplicate would show up here
    for sock in sockets:
        assert sock.seqs == list(range(1, count + 1)), sock.name
    deliveries = node_a.events("notification.delivered") + node_b.events("notification.delivered")
    assert len(deliveries) == count  # every one reached a socket live; none was only queued


async def test_concurrent_posts_on_both_nodes_give_each_user_one_to_n(
    nodes: list[SubprocessServer], database: str, nursery: trio.Nursery
) -> None:
    users = [unique_user(f"user{i}") for i in range(5)]
    sockets: dict[str, list[Socket]] = {}
    for user in users:
        sockets[user] = [
            await open_socket(nursery, nodes[0], user, f"{user}@a"),
            await open_socket(nursery, nodes[1], user, f"{user}@b"),
        ]
    total = 200
    async with httpx.AsyncClient(timeout=30) as http, trio.open_nursery() as posting:
        for i in range(total):
            posting.start_soon(post_meal, http, nodes[i % 2], users[i % 5], f"{i} apples")
    per_user = total // len(users)
    everyone = [sock for socks in sockets.values() for sock in socks]
    await eventually(got_all(everyone, per_user), "all 200 notifications on every socket")
    await trio.sleep(0.2)
    for user in users:
        for sock in sockets[user]:
            assert sock.seqs == list(range(1, per_user + 1)), sock.name
        assert await stored_seqs(database, user) == list(range(1, per_user + 1))


async def test_redis_killed_for_three_seconds_loses_nothing(
    nodes: list[SubprocessServer], redis_server: RedisProcess, nursery: trio.Nursery
) -> None:
    node_a, node_b = nodes
    users = [unique_user("carol"), unique_user("dave")]
    sockets = {
        user: [
            await open_socket(nursery, node_a, user, f"{user}@a"),
            await open_socket(nursery, node_b, user, f"{user}@b"),
        ]
        for user in users
    }
    posted = {user: 0 for user in users}

    async def stream(http: httpx.AsyncClient, seconds: float) -> None:
        """Alternate users and nodes, ~20 meal logs a second."""
        end = trio.current_time() + seconds
        i = 0
        while trio.current_time() < end:
            user = users[i % 2]
            await post_meal(http, nodes[(i // 2) % 2], user, f"{i} pears")
            posted[user] += 1
            i += 1
            await trio.sleep(0.05)

    async with httpx.AsyncClient(timeout=10) as http:
        await stream(http, 1.0)
        await trio.to_thread.run_sync(redis_server.kill)
        await trio.to_thread.run_sync(node_a.wait_for_event, "broker.disconnected")
        health = await http.get(node_a.url("/healthz"))
        assert health.status_code == 200 and health.json()["checks"]["broker"] == "down"
        ready = await http.get(node_a.url("/readyz"))  # Redis is shared: stay in rotation
        assert ready.status_code == 200 and ready.json()["checks"]["broker"] == "down"
        await stream(http, 3.0)  # Redis is down for these three seconds
        await trio.to_thread.run_sync(redis_server.start)
        await stream(http, 1.0)
        for node in nodes:
            await trio.to_thread.run_sync(node.wait_for_event, "broker.reconnected")
        await eventually(
            lambda: all(got_all(sockets[u], posted[u])() for u in users), "every seq everywhere"
        )
        await trio.sleep(0.2)
        for user in users:
            for sock in sockets[user]:
                assert sock.seqs == list(range(1, posted[user] + 1)), sock.name
        for node in nodes:
            assert node.events("broker.disconnected")[0]["error"]
            health = await http.get(node.url("/healthz"))
            assert health.json()["checks"] == {"database": "ok", "broker": "ok"}


async def test_node_killed_the_reference_client_resumes_on_the_other_node(
    nodes: list[SubprocessServer], database: str, nursery: trio.Nursery
) -> None:
    """The reference client behind a load balancer: its node dies, it resumes on the other."""
    node_a, node_b = nodes
    user = unique_user("erin")
    seqs: list[int] = []

    async def record(frame: dict[str, Any]) -> None:
        seqs.append(frame["seq"])

    client = ReferenceClient(
        ws_base(node_a),
        static_token(token_for(user)),
        backoff=Backoff(initial=0.05, cap=0.5),
        connect=balanced([node_a, node_b]),
    )
    nursery.start_soon(client.run, record)
    async with httpx.AsyncClient(timeout=10) as http:
        await eventually(lambda: client.connections == 1, "the client to be welcomed on node A")
        for i in range(5):
            await post_meal(http, node_b, user, f"{i} figs")
        await eventually(lambda: seqs[-1:] == [5], "the client on node A to get 1..5")
        node_a.kill()
        for i in range(5):  # the client may be between nodes: stored, never dropped
            await post_meal(http, node_b, user, f"{i} plums")
        await eventually(lambda: client.connections == 2, "the client to reconnect to node B")
        for i in range(5):
            await post_meal(http, node_b, user, f"{i} kiwis")
        await eventually(lambda: seqs[-1:] == [15], "the resumed client to get 6..15")
    await trio.sleep(0.2)
    assert seqs == list(range(1, 16))
    resumed = node_b.events("ws.resumed")
    assert [(e["last_seq"], e["complete"]) for e in resumed] == [(5, True)]
    nodes.remove(node_a)  # killed on purpose: its log ends abruptly


def ws_base(node: SubprocessServer) -> str:
    return f"ws://127.0.0.1:{node.port}/ws/meal-logs"


def balanced(backends: list[SubprocessServer]) -> Connector:
    """A load balancer in miniature: each connection goes to the first node still running."""

    def connect(url: str) -> AbstractAsyncContextManager[Any]:
        alive = next(node for node in backends if node.proc.poll() is None)
        tail = url.split("/ws/meal-logs", 1)[1]
        return trio_websocket.open_websocket_url(ws_base(alive) + tail, connect_timeout=5)

    return connect


async def test_unreachable_database_answers_503_and_readyz_says_down(
    tmp_path: Path, database: str, nursery: trio.Nursery
) -> None:
    proxy = CuttableProxy()
    port = await nursery.start(proxy.serve)
    url = database.replace("127.0.0.1:5432", f"127.0.0.1:{port}")
    node = await start_node(tmp_path, "solo", FITIQ_DATABASE_URL=url)
    try:
        user = unique_user("frank")
        async with httpx.AsyncClient(timeout=10) as http:
            await post_meal(http, node, user, "toast")
            proxy.cut()
            down = await http.post(
                node.url("/api/v1/meal-logs/natural"),
                json={"raw_input": "more toast"},
                headers={"Authorization": f"Bearer {token_for(user)}"},
            )
            assert down.status_code == 503
            assert down.json()["error"]["code"] == "unavailable"
            ready = await http.get(node.url("/readyz"))
            assert ready.status_code == 503 and ready.json()["checks"]["database"] == "down"
            alive = await http.get(node.url("/healthz"))  # no restart would cure it
            assert (alive.status_code, alive.json()["ready"]) == (200, False)
            proxy.restore()
            await eventually_async(lambda: readyz_ok(http, node), "readyz to recover")
            await post_meal(http, node, user, "jam")
            listed = await http.get(
                node.url("/api/v1/meal-logs"),
                headers={"Authorization": f"Bearer {token_for(user)}"},
            )
            assert [m["raw_input"] for m in listed.json()["items"]] == ["toast", "jam"]
    finally:
        node.kill()


async def test_a_dead_nodes_claim_is_taken_over_after_its_lease(
    tmp_path: Path, database: str, redis_server: RedisProcess
) -> None:
    """Node A claims a meal log and dies for good; node B finishes it once A's lease
    (FITIQ_DB_LEASE) has run out, found by its next sweep (FITIQ_RECOVERY_INTERVAL)."""
    shared = {
        "FITIQ_DATABASE_URL": database,
        "FITIQ_REDIS_URL": redis_server.url,
        "FITIQ_DB_LEASE": "2",
        "FITIQ_RECOVERY_INTERVAL": "0.5",
    }
    holder = await start_node(tmp_path, "a", FITIQ_PROCESSOR="tests.processors:holding", **shared)
    taker = await start_node(tmp_path, "b", **shared)
    try:
        user = unique_user("lease")
        async with httpx.AsyncClient(timeout=10) as http:
            meal_id = await post_meal(http, holder, user, "2 eggs [hold]")
            await trio.to_thread.run_sync(holder.wait_for_event, "meal_log.created")
            await trio.sleep(0.5)  # A has claimed it and holds it in its processor
            holder.kill()
            killed = trio.current_time()
            await eventually_async(
                lambda: meal_finished(http, taker, user, meal_id), "node B to finish A's meal log"
            )
        waited = trio.current_time() - killed
        assert 1.0 < waited < 2 + 0.5 + 5  # not before the lease ran out; soon after it did
        assert [e["meal_log_id"] for e in taker.events("meal_log.processed")] == [meal_id]
    finally:
        taker.kill()


async def meal_finished(
    http: httpx.AsyncClient, node: SubprocessServer, user: str, meal_id: str
) -> bool:
    response = await http.get(
        node.url(f"/api/v1/meal-logs/{meal_id}"),
        headers={"Authorization": f"Bearer {token_for(user)}"},
    )
    return bool(response.json()["status"] == "completed")


async def readyz_ok(http: httpx.AsyncClient, node: SubprocessServer) -> bool:
    return (await http.get(node.url("/readyz"))).status_code == 200


async def eventually_async(check: Callable[[], Awaitable[bool]], what: str) -> None:
    with trio.move_on_after(WAIT):
        while not await check():
            await trio.sleep(0.1)
        return
    raise AssertionError(f"timed out after {WAIT}s waiting for {what}")


async def test_a_notification_stored_but_never_published_reaches_the_open_socket(
    tmp_path: Path, database: str, redis_server: RedisProcess, nursery: trio.Nursery
) -> None:
    """What a node leaves when it dies between commit and publish: the position check fills it."""
    node = await start_node(
        tmp_path,
        "solo",
        FITIQ_DATABASE_URL=database,
        FITIQ_REDIS_URL=redis_server.url,
        FITIQ_POSITION_CHECK_INTERVAL="0.5",
    )
    try:
        user = unique_user("grace")
        sock = await open_socket(nursery, node, user, "phone")
        async with httpx.AsyncClient(timeout=10) as http:
            await post_meal(http, node, user, "an apple")
        await eventually(lambda: sock.seqs == [1], "the live notification")
        await finish_without_publishing(database, user)  # as the node that died would leave it
        await eventually(lambda: sock.seqs == [1, 2], "the position check to deliver seq 2")
        behind = node.events("ws.position_behind")
        assert [(e["sent_seq"], e["stored_seq"]) for e in behind] == [(1, 2)]
        assert_no_errors(node)
    finally:
        node.kill()


async def finish_without_publishing(database: str, user: str) -> None:
    store = PostgresStore(database, pool_size=1)
    await store.open()
    try:
        meal, _ = await store.create_meal_log(
            NewMealLog(
                user_id=user,
                raw_input="a pear",
                meal_type=None,
                logged_at="2026-12-01T12:00:00.000000Z",
                idempotency_key=None,
            )
        )
        await store.mark_processing(meal.id)
        outcome = Outcome(status="completed", items=(), totals={"calories": 57}, error=None)
        await store.finish_meal_log(meal.id, outcome, 1000)
    finally:
        await store.close()
