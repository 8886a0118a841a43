"""Hand a connection that is not a WebSocket upgrade to Hypercorn's HTTP/1.1 handling.

The front door has already read the request head; `PrefixedStream` gives those bytes back to
Hypercorn's first read, so REST keeps everything Hypercorn and Quart-Trio do (keep-alive, 413,
h11's limits, the app's access log) while fitiq_rt owns the listener. The lifespan and worker
context are Hypercorn's own, run the way its trio worker runs them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio.lifespan import Lifespan
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import AppWrapper, ConnectionState


class PrefixedStream(trio.abc.HalfCloseableStream):
    """A socket stream whose first read returns bytes that were read from it already."""

    def __init__(self, stream: trio.SocketStream, prefix: bytes) -> None:
        self._stream = stream
        self._prefix = prefix
        self.socket = stream.socket  # Hypercorn reads the peer's address from it

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._prefix:
            data, self._prefix = self._prefix, b""
            await trio.lowlevel.checkpoint()
            return data
        return await self._stream.receive_some(max_bytes)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self._stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        await self._stream.send_eof()

    async def aclose(self) -> None:
        await self._stream.aclose()


class HttpHandoff:
    """Serves handed-over connections with Hypercorn's TCPServer, sharing one worker context."""

    def __init__(self, app: AppWrapper, config: HypercornConfig, state: dict[str, Any]) -> None:
        self._app = app
        self._config = config
        self._state = state
        self._context = WorkerContext(None)

    async def serve(self, stream: trio.SocketStream, received: bytes) -> None:
        state = ConnectionState(self._state.copy())
        prefixed: Any = PrefixedStream(stream, received)  # Hypercorn types it as an SSLStream
        server = TCPServer(self._app, self._config, self._context, state, prefixed)
        await server.run()

    async def terminate(self) -> None:
        """Shutdown: idle keep-alive connections close now, busy ones after their response."""
        await self._context.terminated.set()


@asynccontextmanager
async def hypercorn_http(app: AppWrapper, config: HypercornConfig) -> AsyncIterator[HttpHandoff]:
    """Run the app's lifespan (Quart's startup and shutdown) around the handoff's lifetime."""
    state: dict[str, Any] = {}
    lifespan = Lifespan(app, config, state)
    async with trio.open_nursery() as nursery:
        await nursery.start(lifespan.handle_lifespan)
        await lifespan.wait_for_startup()
        yield HttpHandoff(app, config, state)
        # On a clean stop only: a cancelled server has already cancelled the lifespan task.
        with trio.move_on_after(config.graceful_timeout):
            await lifespan.wait_for_shutdown()
        nursery.cancel_scope.cancel()
