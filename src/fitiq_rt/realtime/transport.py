"""The seam between a session and its socket: what a session needs, and how a socket ends.

`ws_transport.WebSocketTransport` is the real one; tests/fakes.py has an in-memory one, so the
session's timeouts are proven under `autojump_clock`.
"""

from __future__ import annotations

from typing import Protocol

from .closing import CloseRule

#: What `Transport.receive` returns for a pong frame: activity, but no message.
CONTROL_FRAME = None


class _PingReceived:
    def __repr__(self) -> str:
        return "PING_RECEIVED"


#: What `Transport.receive` returns for a ping frame: its pong waits for `Transport.flush`.
PING_RECEIVED = _PingReceived()


class PeerClosed(Exception):
    """The client closed the socket (or TCP ended); `code` is what it sent (1005: none)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class ProtocolFailure(Exception):
    """The client broke RFC 6455; the transport has queued the close frame with `code`."""

    def __init__(self, rule: CloseRule, code: int) -> None:
        super().__init__(code)
        self.rule = rule
        self.code = code


class SendTimeout(Exception):
    """A send made no progress for the write timeout: the client stopped reading."""


class Transport(Protocol):
    async def accept(self) -> None:
        """Complete the handshake (101)."""
        ...

    async def receive(self) -> str | bytes | object | None:
        """The next message, CONTROL_FRAME or PING_RECEIVED; raises PeerClosed or
        ProtocolFailure at the end. Never sends: only the writer does."""
        ...

    async def send(self, text: str) -> None:
        """Send one text message; raises SendTimeout when the client stopped reading, and
        PeerClosed (1006) when it is gone."""
        ...

    async def flush(self) -> None:
        """Send the replies the protocol queued while reading (a ping's pong)."""
        ...

    async def close(self, code: int, reason: str) -> None:
        """Run the closing handshake and end TCP; bounded in time, never raises."""
        ...
