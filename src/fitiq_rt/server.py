"""Run the service: Hypercorn's trio worker serving the app, and a shutdown that closes with 1001.

Hypercorn's own SIGTERM handling would cancel handlers after its graceful timeout with no close
frame; instead a signal here first refuses new sockets (503), closes every open socket with 1001
(`server_shutdown`), waits for their sessions to log out, and only then stops the listener.
"""

from __future__ import annotations

import gc
import logging
import signal
import socket
from functools import partial

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.config import Sockets
from hypercorn.trio.run import worker_serve
from hypercorn.utils import wrap_app

from . import __version__
from .app import Services, build_services, create_asgi_app, running
from .config import Settings
from .logconfig import get_logger
from .realtime.connection import CLOSE_GOING_AWAY

log = get_logger("fitiq_rt.server")

STALLED_PEER_TIMEOUT = 30.0  # seconds unacknowledged data may wait before the kernel gives up


def hypercorn_config(settings: Settings) -> HypercornConfig:
    config = HypercornConfig()
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    config.bind = [f"{host}:{settings.port}"]
    config.accesslog = None  # the app writes its own structured access log
    config.errorlog = logging.getLogger("hypercorn.error")
    config.backlog = 2048
    config.graceful_timeout = settings.shutdown_timeout
    config.h11_max_incomplete_size = settings.max_header_bytes  # larger headers: 431
    # Hypercorn's idle timer runs from accept until a complete request head arrives, so this
    # bounds a slowloris client that trickles its headers (and idle keep-alive connections).
    config.keep_alive_timeout = settings.handshake_timeout
    # Hypercorn closes frames above this itself (1009) without telling the app; keep it above
    # the app's limit so the app sees, closes and logs oversized messages in all normal cases.
    config.websocket_max_message_size = settings.max_message_bytes * 4 + 4
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
    listener_stopped = trio.Event()
    async with running(services), trio.open_nursery() as nursery:
        signal_watch = trio.CancelScope()
        nursery.start_soon(_wait_for_signals, stop, signal_watch)
        config = hypercorn_config(settings)
        app = wrap_app(create_asgi_app(services), config.wsgi_max_body_size, "asgi")
        freeze_startup_objects()
        binds = await nursery.start(
            partial(
                worker_serve,
                app,
                config,
                sockets=listening_sockets(config),
                shutdown_trigger=listener_stopped.wait,
            )
        )
        port = int(binds[0].rsplit(":", 1)[1])
        log.info("server.started", host=settings.host, port=port, version=__version__)
        task_status.started(port)
        await stop.wait()
        signal_watch.cancel()
        closed = await drain(services, settings.shutdown_timeout)
        listener_stopped.set()
        nursery.cancel_scope.deadline = trio.current_time() + settings.shutdown_timeout
    log.info("server.stopped", connections_closed=closed)


def freeze_startup_objects() -> None:
    """Move everything built at startup out of the garbage collector's sight.

    Modules, the food table, the app and its schemas live for the whole process; left in the
    tracked generations, every full collection rescans them, which showed as ~200 ms stalls
    (every socket's latency at once) in the e2e benchmark with 1,000 users.
    """
    gc.collect()
    gc.freeze()


def listening_sockets(config: HypercornConfig) -> Sockets:
    """Hypercorn's sockets, with TCP_USER_TIMEOUT set (accepted sockets inherit it on Linux).

    A client that stops reading leaves Hypercorn's shielded send_all waiting for a window that
    never opens; the kernel then aborts the connection after STALLED_PEER_TIMEOUT instead of
    keeping it (and its task) forever.
    """
    sockets = config.create_sockets()
    for sock in sockets.insecure_sockets + sockets.secure_sockets:
        if hasattr(socket, "TCP_USER_TIMEOUT") and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(
                socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, int(STALLED_PEER_TIMEOUT * 1000)
            )
        sock.listen(config.backlog)
    return sockets


async def drain(services: Services, timeout: float) -> int:  # noqa: ASYNC109
    """Refuse new sockets, close the open ones with 1001, and wait until they have logged out."""
    services.draining = True
    registry = services.registry
    closed = registry.close_all("server_shutdown", CLOSE_GOING_AWAY)
    with trio.move_on_after(timeout):
        await registry.wait_empty()
    return closed


async def _wait_for_signals(stop: trio.Event, scope: trio.CancelScope) -> None:
    with scope, trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            log.info("server.stopping", signal=signal.Signals(signum).name)
            stop.set()
            return
