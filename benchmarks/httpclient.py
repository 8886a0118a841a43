"""A lean keep-alive HTTP/1.1 client for the POST load (httpx stays for control-plane calls).

Why: at hundreds of POST/s the client's own per-request cost lands in the measured latency and
competes with the sockets it is timing; a pre-formatted request on a pooled raw connection costs a
fraction of an httpx request on the same core.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import NamedTuple

import trio

from .wsclient import Endpoint, open_stream


class HttpError(Exception):
    """The connection broke or the response could not be read."""


class HttpResponse(NamedTuple):
    status: int
    body: bytes
    sent_at: float  # perf_counter() just before the request was written: the latency origin


class HttpConn:
    __slots__ = ("_buf", "_endpoint", "_stream", "reusable")

    def __init__(self, endpoint: Endpoint, stream: trio.abc.Stream) -> None:
        self._endpoint = endpoint
        self._stream = stream
        self._buf = bytearray()
        self.reusable = True

    @classmethod
    async def open(cls, endpoint: Endpoint) -> HttpConn:
        return cls(endpoint, await open_stream(endpoint))

    async def _fill(self) -> None:
        chunk = await self._stream.receive_some(65536)
        if not chunk:
            raise HttpError("connection closed by the server")
        self._buf += chunk

    async def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: Sequence[tuple[str, str]] = (),
    ) -> HttpResponse:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self._endpoint.host_header}"]
        lines.extend(f"{name}: {value}" for name, value in headers)
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        try:
            sent_at = time.perf_counter()
            await self._stream.send_all(head + body)
            status, payload = await self._read_response()
            return HttpResponse(status, payload, sent_at)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as error:
            self.reusable = False
            raise HttpError(str(error)) from None
        except BaseException:
            self.reusable = False
            raise

    async def _read_response(self) -> tuple[int, bytes]:
        while (end := self._buf.find(b"\r\n\r\n")) < 0:
            await self._fill()
        head = bytes(self._buf[:end]).split(b"\r\n")
        del self._buf[: end + 4]
        status = int(head[0].split(b" ", 2)[1])
        fields: dict[bytes, bytes] = {}
        for line in head[1:]:
            name, _, value = line.partition(b":")
            fields[name.strip().lower()] = value.strip()
        if fields.get(b"connection", b"").lower() == b"close":
            self.reusable = False
        if b"content-length" in fields:
            size = int(fields[b"content-length"])
            while len(self._buf) < size:
                await self._fill()
            body = bytes(self._buf[:size])
            del self._buf[:size]
            return status, body
        if fields.get(b"transfer-encoding", b"").lower() == b"chunked":
            return status, await self._read_chunked()
        self.reusable = False  # body runs to EOF
        while True:
            try:
                await self._fill()
            except HttpError:
                body = bytes(self._buf)
                self._buf.clear()
                return status, body

    async def _read_chunked(self) -> bytes:
        body = bytearray()
        while True:
            while (end := self._buf.find(b"\r\n")) < 0:
                await self._fill()
            size = int(bytes(self._buf[:end]).split(b";")[0], 16)
            del self._buf[: end + 2]
            while len(self._buf) < size + 2:
                await self._fill()
            body += self._buf[:size]
            del self._buf[: size + 2]
            if size == 0:
                return bytes(body)

    async def aclose(self) -> None:
        await trio.aclose_forcefully(self._stream)


class HttpPool:
    """At most `size` keep-alive connections; a broken one is replaced on the next request."""

    def __init__(self, endpoint: Endpoint, size: int) -> None:
        self._endpoint = endpoint
        self._idle: list[HttpConn] = []
        self._slots = trio.Semaphore(size)

    async def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: Sequence[tuple[str, str]] = (),
    ) -> HttpResponse:
        async with self._slots:
            reused = bool(self._idle)
            conn = self._idle.pop() if reused else await HttpConn.open(self._endpoint)
            try:
                try:
                    result = await conn.request(method, path, body, headers)
                except HttpError:
                    if not reused:
                        raise
                    # A kept-alive connection the server has meanwhile closed: one fresh retry.
                    await conn.aclose()
                    conn = await HttpConn.open(self._endpoint)
                    result = await conn.request(method, path, body, headers)
            except BaseException:
                await conn.aclose()
                raise
            if conn.reusable:
                self._idle.append(conn)
            else:
                await conn.aclose()
            return result

    async def aclose(self) -> None:
        while self._idle:
            await self._idle.pop().aclose()
