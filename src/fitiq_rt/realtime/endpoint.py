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
from typing import Any
from urllib.parse import parse_qsl

import orjson
import trio
from websockets.datastructures import Headers
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.server import ServerProtocol

from ..access_log import log_request
from ..auth import AuthError, select_token
from ..logconfig import get_logger
from .connection import Connection
from .protocol import MAX_SEQ
from .session import run_session
from .ws_transport import PROTOCOL_LOGGER, RECEIVE_BYTES, ClosingWaits, WebSocketTransport

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
    services: Any,
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
        conn, transport, expires_at, resume_from = accepted
        del accepted
        # No await between the cap checks in _handshake and the registry.add in run_session.
        await run_session(
            conn, transport, services.session_deps, expires_at=expires_at, resume_from=resume_from
        )


async def _handshake(
    stream: trio.SocketStream,
    received: bytes,
    services: Any,
    closing: ClosingWaits,
    client_ip: str | None,
) -> tuple[Connection, WebSocketTransport, float, int | None] | None:
    """Accept (the 101 is queued, not sent) or refuse (sent) the upgrade in `received`."""
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
    checked = check_handshake(target, request.headers, client_ip, services)
    if isinstance(checked, Refusal):
        services.metrics.ws_rejects.labels(checked.reason).inc()
        await refuse(checked, request.method, target)
        return None
    identity, resume_from = checked
    protocol.send_response(response)
    # The socket gets a protocol of its own, opened: the handshake's keeps the parsed request
    # alive in its parser for as long as it lives (~2 KiB per idle socket). The 101 leaves with
    # the welcome frame; bytes that came after the head go to the new one.
    opened = ServerProtocol(
        state=State.OPEN, max_size=settings.max_message_bytes, logger=PROTOCOL_LOGGER
    )
    leftover = received[received.find(b"\r\n\r\n") + 4 :]
    if leftover:
        opened.receive_data(leftover)
    log_request("GET", target, 101, started=started)
    conn = Connection.open(
        connection_id=opened.id.hex,  # the library drew a uuid4 for this socket already
        user_id=identity.user_id,
        client_ip=client_ip,
        queue_size=settings.send_queue,
        wall_now=time.time(),
    )
    transport = WebSocketTransport(
        stream,
        opened,
        b"".join(protocol.data_to_send()),
        write_timeout=settings.write_timeout,
        close_timeout=settings.close_timeout,
        closing=closing,
    )
    return conn, transport, identity.expires_at, resume_from


def check_handshake(
    target: str, headers: Headers, client_ip: str | None, services: Any
) -> Refusal | tuple[Any, int | None]:
    """Everything that can refuse a handshake, synchronously, in the order a client would fix it."""
    settings = services.settings
    registry = services.registry
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
    if registry.total >= settings.max_connections:
        return Refusal(503, "server_full", "unavailable", "the server is at its connection limit")
    if registry.count_for_user(identity.user_id) >= settings.max_connections_per_user:
        return Refusal(
            429,
            "too_many_connections",
            "too_many_connections",
            f"at most {settings.max_connections_per_user} sockets per user",
        )
    per_ip = settings.max_connections_per_ip
    if per_ip and client_ip and registry.count_for_ip(client_ip) >= per_ip:
        return Refusal(
            429,
            "too_many_connections_from_address",
            "too_many_connections",
            f"at most {per_ip} sockets per client address",
        )
    return identity, resume_from


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
