"""A raw-frame WebSocket client for tests: it writes whatever bytes it is given.

Frames are encoded here (RFC 6455 §5.2, masked as a client must unless told otherwise), so a
test can send what no well-behaved client library would, and read the server's frames strictly.
"""

from __future__ import annotations

import base64
import os

import trio

TEXT, BINARY, CONTINUATION, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA


def encode_frame(
    opcode: int, payload: bytes, *, fin: bool = True, masked: bool = True, rsv: int = 0
) -> bytes:
    """One RFC 6455 frame, as a client writes it (masked unless told otherwise)."""
    head = bytearray([(0x80 if fin else 0) | (rsv << 4) | opcode])
    size, mask_bit = len(payload), 0x80 if masked else 0
    if size < 126:
        head.append(mask_bit | size)
    elif size < 65536:
        head += bytes([mask_bit | 126]) + size.to_bytes(2, "big")
    else:
        head += bytes([mask_bit | 127]) + size.to_bytes(8, "big")
    if masked and size:
        key = os.urandom(4)
        stream = (key * (size // 4 + 1))[:size]
        payload = (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(
            size, "big"
        )
        head += key
    elif masked:
        head += os.urandom(4)
    return bytes(head) + payload


class RawClient:
    """A WebSocket client that sends whatever bytes it is given and reads frames strictly."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buffer = bytearray()

    @classmethod
    async def connect(cls, port: int, target: str) -> tuple[int, bytes, RawClient]:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        client = cls(stream)
        key = base64.b64encode(os.urandom(16)).decode()
        await stream.send_all(
            f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        while b"\r\n\r\n" not in client.buffer:
            chunk = await stream.receive_some(65536)
            if not chunk:
                raise AssertionError("connection closed during the handshake")
            client.buffer += chunk
        end = client.buffer.index(b"\r\n\r\n")
        head = bytes(client.buffer[:end])
        del client.buffer[: end + 4]
        return int(head.split(b" ", 2)[1]), head, client

    async def send(self, data: bytes) -> bool:
        """Write raw bytes; False when the server already closed the connection."""
        try:
            await self.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return False
        return True

    async def _read(self, size: int) -> bytes | None:
        while len(self.buffer) < size:
            try:
                chunk = await self.stream.receive_some(65536)
            except trio.BrokenResourceError:
                chunk = b""
            if not chunk:
                return None
            self.buffer += chunk
        out = bytes(self.buffer[:size])
        del self.buffer[:size]
        return out

    async def frame(self) -> tuple[int, bytes] | None:
        """The next whole server message as (opcode, payload); None at EOF."""
        opcode, parts = None, []
        while True:
            head = await self._read(2)
            if head is None:
                return None
            assert not head[1] & 0x80, "the server masked a frame"
            assert not head[0] & 0x70, "the server set reserved bits"
            size = head[1] & 0x7F
            if size >= 126:
                extended = await self._read(2 if size == 126 else 8)
                if extended is None:
                    return None
                size = int.from_bytes(extended, "big")
            payload = await self._read(size)
            if payload is None:
                return None
            frame_opcode = head[0] & 0x0F
            if frame_opcode >= 0x8:  # control frames may come between fragments
                assert head[0] & 0x80, "a fragmented control frame"
                return frame_opcode, payload
            opcode = frame_opcode if opcode is None else opcode
            parts.append(payload)
            if head[0] & 0x80:
                return opcode, b"".join(parts)

    async def aclose(self) -> None:
        await self.stream.aclose()
