"""WebSocket clients for load generation: a lean one (default) and trio-websocket.

Why a lean client: on a 2-core box the Python load generator, not the server, is the limit.
trio-websocket (wsproto + h11, a reader task per socket, happy-eyeballs connect) spends about
three times the CPU per churned session of this minimal RFC 6455 client on a raw trio socket
(measured here against the Node peer: ~750 vs ~2,100 sessions/s). `--ws-client trio-websocket`
runs the same scenarios on the library, to cross-check the lean client's numbers.

Both expose the same small `WsConn` surface: `recv()` (a text message as bytes), `send()`,
`close()` (the full close handshake), `abort()`.
"""

from __future__ import annotations

import base64
import hashlib
import os
import ssl
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import trio

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
CLOSE_TIMEOUT = 2.0


class WsClosed(Exception):
    """The socket is closed; `code` is the close code the server sent (1006: none, EOF)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class HandshakeRefused(Exception):
    """The server answered the upgrade with an HTTP status instead of 101."""

    def __init__(self, status: int) -> None:
        super().__init__(f"handshake refused with HTTP {status}")
        self.status = status


@dataclass(frozen=True)
class Endpoint:
    """Where the server is: parsed once from the base URL, shared by HTTP and WebSocket."""

    secure: bool
    host: str
    port: int

    @classmethod
    def from_url(cls, url: str) -> Endpoint:
        parts = urlsplit(url)
        secure = parts.scheme in ("https", "wss")
        if parts.scheme not in ("http", "https", "ws", "wss") or not parts.hostname:
            raise ValueError(f"not an http(s)/ws(s) URL: {url!r}")
        return cls(secure, parts.hostname, parts.port or (443 if secure else 80))

    @property
    def host_header(self) -> str:
        default = 443 if self.secure else 80
        return self.host if self.port == default else f"{self.host}:{self.port}"


class RawStream(trio.abc.HalfCloseableStream):
    """A trio socket as a Stream, without SocketStream's conflict detection and error wrapping.

    Why: per churned session the client makes a dozen send/recv calls; dropping that layer is
    ~10 % of the client's CPU, which is the limit on 2 cores. Errors stay OSError.
    """

    __slots__ = ("_sock",)

    def __init__(self, sock: trio.socket.SocketType) -> None:
        self._sock = sock

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        sent = await self._sock.send(data)
        if sent < len(data):
            view = memoryview(data)
            while sent < len(view):
                sent += await self._sock.send(view[sent:])

    async def wait_send_all_might_not_block(self) -> None:
        await self._sock.wait_writable()

    async def send_eof(self) -> None:
        self._sock.shutdown(trio.socket.SHUT_WR)
        await trio.lowlevel.checkpoint()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        return await self._sock.recv(max_bytes or 65536)

    async def aclose(self) -> None:
        self._sock.close()
        await trio.lowlevel.checkpoint()

    def close_now(self) -> None:
        """Close without a checkpoint: cheap, and safe inside a cancelled scope."""
        self._sock.close()


async def hard_close(stream: trio.abc.Stream) -> None:
    if isinstance(stream, RawStream):
        stream.close_now()
    else:
        await trio.aclose_forcefully(stream)


_resolved: dict[tuple[str, int], tuple[Any, ...]] = {}


async def open_stream(endpoint: Endpoint) -> trio.abc.Stream:
    """A TCP (or TLS) stream; a plain socket connect, skipping open_tcp_stream's machinery."""
    key = (endpoint.host, endpoint.port)
    if key not in _resolved:
        infos = await trio.socket.getaddrinfo(*key, type=trio.socket.SOCK_STREAM)
        _resolved[key] = infos[0]
    family, kind, proto, _, address = _resolved[key]
    sock = trio.socket.socket(family, kind, proto)
    try:
        sock.setsockopt(trio.socket.IPPROTO_TCP, trio.socket.TCP_NODELAY, 1)
        await sock.connect(address)
    except BaseException:
        sock.close()
        raise
    if not endpoint.secure:
        return RawStream(sock)
    tls = trio.SSLStream(
        trio.SocketStream(sock), ssl.create_default_context(), server_hostname=endpoint.host
    )
    await tls.do_handshake()
    return tls


def encode_frame(opcode: int, payload: bytes) -> bytes:
    """One masked client frame (FIN set)."""
    size = len(payload)
    if size < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
    elif size < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
    mask = os.urandom(4)
    if not size:
        return head + mask
    key = (mask * (size // 4 + 1))[:size]
    masked = (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(
        size, "little"
    )
    return head + mask + masked


class WsConn(Protocol):
    async def recv(self) -> bytes:
        """The next text (or binary) message; raises WsClosed when the socket is closed."""
        ...

    async def send(self, data: bytes) -> None:
        """Send `data` (UTF-8 JSON) as one text message."""
        ...

    async def close(self, code: int = 1000) -> None:
        """Close handshake, then wait (bounded) for the server to end the TCP connection."""
        ...

    async def abort(self) -> None: ...


class LeanWs:
    """RFC 6455 client over a trio stream: one buffer, no tasks, no per-frame objects."""

    __slots__ = ("_buf", "_close_sent", "_closed_code", "_stream")

    def __init__(self, stream: trio.abc.Stream, buffered: bytes) -> None:
        self._stream = stream
        self._buf = bytearray(buffered)
        self._close_sent = False
        self._closed_code: int | None = None

    @classmethod
    async def connect(cls, endpoint: Endpoint, path: str, headers: str = "") -> LeanWs:
        stream = await open_stream(endpoint)
        try:
            key = base64.b64encode(os.urandom(16))
            request = (
                f"GET {path} HTTP/1.1\r\nHost: {endpoint.host_header}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key.decode()}\r\nSec-WebSocket-Version: 13\r\n"
                f"{headers}\r\n"
            )
            await stream.send_all(request.encode())
            buf = bytearray()
            while (end := buf.find(b"\r\n\r\n")) < 0:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    raise WsClosed(1006)
                buf += chunk
            head = bytes(buf[:end]).split(b"\r\n")
            status = int(head[0].split(b" ", 2)[1])
            if status != 101:
                raise HandshakeRefused(status)
            expected = base64.b64encode(hashlib.sha1(key + WS_GUID).digest())
            accept = [
                v
                for k, _, v in (h.partition(b":") for h in head[1:])
                if k.lower() == b"sec-websocket-accept"
            ]
            if not accept or accept[0].strip() != expected:
                raise HandshakeRefused(status)
            return cls(stream, bytes(buf[end + 4 :]))
        except BaseException:
            await hard_close(stream)
            raise

    def _next_frame(self) -> tuple[bool, int, bytes] | None:
        buf = self._buf
        if len(buf) < 2:
            return None
        size = buf[1] & 0x7F
        offset = 2
        if size == 126:
            if len(buf) < 4:
                return None
            size = struct.unpack_from("!H", buf, 2)[0]
            offset = 4
        elif size == 127:
            if len(buf) < 10:
                return None
            size = struct.unpack_from("!Q", buf, 2)[0]
            offset = 10
        masked = buf[1] & 0x80
        if masked:
            offset += 4
        if len(buf) < offset + size:
            return None
        payload = bytes(buf[offset : offset + size])
        if masked:  # servers must not mask, but tolerate it
            key = (bytes(buf[offset - 4 : offset]) * (size // 4 + 1))[:size]
            payload = bytes(a ^ b for a, b in zip(payload, key, strict=True))
        fin, opcode = bool(buf[0] & 0x80), buf[0] & 0x0F
        del buf[: offset + size]
        return fin, opcode, payload

    async def _frame(self) -> tuple[bool, int, bytes]:
        while (frame := self._next_frame()) is None:
            try:
                chunk = await self._stream.receive_some(65536)
            except (trio.BrokenResourceError, OSError):
                chunk = b""
            if not chunk:
                self._closed_code = self._closed_code or 1006
                raise WsClosed(1006)
            self._buf += chunk
        return frame

    async def recv(self) -> bytes:
        if self._closed_code is not None:
            raise WsClosed(self._closed_code)
        parts: list[bytes] = []
        while True:
            fin, opcode, payload = await self._frame()
            if opcode == OP_PING:
                try:
                    await self._stream.send_all(encode_frame(OP_PONG, payload))
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                    raise WsClosed(1006) from None
            elif opcode == OP_CLOSE:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                self._closed_code = code
                if not self._close_sent:
                    self._close_sent = True
                    try:
                        await self._stream.send_all(encode_frame(OP_CLOSE, payload[:2]))
                    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                        pass
                raise WsClosed(code)
            elif opcode in (OP_TEXT, OP_BINARY, OP_CONT):
                parts.append(payload)
                if fin:
                    return parts[0] if len(parts) == 1 else b"".join(parts)

    async def send(self, data: bytes) -> None:
        if self._closed_code is not None:
            raise WsClosed(self._closed_code)
        try:
            await self._stream.send_all(encode_frame(OP_TEXT, data))
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            raise WsClosed(1006) from None

    async def close(self, code: int = 1000) -> None:
        with trio.move_on_after(CLOSE_TIMEOUT) as scope:
            scope.shield = True
            try:
                if not self._close_sent:
                    self._close_sent = True
                    await self._stream.send_all(encode_frame(OP_CLOSE, struct.pack("!H", code)))
                while self._closed_code is None:  # the server's close frame
                    _, opcode, _ = await self._frame()
                    if opcode == OP_CLOSE:
                        self._closed_code = code
                # The server ends TCP first (RFC 6455 §7.1.1), so TIME_WAIT stays on its side
                # and a long churn does not exhaust the client's ephemeral ports.
                while await self._stream.receive_some(65536):
                    pass
            except (WsClosed, trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                pass
        self._closed_code = self._closed_code or code
        await hard_close(self._stream)

    async def abort(self) -> None:
        self._closed_code = self._closed_code or 1006
        await hard_close(self._stream)


def _close_code(closed: Any) -> int:
    reason = getattr(closed, "reason", None)
    return int(getattr(reason, "code", None) or 1006)


class TrioWs:
    """trio-websocket behind the same surface; needs a nursery for the library's reader task."""

    __slots__ = ("_ws",)

    def __init__(self, ws: object) -> None:
        self._ws = ws

    async def recv(self) -> bytes:
        from trio_websocket import ConnectionClosed

        try:
            message = await self._ws.get_message()  # type: ignore[attr-defined]
        except ConnectionClosed as closed:
            raise WsClosed(_close_code(closed)) from None
        return message.encode() if isinstance(message, str) else message

    async def send(self, data: bytes) -> None:
        from trio_websocket import ConnectionClosed

        try:
            await self._ws.send_message(data.decode())  # type: ignore[attr-defined]
        except ConnectionClosed as closed:
            raise WsClosed(_close_code(closed)) from None

    async def close(self, code: int = 1000) -> None:
        with trio.move_on_after(CLOSE_TIMEOUT) as scope:
            scope.shield = True
            await self._ws.aclose(code)  # type: ignore[attr-defined]

    async def abort(self) -> None:
        await trio.aclose_forcefully(self._ws._stream)  # type: ignore[attr-defined]


@asynccontextmanager
async def open_ws(
    endpoint: Endpoint,
    token: str,
    *,
    kind: str = "lean",
    path: str = "/ws/meal-logs",
    connect_timeout: float = 30.0,
) -> AsyncIterator[WsConn]:
    """Connect with `?token=`; on exit the socket is gone (closed by the caller, or aborted)."""
    resource = f"{path}?token={token}"
    if kind == "lean":
        with trio.fail_after(connect_timeout):
            conn = await LeanWs.connect(endpoint, resource)
        try:
            yield conn
        finally:
            await conn.abort()
        return
    from trio_websocket import ConnectionRejected, connect_websocket

    async with trio.open_nursery() as nursery:
        try:
            with trio.fail_after(connect_timeout):
                ws = await connect_websocket(
                    nursery, endpoint.host, endpoint.port, resource, use_ssl=endpoint.secure
                )
        except ConnectionRejected as rejected:
            raise HandshakeRefused(rejected.status_code) from None
        try:
            yield TrioWs(ws)
        finally:
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(ws._stream)
            nursery.cancel_scope.cancel()
