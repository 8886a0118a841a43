"""The reference client's timing under autojump_clock: backoff bounds, cap, jitter, pings."""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
import pytest
import trio
from trio_websocket import CloseReason, ConnectionClosed

from fitiq_rt.client import Backoff, ClientStopped, ReferenceClient, static_token

CLOSE = {"type": "__close__"}


class FakeSocket:
    """A socket that plays frames; CLOSE makes it close like the network dropped it."""

    def __init__(self, frames: list[dict[str, Any]]) -> None:
        self._send, self._receive = trio.open_memory_channel[str](math.inf)
        for frame in frames:
            self._send.send_nowait(orjson.dumps(frame).decode())
        self.sent: list[tuple[float, dict[str, Any]]] = []

    def push(self, frame: dict[str, Any]) -> None:
        self._send.send_nowait(orjson.dumps(frame).decode())

    async def get_message(self) -> str:
        message = await self._receive.receive()
        if message == '{"type":"__close__"}':
            raise ConnectionClosed(CloseReason(1006, None))
        return message

    async def send_message(self, message: str | bytes) -> None:
        self.sent.append((trio.current_time(), orjson.loads(message)))


WELCOME = {
    "type": "welcome",
    "connection_id": "c1",
    "user_id": "u1",
    "ping_interval": 30.0,
    "idle_timeout": 90.0,
    "last_seq": 0,
}


def test_backoff_bounds_and_cap() -> None:
    backoff = Backoff(initial=0.5, factor=2.0, cap=30.0, jitter=0.5)
    rng = random.Random(7)
    for attempt in range(40):
        base = min(30.0, 0.5 * 2**attempt)
        for _ in range(50):
            delay = backoff.delay(attempt, rng)
            assert base * 0.5 <= delay <= base
    assert backoff.base(0) == 0.5
    assert backoff.base(5) == 16.0
    assert backoff.base(6) == 30.0
    assert backoff.base(10_000) == 30.0


async def test_reconnect_schedule_follows_the_backoff(autojump_clock: object) -> None:
    attempts: list[float] = []

    @asynccontextmanager
    async def refuse(url: str) -> AsyncIterator[FakeSocket]:
        attempts.append(trio.current_time())
        raise OSError("connection refused")
        yield  # pragma: no cover

    client = ReferenceClient(
        "ws://test/ws/meal-logs",
        static_token("t"),
        backoff=Backoff(initial=1.0, factor=2.0, cap=8.0, jitter=0.5),
        rng=random.Random(1),
        connect=refuse,
    )
    with trio.move_on_after(60):
        await client.run(_ignore)
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    bases = [1, 2, 4, 8, 8, 8, 8, 8, 8]
    for gap, base in zip(gaps, bases, strict=False):
        assert base * 0.5 <= gap <= base
    assert max(gaps) <= 8.0
    assert len(gaps) >= 8
    jitter_used = {round(gap / base, 6) for gap, base in zip(gaps, bases, strict=False)}
    assert len(jitter_used) > 1  # not lockstep


async def test_pings_every_interval_answers_server_pings_and_acks(autojump_clock: object) -> None:
    socket = FakeSocket([WELCOME])

    @asynccontextmanager
    async def connect(url: str) -> AsyncIterator[FakeSocket]:
        yield socket

    received: list[int] = []

    async def on_note(frame: dict[str, Any]) -> None:
        received.append(frame["seq"])

    client = ReferenceClient("ws://t/ws/meal-logs", static_token("t"), connect=connect)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.run, on_note)
        await trio.sleep(45)
        socket.push({"type": "ping", "ts": "x"})
        socket.push({"type": "meal_log.completed", "seq": 1, "data": {}})
        socket.push({"type": "meal_log.completed", "seq": 1, "data": {}})  # a duplicate
        socket.push({"type": "meal_log.completed", "seq": 2, "data": {}})
        await trio.sleep(50)
        nursery.cancel_scope.cancel()
    pings = [t for t, frame in socket.sent if frame["type"] == "ping"]
    assert pings == [30.0, 60.0, 90.0]
    assert [f for t, f in socket.sent if f["type"] == "pong"] == [{"type": "pong"}]
    assert [f["seq"] for t, f in socket.sent if f["type"] == "ack"] == [1, 2]
    assert received == [1, 2]
    assert client.last_seq == 2


async def test_reconnect_resumes_from_the_last_seq_seen(autojump_clock: object) -> None:
    urls: list[str] = []
    sockets = [
        FakeSocket([WELCOME, {"type": "meal_log.completed", "seq": 1, "data": {}}, CLOSE]),
        FakeSocket(
            [{**WELCOME, "last_seq": 3}, {"type": "meal_log.completed", "seq": 2, "data": {}}]
        ),
    ]

    @asynccontextmanager
    async def connect(url: str) -> AsyncIterator[FakeSocket]:
        urls.append(url)
        yield sockets.pop(0) if sockets else FakeSocket([])

    client = ReferenceClient("ws://t/ws/meal-logs", static_token("tok"), connect=connect)
    with trio.move_on_after(5):
        await client.run(_ignore)
    assert urls[0] == "ws://t/ws/meal-logs?token=tok"
    assert urls[1] == "ws://t/ws/meal-logs?token=tok&last_seq=1"
    assert client.last_seq == 2


async def test_a_refused_token_with_no_fresh_one_stops_the_client() -> None:
    from trio_websocket import ConnectionRejected

    @asynccontextmanager
    async def reject(url: str) -> AsyncIterator[FakeSocket]:
        raise ConnectionRejected(401, [], b"")
        yield  # pragma: no cover

    client = ReferenceClient("ws://t/ws/meal-logs", static_token("tok"), connect=reject)
    with pytest.raises(ClientStopped):
        await client.run(_ignore)


async def _ignore(frame: dict[str, Any]) -> None:
    return None


async def test_a_reset_store_restarts_the_count_and_a_replay_acks_once(
    autojump_clock: object,
) -> None:
    socket = FakeSocket(
        [
            {**WELCOME, "last_seq": 2},  # the server's store is younger than our memory (seq 9)
            {"type": "meal_log.completed", "seq": 1, "data": {}},
            {"type": "meal_log.completed", "seq": 2, "data": {}},
            {"type": "resumed", "replayed": 2, "complete": False},
            {"type": "meal_log.completed", "seq": 3, "data": {}},
        ]
    )

    @asynccontextmanager
    async def connect(url: str) -> AsyncIterator[FakeSocket]:
        yield socket

    received: list[int] = []

    async def on_note(frame: dict[str, Any]) -> None:
        received.append(frame["seq"])

    client = ReferenceClient("ws://t/ws/meal-logs", static_token("t"), last_seq=9, connect=connect)
    with trio.move_on_after(10):
        await client.run(on_note)
    assert received == [1, 2, 3]
    assert [f["seq"] for _, f in socket.sent if f["type"] == "ack"] == [2, 3]
