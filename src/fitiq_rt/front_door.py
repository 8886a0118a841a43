"""The listener's first look at each connection: read the request head, then route it.

`GET /ws/meal-logs` goes to fitiq_rt's own WebSocket transport; everything else goes, with the
bytes already read, to Hypercorn's HTTP/1.1 handling. The head must arrive within
FITIQ_HANDSHAKE_TIMEOUT (a client trickling its headers is dropped) and fit in
FITIQ_MAX_HEADER_BYTES (431 otherwise), whichever side it is routed to.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import trio

from .access_log import log_request
from .http_handoff import HttpHandoff
from .logconfig import get_logger
from .realtime.endpoint import (
    HEADERS_TOO_LARGE,
    WEBSOCKET_PATH,
    refusal_response,
    send_and_close,
    serve_websocket,
)
from .realtime.ws_transport import RECEIVE_BYTES, ClosingWaits

if TYPE_CHECKING:
    from .app import Services

log = get_logger("fitiq_rt.server")

_HEAD_END = b"\r\n\r\n"


class HeadTooLarge(Exception):
    """The request head is over FITIQ_MAX_HEADER_BYTES; `received` is what came so far."""

    def __init__(self, received: bytes) -> None:
        super().__init__()
        self.received = received


async def read_head(stream: trio.SocketStream, limit: int) -> bytes | None:
    """Everything received up to and past the end of the request head; None at EOF first."""
    received = b""
    while True:
        chunk = await stream.receive_some(RECEIVE_BYTES)
        if not chunk:
            return None
        searched_from = max(0, len(received) - 3)
        received += chunk
        end = received.find(_HEAD_END, searched_from)
        if end >= 0:
            if end > limit:
                raise HeadTooLarge(received)
            return received
        if len(received) > limit:
            raise HeadTooLarge(received)


def request_line(received: bytes) -> tuple[str, str]:
    """(method, target) of a request head, as well as it can be read (for routing and logs)."""
    line = received.split(b"\r\n", 1)[0]
    parts = line.split(b" ")
    if len(parts) != 3:
        return "", ""
    return parts[0].decode("latin-1"), parts[1].decode("latin-1")


def is_websocket_route(received: bytes) -> bool:
    method, target = request_line(received)
    return method == "GET" and target.partition("?")[0] == WEBSOCKET_PATH


class FrontDoor:
    """One per server: routes connections and tracks their closing handshakes."""

    def __init__(self, services: Services, http: HttpHandoff) -> None:
        self._services = services
        self._http = http
        self.closing = ClosingWaits()

    async def handle(self, stream: trio.SocketStream) -> None:
        """Serve one accepted connection; never raises, so one bad client cannot stop the server."""
        settings = self._services.settings
        try:
            received = None
            try:
                with trio.CancelScope(deadline=trio.current_time() + settings.handshake_timeout):
                    received = await read_head(stream, settings.max_header_bytes)
            except HeadTooLarge as too_large:
                await self._refuse_large_head(stream, too_large.received)
                return
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return
            if received is None:  # EOF, or the head did not come in time (slowloris)
                return
            if is_websocket_route(received):
                parcel = [received]  # handed over whole: this frame keeps no copy for the
                del received  # socket's lifetime
                client = stream.socket.getpeername()
                client_ip = client[0] if client else None
                await serve_websocket(stream, parcel, self._services, self.closing, client_ip)
            else:
                await self._http.serve(stream, received)
        except OSError:
            pass  # the peer vanished under us (reset, unreachable)
        except Exception as exc:
            log.error("connection.error", error=repr(exc)[:500], exc_info=exc)
        finally:
            stream.socket.close()

    async def _refuse_large_head(self, stream: trio.SocketStream, received: bytes) -> None:
        started = time.perf_counter()
        response = refusal_response(HEADERS_TOO_LARGE)
        method, target = request_line(received)
        log_request(method, target, 431, started=started, sent=len(response.body))
        wait = self._services.settings.close_timeout
        await send_and_close(stream, response.serialize(), self.closing, wait)
