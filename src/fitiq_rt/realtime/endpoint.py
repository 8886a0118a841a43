"""`GET /ws/meal-logs` as a lean ASGI handler inside the same Hypercorn process as the REST app.

Why not a Quart websocket route: Quart cancels the route when the client disconnects, so the code
cannot tell a client close from a shutdown, and its per-request context costs on every connect.
Here the ASGI events are read directly: refusals go out as real HTTP statuses (401/429/503) before
any upgrade, and `websocket.disconnect` is seen as what it is.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

import orjson

from ..auth import AuthError, bearer_from_headers, select_token
from ..logconfig import get_logger, redact_text
from .connection import Connection
from .protocol import MAX_SEQ
from .session import PeerClosed, run_session

log = get_logger("fitiq_rt.ws")
access_log = get_logger("fitiq_rt.access")

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class AsgiTransport:
    """The session's Transport over ASGI websocket events."""

    __slots__ = ("_on_accept", "_receive", "_send")

    def __init__(self, receive: Receive, send: Send, on_accept: Callable[[], None]) -> None:
        self._receive = receive
        self._send = send
        self._on_accept = on_accept

    async def accept(self) -> None:
        await self._send({"type": "websocket.accept"})
        self._on_accept()

    async def receive(self) -> str | bytes:
        while True:
            event = await self._receive()
            kind = event["type"]
            if kind == "websocket.receive":
                text = event.get("text")
                if text is not None:
                    return text
                return event.get("bytes") or b""
            if kind == "websocket.disconnect":
                raise PeerClosed(int(event.get("code", 1005)))

    async def send(self, text: str) -> None:
        await self._send({"type": "websocket.send", "text": text})

    async def close(self, code: int) -> None:
        await self._send({"type": "websocket.close", "code": code})


def _query(scope: dict[str, Any]) -> dict[str, str]:
    raw = scope.get("query_string", b"").decode("latin-1")
    return dict(parse_qsl(raw, keep_blank_values=True))


def logged_path(scope: dict[str, Any]) -> str:
    """The request path for the access log, with any token in the query masked."""
    path = scope.get("path", "")
    query = scope.get("query_string", b"")
    if query:
        return redact_text(f"{path}?{query.decode('latin-1')}")
    return path


def _parse_last_seq(text: str | None) -> int | None:
    if text is None:
        return None
    # ASCII digits only: str.isdigit() also accepts "²" and "٣".
    if not (text.isascii() and text.isdigit()) or len(text) > 16 or int(text) > MAX_SEQ:
        raise ValueError("last_seq must be an integer from 0 to 2^53")
    return int(text)


async def websocket_endpoint(
    scope: dict[str, Any], receive: Receive, send: Send, services: Any
) -> None:
    """Authenticate, apply the caps, then hand the socket to a session."""
    started = time.perf_counter()
    first = await receive()
    if first.get("type") != "websocket.connect":
        return
    refusal = _check_handshake(scope, services)
    if isinstance(refusal, _Refusal):
        services.metrics.ws_rejects.labels(refusal.reason).inc()
        await _refuse(scope, send, refusal, started)
        return
    identity, resume_from, client_ip = refusal

    def on_accept() -> None:
        access_log.info(
            "http.request",
            method="GET",
            path=logged_path(scope),
            status=101,
            duration_ms=round((time.perf_counter() - started) * 1000, 3),
            bytes=0,
        )

    settings = services.settings
    conn = Connection.open(
        connection_id=uuid.uuid4().hex,
        user_id=identity.user_id,
        client_ip=client_ip,
        queue_size=settings.send_queue,
        wall_now=time.time(),
    )
    # No await between the cap checks above and the registry.add inside run_session.
    await run_session(
        conn,
        AsgiTransport(receive, send, on_accept),
        services.session_deps,
        expires_at=identity.expires_at,
        resume_from=resume_from,
    )


class _Refusal:
    __slots__ = ("code", "message", "reason", "status")

    def __init__(self, status: int, reason: str, code: str, message: str) -> None:
        self.status = status
        self.reason = reason
        self.code = code
        self.message = message


def _check_handshake(scope: dict[str, Any], services: Any) -> Any:
    """Everything that can refuse a handshake, synchronously, in the order a client would fix it."""
    settings = services.settings
    registry = services.registry
    if services.draining:
        return _Refusal(503, "server_shutdown", "unavailable", "the server is shutting down")
    query = _query(scope)
    try:
        token = select_token(query.get("token"), bearer_from_headers(scope.get("headers", [])))
        identity = services.verifier.verify(token)
    except AuthError as error:
        return _Refusal(401, error.reason, "unauthorized", error.message)
    try:
        resume_from = _parse_last_seq(query.get("last_seq"))
    except ValueError as error:
        return _Refusal(400, "invalid_request", "invalid_request", str(error))
    if registry.total >= settings.max_connections:
        return _Refusal(503, "server_full", "unavailable", "the server is at its connection limit")
    if registry.count_for_user(identity.user_id) >= settings.max_connections_per_user:
        return _Refusal(
            429,
            "too_many_connections",
            "too_many_connections",
            f"at most {settings.max_connections_per_user} sockets per user",
        )
    client = scope.get("client")
    client_ip = client[0] if client else None
    per_ip = settings.max_connections_per_ip
    if per_ip and client_ip and registry.count_for_ip(client_ip) >= per_ip:
        return _Refusal(
            429,
            "too_many_connections_from_address",
            "too_many_connections",
            f"at most {per_ip} sockets per client address",
        )
    return identity, resume_from, client_ip


async def _refuse(scope: dict[str, Any], send: Send, refusal: _Refusal, started: float) -> None:
    """Answer the upgrade with a real HTTP status and the contract's JSON error body."""
    body = orjson.dumps({"error": {"code": refusal.code, "message": refusal.message}})
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    if refusal.status in (429, 503):
        headers.append((b"retry-after", b"1"))
    await send(
        {"type": "websocket.http.response.start", "status": refusal.status, "headers": headers}
    )
    await send({"type": "websocket.http.response.body", "body": body})
    log.info("ws.rejected", reason=refusal.reason, status=refusal.status)
    access_log.info(
        "http.request",
        method="GET",
        path=logged_path(scope),
        status=refusal.status,
        duration_ms=round((time.perf_counter() - started) * 1000, 3),
        bytes=len(body),
    )
