"""`GET /ws/meal-logs`: the opening handshake over fitiq_rt's own transport, then the session.

The front door hands over the stream and the bytes it read. `websockets`' ServerProtocol parses
and checks the upgrade (426 without one, 400 for a bad key or version); then come fitiq_rt's
own checks, in the order a client would fix them: draining (503), token (401), `last_seq`
(400), the caps (503/429). Every refusal is a real HTTP status with the contract's JSON body,
sent before any upgrade; an accepted socket is logged `http.request` 101 and becomes a session.
"""

from __future__ import annotations

import time
from http import HTTPStatus
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

import attrs
import orjson
import trio
from websockets.datastructures import Headers
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.server import ServerProtocol

from ..access_log import log_request
from ..auth import AuthError, Identity, select_token
from ..logconfig import get_logger
from .connection import Connection
from .protocol import MAX_SEQ
from .registry import CapExceeded, ConnectionLimits
from .session import run_session
from .ws_transport import PROTOCOL_LOGGER, RECEIVE_BYTES, ClosingWaits, WebSocketTransport

if TYPE_CHECKING:
    from ..app import Services

log = get_logger("fitiq_rt.ws")

WEBSOCKET_PATH = "/ws/meal-logs"


class Refusal:
    """A handshake answered with an HTTP status instead of 101."""

    __slots__ = ("code", "message", "reason", "status")

    def __init__(self, status: int, reason: str, code: str, message: str) -> None:
        self.status = status
        self.reason = reason  # the ws.rejected reason
        self.code = code  # the JSON body's error code
        self.message = message


HEADERS_TOO_LARGE = Refusal(
    431, "headers_too_large", "headers_too_large", "request headers are too large"
)
UPGRADE_REQUIRED = Refusal(
    426, "upgrade_required", "upgrade_required", "this path only serves WebSocket upgrades"
)


@attrs.frozen
class Admission:
    """What the checks before the caps found: who it is, and where a replay starts."""

    identity: Identity
    resume_from: int | None


@attrs.frozen
class Accepted:
    """A socket past every check, registered, with its 101 queued in the transport."""

    conn: Connection
    transport: WebSocketTransport
    expires_at: float
    resume_from: int | None


def cap_refusal(exceeded: CapExceeded, limits: ConnectionLimits) -> Refusal:
    if exceeded is CapExceeded.TOTAL:
        return Refusal(503, "server_full", "unavailable", "the server is at its connection limit")
    if exceeded is CapExceeded.PER_USER:
        return Refusal(
            429,
            "too_many_connections",
            "too_many_connections",
            f"at most {limits.per_user} sockets per user",
        )
    return Refusal(
        429,
        "too_many_connections_from_address",
        "too_many_connections",
        f"at most {limits.per_ip} sockets per client address",
    )


def parse_last_seq(text: str | None) -> int | None:
    if text is None:
        return None
    # ASCII digits only: str.isdigit() also accepts "²" and "٣".
    if not (text.isascii() and text.isdigit()) or len(text) > 16 or int(text) > MAX_SEQ:
        raise ValueError("last_seq must be an integer from 0 to 2^53")
    return int(text)


def bearer_from_headers(headers: Headers) -> str | None:
    """The token of an `Authorization: Bearer` header, "" for another scheme, None for none."""
    value = headers.get("Authorization")
    if value is None:
        return None
    scheme, _, credentials = value.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return ""


async def serve_websocket(
    stream: trio.SocketStream,
    parcel: list[bytes],
    services: Services,
    closing: ClosingWaits,
    client_ip: str | None,
) -> None:
    """Run the handshake on the bytes in `parcel` (the request head and anything after it),
    then the session.

    The bytes come in a list that is emptied, and the handshake runs in its own frame, so the
    request, the response and the raw head are not kept alive by a socket that stays open.
    """
    accepted = await _handshake(stream, parcel.pop(), services, closing, client_ip)
    if accepted is not None:
        # Registered by _handshake; run_session's `finally` is what removes it, and nothing
        # between here and there can await or fail.
        await run_session(
            accepted.conn,
            accepted.transport,
            services.session_deps,
            expires_at=accepted.expires_at,
            resume_from=accepted.resume_from,
        )


async def _handshake(
    stream: trio.SocketStream,
    received: bytes,
    services: Services,
    closing: ClosingWaits,
    client_ip: str | None,
) -> Accepted | None:
    """Accept (registered; the 101 is queued, not sent) or refuse (sent) the upgrade."""
    started = time.perf_counter()
    settings = services.settings
    protocol = ServerProtocol(max_size=settings.max_message_bytes, logger=PROTOCOL_LOGGER)
    protocol.receive_data(received)

    async def refuse(refusal: Refusal, method: str, target: str) -> None:
        wait = settings.close_timeout
        await _refuse(stream, protocol, refusal, method, target, started, closing, wait)

    request = next((e for e in protocol.events_received() if isinstance(e, Request)), None)
    if request is None:  # the library could not parse it as an HTTP request
        refusal = Refusal(400, "invalid_handshake", "invalid_request", "malformed HTTP request")
        await refuse(refusal, "GET", WEBSOCKET_PATH)
        return None
    target = request.path
    response = protocol.accept(request)
    if response.status_code != 101:  # the library's checks: 426 without an upgrade, else 400
        message = str(protocol.handshake_exc or HTTPStatus(response.status_code).phrase)
        refusal = (
            Refusal(426, "upgrade_required", "upgrade_required", message)
            if response.status_code == 426
            else Refusal(400, "invalid_handshake", "invalid_request", message)
        )
        await refuse(refusal, request.method, target)
        return None
    checked = check_handshake(target, request.headers, services)
    if isinstance(checked, Refusal):
        services.metrics.ws_rejects.labels(checked.reason).inc()
        await refuse(checked, request.method, target)
        return None
    # The socket gets a protocol of its own, opened: the handshake's keeps the parsed request
    # alive in its parser for as long as it lives (~2 KiB per idle socket).
    opened = ServerProtocol(
        state=State.OPEN, max_size=settings.max_message_bytes, logger=PROTOCOL_LOGGER
    )
    conn = Connection.open(
        connection_id=opened.id.hex,  # the library drew a uuid4 for this socket already
        user_id=checked.identity.user_id,
        client_ip=client_ip,
        queue_size=settings.send_queue,
        wall_now=time.time(),
    )
    exceeded = services.registry.try_add(conn, services.limits)
    if exceeded is not None:
        refusal = cap_refusal(exceeded, services.limits)
        services.metrics.ws_rejects.labels(refusal.reason).inc()
        await refuse(refusal, request.method, target)
        return None
    try:
        # The 101 leaves with the welcome frame; bytes that came after the head go to the
        # opened protocol.
        protocol.send_response(response)
        leftover = received[received.find(b"\r\n\r\n") + 4 :]
        if leftover:
            opened.receive_data(leftover)
        transport = WebSocketTransport(
            stream,
            opened,
            b"".join(protocol.data_to_send()),
            write_timeout=settings.write_timeout,
            close_timeout=settings.close_timeout,
            closing=closing,
        )
        log_request("GET", target, 101, started=started)
    except BaseException:
        services.registry.remove(conn)
        raise
    return Accepted(conn, transport, checked.identity.expires_at, checked.resume_from)


def check_handshake(target: str, headers: Headers, services: Services) -> Refusal | Admission:
    """The checks before the caps, synchronously, in the order a client would fix them."""
    if services.draining:
        return Refusal(503, "server_shutdown", "unavailable", "the server is shutting down")
    query = dict(parse_qsl(target.partition("?")[2], keep_blank_values=True))
    try:
        token = select_token(query.get("token"), bearer_from_headers(headers))
        identity = services.verifier.verify(token)
    except AuthError as error:
        return Refusal(401, error.reason, "unauthorized", error.message)
    try:
        resume_from = parse_last_seq(query.get("last_seq"))
    except ValueError as error:
        return Refusal(400, "invalid_request", "invalid_request", str(error))
    return Admission(identity, resume_from)


def refusal_response(refusal: Refusal) -> Response:
    """The HTTP answer to a refused handshake: status, JSON error body, Retry-After on a cap."""
    body = orjson.dumps({"error": {"code": refusal.code, "message": refusal.message}})
    headers = Headers(
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            ("Connection", "close"),
        ]
    )
    if refusal.status in (429, 503):
        headers["Retry-After"] = "1"
    elif refusal.status == 426:
        headers["Upgrade"] = "websocket"
    elif refusal.status == 405:
        headers["Allow"] = "GET"
    return Response(refusal.status, HTTPStatus(refusal.status).phrase, headers, body)


async def _refuse(
    stream: trio.SocketStream,
    protocol: ServerProtocol,
    refusal: Refusal,
    method: str,
    target: str,
    started: float,
    closing: ClosingWaits,
    wait: float,
) -> None:
    response = refusal_response(refusal)
    if protocol.state is State.CONNECTING and not protocol.eof_sent:
        protocol.send_response(response)  # queues the answer, then the end of our stream
        data = protocol.data_to_send()
    else:
        data = [response.serialize(), b""]
    log.info("ws.rejected", reason=refusal.reason, status=refusal.status)
    log_request(method, target, refusal.status, started=started, sent=len(response.body))
    await send_and_close(stream, b"".join(data), closing, wait)


async def send_and_close(
    stream: trio.SocketStream, data: bytes, closing: ClosingWaits, wait: float
) -> None:
    """Send a final HTTP answer, half-close, and read until the client ends (at most `wait`).

    Closing with unread request bytes in the kernel would reset the connection and could
    destroy the answer before the client reads it.
    """
    try:
        with closing.waiting(wait):
            await stream.send_all(data)
            await stream.send_eof()
            while await stream.receive_some(RECEIVE_BYTES):
                pass
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        pass
    finally:
        stream.socket.close()
