"""Run the service: fitiq_rt's own listener in front, Hypercorn behind it for REST.

The listener (`front_door`) serves `/ws/meal-logs` on fitiq_rt's WebSocket transport and hands
every other connection to Hypercorn's HTTP/1.1 handling. A signal first refuses new sockets
(503), closes every open socket with 1001 (`server_shutdown`), waits for their sessions to log
out, then stops the listener and gives what is left (closing handshakes, REST responses) the
rest of FITIQ_SHUTDOWN_TIMEOUT.
"""

from __future__ import annotations

import errno
import gc
import logging
import signal
import socket
from collections.abc import Awaitable, Callable

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.utils import wrap_app

from . import __version__
from .app import Services, build_services, create_asgi_app, running
from .config import Settings
from .front_door import FrontDoor
from .http_handoff import hypercorn_http
from .logconfig import get_logger
from .realtime.closing import SERVER_SHUTDOWN

log = get_logger("fitiq_rt.server")

ACCEPT_CAPACITY_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}
ACCEPT_RETRY_SECONDS = 0.1  # trio.serve_listeners' own pause after such an error


def hypercorn_config(settings: Settings) -> HypercornConfig:
    config = HypercornConfig()
    config.accesslog = None  # the app writes its own structured access log
    config.errorlog = logging.getLogger("hypercorn.error")
    config.graceful_timeout = settings.shutdown_timeout
    config.h11_max_incomplete_size = settings.max_header_bytes  # larger headers: 431
    # Hypercorn's idle timer bounds a keep-alive connection that sends nothing (and a head
    # trickled after the first request); the front door bounds the first head the same way.
    config.keep_alive_timeout = settings.handshake_timeout
    return config


async def serve(
    settings: Settings,
    *,
    stop: trio.Event | None = None,
    services: Services | None = None,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until SIGINT/SIGTERM (or `stop` is set); reports the bound port when listening."""
    services = services or build_services(settings)
    stop = stop if stop is not None else trio.Event()
    forced = trio.CancelScope()  # a second signal cancels the drain and every connection
    closed = 0
    async with running(services), trio.open_nursery() as nursery:
        signal_watch = trio.CancelScope()
        nursery.start_soon(_wait_for_signals, stop, forced, signal_watch)
        config = hypercorn_config(settings)
        app = wrap_app(create_asgi_app(services), config.wsgi_max_body_size, "asgi")
        async with hypercorn_http(app, config) as http:
            listeners = await open_listeners(settings)
            front_door = FrontDoor(services, http)
            freeze_startup_objects()
            with forced:
                async with trio.open_nursery() as connections:
                    accepting = trio.CancelScope()
                    nursery.start_soon(_accept, accepting, listeners, front_door, connections)
                    port = listeners[0].socket.getsockname()[1]
                    log.info("server.started", host=settings.host, port=port, version=__version__)
                    task_status.started(port)
                    await stop.wait()
                    deadline = trio.current_time() + settings.shutdown_timeout
                    closed = begin_drain(services, front_door)
                    with trio.move_on_at(deadline):
                        await services.registry.wait_empty()
                    accepting.cancel()
                    for listener in listeners:
                        await listener.aclose()
                    await http.terminate()
                    connections.cancel_scope.deadline = deadline
        signal_watch.cancel()
        nursery.cancel_scope.cancel()
    log.info("server.stopped", connections_closed=closed, forced=forced.cancel_called)


async def open_listeners(settings: Settings) -> list[trio.SocketListener]:
    """The listening sockets, with TCP_USER_TIMEOUT set (accepted sockets inherit it on Linux).

    A client that stops reading would otherwise hold a REST response in Hypercorn's shielded
    send forever; the kernel aborts such a connection after FITIQ_STALLED_PEER_TIMEOUT. (The
    WebSocket transport has its own, shorter write timeout.)
    """
    listeners = await trio.open_tcp_listeners(
        settings.port, host=settings.host, backlog=settings.listen_backlog
    )
    for listener in listeners:
        sock = listener.socket
        if hasattr(socket, "TCP_USER_TIMEOUT") and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(
                socket.IPPROTO_TCP,
                socket.TCP_USER_TIMEOUT,
                int(settings.stalled_peer_timeout * 1000),
            )
    return listeners


async def _accept(
    scope: trio.CancelScope,
    listeners: list[trio.SocketListener],
    front_door: FrontDoor,
    connections: trio.Nursery,
) -> None:
    with scope:
        async with trio.open_nursery() as loops:
            for listener in listeners:
                loops.start_soon(accept_loop, listener, front_door.handle, connections)


async def accept_loop(
    listener: trio.SocketListener,
    handle: Callable[[trio.SocketStream], Awaitable[None]],
    connections: trio.Nursery,
) -> None:
    """Accept forever, one task per connection in `connections`.

    Not trio.serve_listeners: its per-connection wrapper closes the stream again after the
    handler (two more task steps per connection, measured), and `handle` closes its own socket.
    Running out of descriptors or memory is logged and retried, as serve_listeners does.
    """
    while True:
        try:
            stream = await listener.accept()
        except OSError as exc:
            if exc.errno not in ACCEPT_CAPACITY_ERRNOS:
                raise
            log.error("server.accept_failed", error=errno.errorcode[exc.errno])
            await trio.sleep(ACCEPT_RETRY_SECONDS)
        else:
            connections.start_soon(handle, stream)


def freeze_startup_objects() -> None:
    """Move everything built at startup out of the garbage collector's sight.

    Modules, the food table, the app and its schemas live for the whole process; left in the
    tracked generations, every full collection rescans them, which showed as ~200 ms stalls
    (every socket's latency at once) in the e2e benchmark with 1,000 users.
    """
    gc.collect()
    gc.freeze()


def begin_drain(services: Services, front_door: FrontDoor) -> int:
    """Refuse new sockets (503) and close the open ones with 1001; returns how many.

    Closing handshakes that were already waiting for a client end now: those clients had their
    close frame before the signal, and waiting out their FITIQ_CLOSE_TIMEOUT would hold the stop.
    """
    services.start_draining()
    front_door.closing.cut_all()
    return services.registry.close_all(SERVER_SHUTDOWN)


async def _wait_for_signals(
    stop: trio.Event, forced: trio.CancelScope, scope: trio.CancelScope
) -> None:
    """The first SIGINT/SIGTERM starts the graceful stop; a second one, during the drain, means
    "now" (as in uvicorn): every connection is cancelled at once, and the stop is logged forced."""
    with scope, trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            name = signal.Signals(signum).name
            if not stop.is_set():
                log.info("server.stopping", signal=name)
                stop.set()
            else:
                log.warning("server.force_stopping", signal=name)
                forced.cancel()
                return
