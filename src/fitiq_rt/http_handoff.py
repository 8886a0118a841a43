"""Hand a connection that is not a WebSocket upgrade to Hypercorn's HTTP/1.1 handling.

The front door has already read the request head; `PrefixedStream` gives those bytes back to
Hypercorn's first read, so REST keeps everything Hypercorn and Quart-Trio do (keep-alive, 413,
h11's limits, the app's access log) while fitiq_rt owns the listener. The lifespan and worker
context are Hypercorn's own, run the way its trio worker runs them.

The connection itself is Hypercorn's TCPServer with two costs taken out (`HandoffConnection`):
its keep-alive timer and its one-send-per-h11-event writes.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.events import Closed, Event, RawData
from hypercorn.trio.lifespan import Lifespan
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import TrioSingleTask, WorkerContext
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


# Past this many bytes waiting to be written, a response's sender writes them itself (and so waits
# for the socket) instead of leaving them to the connection's writer: a large body is not held
# in memory whole, and a slow reader slows its sender as Hypercorn's own writes would.
WRITE_HIGH_WATER = 64 * 1024


class IdleWatch(TrioSingleTask):
    """The keep-alive timer of one connection: one task for the connection's whole life.

    Why: Hypercorn's own timer (`TrioSingleTask`) cancels a task when a request arrives and
    starts a new one when its response ends, two task switches and a spawn per request. Here a
    request only moves this task's deadline to infinity and the response's end moves it to now
    plus `keep_alive_timeout`. Same rules as Hypercorn's: an idle connection closes at that
    deadline, or at once when the server terminates; a busy one is closed by Hypercorn's protocol
    itself when its response ends after a terminate. It takes Hypercorn's `SingleTask` calls:
    `restart` when the connection goes idle, `stop` when a request begins.
    """

    def __init__(self, timeout: float, terminated: Any, close: Callable[[], Any]) -> None:
        super().__init__()
        self._timeout = timeout
        self._terminated = terminated
        self._close = close
        self._deadline = math.inf  # infinite while a request is in progress
        self._scope: trio.CancelScope | None = None
        self.life = trio.CancelScope()  # cancelled when the connection is closed

    async def restart(self, task_group: Any, action: Callable[..., Any]) -> None:
        """The connection went idle: close it `timeout` from now unless a request comes."""
        self._deadline = trio.current_time() + self._timeout
        if self._scope is None:
            await task_group._nursery.start(self._watch)
        else:
            self._scope.deadline = self._deadline

    async def stop(self) -> None:
        """A request began: no deadline until its response ends."""
        self._deadline = math.inf
        if self._scope is not None:
            self._scope.deadline = math.inf

    async def _watch(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        with self.life:
            task_status.started()
            while True:
                with trio.CancelScope(deadline=self._deadline) as self._scope:
                    await self._terminated.wait()
                if self._deadline != math.inf:
                    break  # idle: the deadline passed, or the server terminated
                if not self._scope.cancelled_caught:
                    return  # terminated while busy: Hypercorn closes after the response
                # the deadline passed just as a request began: watch the next idle period
            with trio.CancelScope(shield=True):
                await self._close()


class HandoffConnection(TCPServer):
    """Hypercorn's TCPServer with a one-task keep-alive timer and one write per response.

    Hypercorn sends every h11 event (the head, the body, the end of the message) with its own
    `send_all` under a lock. Here they go into a buffer, written when the response has ended (the
    protocol's next event), by this connection's writer task once the sender yields (a body that
    streams), or by the sender itself past WRITE_HIGH_WATER. A small response is one write; order
    is kept, since every write holds `send_lock`; a close writes what is buffered first.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.idle_watch = IdleWatch(
            self.config.keep_alive_timeout, self.context.terminated, self._initiate_server_close
        )
        self.idle_task = self.idle_watch
        self._pending = bytearray()
        self._writer: trio.lowlevel.Task | None = None  # parked, waiting for bytes
        self._writer_started = False
        self._writer_life = trio.CancelScope()  # cancelled when the connection is closed

    async def protocol_send(self, event: Event) -> None:
        if isinstance(event, RawData):
            self._buffer(event.data)
            if len(self._pending) >= WRITE_HIGH_WATER:
                await self._flush()
            return
        if self._pending or isinstance(event, Closed):
            await self._flush()  # a close waits for a write in flight, too
        await super().protocol_send(event)

    def _buffer(self, data: bytes) -> None:
        self._pending += data
        if self._writer is not None:
            writer, self._writer = self._writer, None
            trio.lowlevel.reschedule(writer)
        elif not self._writer_started:
            self._writer_started = True
            assert self._task_group._nursery is not None
            self._task_group._nursery.start_soon(self._write_loop)

    async def _write_loop(self) -> None:
        with self._writer_life:
            while True:
                if not self._pending:
                    self._writer = trio.lowlevel.current_task()
                    await trio.lowlevel.wait_task_rescheduled(self._abort_writer)
                await self._flush()

    def _abort_writer(self, _: Any) -> trio.lowlevel.Abort:
        self._writer = None
        return trio.lowlevel.Abort.SUCCEEDED

    async def _flush(self) -> None:
        async with self.send_lock:
            if not self._pending:
                return
            data, self._pending = bytes(self._pending), bytearray()
            try:
                with trio.CancelScope(shield=True):
                    await self.stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                await self.protocol.handle(Closed())

    async def _read_data(self) -> None:
        try:
            await super()._read_data()
        finally:
            with trio.CancelScope(shield=True):
                await self._flush()
            self.idle_watch.life.cancel()
            self._writer_life.cancel()

    async def _initiate_server_close(self) -> None:
        await self._flush()
        await super()._initiate_server_close()


class HttpHandoff:
    """Serves handed-over connections (`HandoffConnection`), all sharing one worker context."""

    def __init__(self, app: AppWrapper, config: HypercornConfig, state: dict[str, Any]) -> None:
        self._app = app
        self._config = config
        self._state = state
        self._context = WorkerContext(None)

    async def serve(self, stream: trio.SocketStream, received: bytes) -> None:
        state = ConnectionState(self._state.copy())
        prefixed: Any = PrefixedStream(stream, received)  # Hypercorn types it as an SSLStream
        server = HandoffConnection(self._app, self._config, self._context, state, prefixed)
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
