"""Helpers for tests that run several real `fitiq-rt serve` nodes: start one, open a device's
socket and record what it is sent, post a meal, wait for what the devices should see."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import httpx
import orjson
import trio
import trio_websocket

from fitiq_rt.meals.postgres_store import PostgresStore
from tests.servers import SubprocessServer, token_for

WAIT = 15.0  # seconds any expected delivery may take before the test fails


async def start_node(tmp_path: Path, name: str, **env: str) -> SubprocessServer:
    """A `fitiq-rt serve` process; started in a thread so the trio loop keeps running."""
    data_dir = tmp_path / name
    return await trio.to_thread.run_sync(lambda: SubprocessServer(data_dir, env))


def assert_no_errors(node: SubprocessServer) -> None:
    errors = [e for e in node.events() if e.get("level") in ("error", "critical")]
    assert errors == [], errors[:3]


# ---------------------------------------------------------------- clients


@attrs.define
class Socket:
    """One device socket: what it was sent, in order."""

    name: str
    welcome: dict[str, Any] = attrs.field(factory=dict)
    seqs: list[int] = attrs.field(factory=list)
    resumed: list[dict[str, Any]] = attrs.field(factory=list)
    closed: bool = False


async def open_socket(
    nursery: trio.Nursery, node: SubprocessServer, user: str, name: str, **query: Any
) -> Socket:
    """Connect, wait for the welcome, then record every frame in a background task."""
    sock = Socket(name)
    url = node.ws_url(token_for(user), **query)

    async def run(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with trio_websocket.open_websocket_url(url) as ws:
                sock.welcome = orjson.loads(await ws.get_message())
                task_status.started()
                while True:
                    frame = orjson.loads(await ws.get_message())
                    kind = frame["type"]
                    if kind.startswith("meal_log."):
                        sock.seqs.append(frame["seq"])
                    elif kind == "resumed":
                        sock.resumed.append(frame)
                    elif kind == "ping":
                        await ws.send_message('{"type":"pong"}')
        except trio_websocket.ConnectionClosed:
            sock.closed = True

    await nursery.start(run)
    assert sock.welcome["type"] == "welcome"
    return sock


async def post_meal(http: httpx.AsyncClient, node: SubprocessServer, user: str, text: str) -> str:
    response = await http.post(
        node.url("/api/v1/meal-logs/natural"),
        json={"raw_input": text, "meal_type": "lunch"},
        headers={"Authorization": f"Bearer {token_for(user)}"},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def eventually(check: Callable[[], bool], what: str) -> None:
    """Poll a condition on what the clients recorded; fail after WAIT seconds."""
    with trio.move_on_after(WAIT):
        while not check():
            await trio.sleep(0.02)
        return
    raise AssertionError(f"timed out after {WAIT}s waiting for {what}")


def got_all(sockets: list[Socket], count: int) -> Callable[[], bool]:
    return lambda: all(s.seqs and s.seqs[-1] >= count for s in sockets)


async def stored_seqs(database: str, user: str) -> list[int]:
    store = PostgresStore(database, pool_size=1)
    await store.open()
    try:
        page = await store.since(user, 0, 10_000)
        return [note.seq for note in page.items]
    finally:
        await store.close()


def unique_user(label: str) -> str:
    return f"{label}-{os.getpid()}-{time.monotonic_ns() % 1_000_000}"


@asynccontextmanager
async def two_nodes(tmp_path: Path, **env: str) -> AsyncIterator[list[SubprocessServer]]:
    """Nodes "a" and "b" started at once (both migrate at start), each connected to Redis.

    Leaving cleanly asserts neither logged an error; either way both are killed.
    """
    started: list[SubprocessServer] = []

    async def start(name: str) -> None:
        started.append(await start_node(tmp_path, name, **env))

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(start, "a")
            nursery.start_soon(start, "b")
        started.sort(key=lambda node: node.data_dir.name)
        for node in started:
            await trio.to_thread.run_sync(node.wait_for_event, "broker.connected")
        yield started
        for node in started:
            assert_no_errors(node)
    finally:
        for node in started:
            node.kill()
