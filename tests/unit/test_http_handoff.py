"""The handed-over REST connection: its keep-alive timer at exact virtual times, and its writes.

A real socket pair carries real HTTP/1.1 between a raw client and `HandoffConnection` (Hypercorn's
h11 protocol, our timer and write buffer) serving a small ASGI app; autojump_clock runs the time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import ConnectionState
from hypercorn.utils import wrap_app

from fitiq_rt.http_handoff import HandoffConnection, PrefixedStream

KEEP_ALIVE = 5.0
REQUEST = b"GET /%s HTTP/1.1\r\nHost: x\r\n\r\n"


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """`/slow` answers after 12 s, `/stream` sends two chunks 1 s apart, anything else at once."""
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/slow":
        await trio.sleep(12)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    if path == "/stream":
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        await trio.sleep(1)
        await send({"type": "http.response.body", "body": b"second"})
        return
    await send({"type": "http.response.body", "body": path.encode()})


class CountingStream(PrefixedStream):
    """The server's side of the pair, counting its writes."""

    writes = 0

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        self.writes += 1
        await super().send_all(data)


class Client:
    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buffer = bytearray()

    async def get(self, path: str) -> None:
        await self.stream.send_all(REQUEST % path.encode())

    async def until(self, marker: bytes) -> float:
        """Virtual time at which `marker` has arrived."""
        while marker not in self.buffer:
            chunk = await self.stream.receive_some(65536)
            assert chunk, f"closed before {marker!r} arrived"
            self.buffer += chunk
        return trio.current_time()

    async def closed_at(self) -> float:
        while chunk := await self.stream.receive_some(65536):
            self.buffer += chunk
        return trio.current_time()


@asynccontextmanager
async def connection() -> AsyncIterator[tuple[Client, CountingStream, WorkerContext]]:
    config = Config()
    config.keep_alive_timeout = KEEP_ALIVE
    context = WorkerContext(None)
    client_sock, server_sock = trio.socket.socketpair()
    server_stream = CountingStream(trio.SocketStream(server_sock), b"")
    server = HandoffConnection(
        wrap_app(app, config.wsgi_max_body_size, "asgi"),  # type: ignore[arg-type]
        config,
        context,
        ConnectionState({}),
        server_stream,  # type: ignore[arg-type]
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.run)
        client = Client(trio.SocketStream(client_sock))
        yield client, server_stream, context
        await client.stream.aclose()


async def test_an_idle_connection_closes_exactly_keep_alive_seconds_after_its_last_response(
    autojump_clock: object,
) -> None:
    async with connection() as (client, _, _):
        await client.get("one")
        assert await client.until(b"/one") == 0.0
        await trio.sleep(3)
        await client.get("two")  # a request in the idle period moves the deadline
        assert await client.until(b"/two") == 3.0
        assert await client.closed_at() == 3.0 + KEEP_ALIVE


async def test_a_slow_response_is_not_cut_by_the_timer_and_restarts_it(
    autojump_clock: object,
) -> None:
    async with connection() as (client, _, _):
        await client.get("slow")
        assert await client.until(b"/slow") == 12.0
        assert await client.closed_at() == 12.0 + KEEP_ALIVE


async def test_a_connection_that_never_sends_closes_at_the_timeout(autojump_clock: object) -> None:
    async with connection() as (client, _, _):
        assert await client.closed_at() == KEEP_ALIVE


async def test_terminate_closes_an_idle_connection_at_once(autojump_clock: object) -> None:
    async with connection() as (client, _, context):
        await client.get("one")
        await client.until(b"/one")
        await trio.sleep(1)
        await context.terminated.set()
        assert await client.closed_at() == 1.0


async def test_terminate_lets_a_busy_connection_finish_its_response(autojump_clock: object) -> None:
    async with connection() as (client, _, context):
        await client.get("slow")
        await trio.sleep(2)
        await context.terminated.set()
        assert await client.until(b"/slow") == 12.0
        assert await client.closed_at() == 12.0


async def test_a_small_response_is_one_write(autojump_clock: object) -> None:
    async with connection() as (client, server_stream, _):
        for index in range(3):
            await client.get(f"r{index}")
            await client.until(f"/r{index}".encode())
        assert server_stream.writes == 3


async def test_a_streamed_body_is_written_as_it_comes(autojump_clock: object) -> None:
    async with connection() as (client, _, _):
        await client.get("stream")
        assert await client.until(b"first") == 0.0  # not held until the response ends
        assert await client.until(b"second") == 1.0
        assert await client.closed_at() == 1.0 + KEEP_ALIVE


async def test_pipelined_requests_are_answered_in_order(autojump_clock: object) -> None:
    async with connection() as (client, _, _):
        await client.stream.send_all(REQUEST % b"slow" + REQUEST % b"fast")
        assert await client.until(b"/fast") == 12.0  # the second waits for the first's answer
        assert client.buffer.index(b"/slow") < client.buffer.index(b"/fast")
