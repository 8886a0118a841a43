"""A real socket pair: a raw HTTP/1.1 client on one end, `HandoffConnection` serving an ASGI app
on the other (Hypercorn's h11 protocol, fitiq_rt's timer and write buffer), for autojump tests."""

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
async def handoff_pair(app: Any) -> AsyncIterator[tuple[Client, CountingStream, WorkerContext]]:
    """Serve `app` on one connection; the client side closes when the block ends."""
    config = Config()
    config.keep_alive_timeout = KEEP_ALIVE
    context = WorkerContext(None)
    client_sock, server_sock = trio.socket.socketpair()
    server_stream = CountingStream(trio.SocketStream(server_sock), b"")
    server = HandoffConnection(
        wrap_app(app, config.wsgi_max_body_size, "asgi"),
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
