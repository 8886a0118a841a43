"""The session's Transport over a trio stream, driving `websockets`' sans-I/O ServerProtocol.

The library does the framing, masking, control frames, close-code checks and the size limit;
this module moves bytes, assembles messages (and checks their UTF-8, which the sans-I/O layer
leaves to its caller), bounds every send by FITIQ_WRITE_TIMEOUT, and runs the closing handshake:
after its close frame the server keeps reading, and discarding, until the client's close (or
TCP's end), at most FITIQ_CLOSE_TIMEOUT, so a client that is still sending receives the close.

Two tasks use one transport: the session's reader (`receive`) and its writer (`send`, `flush`,
`close`). Only the writer touches the network's sending side: bytes the library produces while
reading (a pong, the echo of a close) wait in the protocol until the writer's next flush, which
the reader asks for when `receive` returns PING_RECEIVED. So a cancelled reader can never cut a
frame in half, and the writer is cancelled only when the whole server gives up.
"""

from __future__ import annotations

import codecs
import logging
import socket
import struct
from collections.abc import Iterator
from contextlib import contextmanager

import trio
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol

from .closing import ABNORMAL_CLOSURE, INVALID_DATA, NO_STATUS_RECEIVED, for_protocol_failure
from .transport import CONTROL_FRAME, PING_RECEIVED, PeerClosed, ProtocolFailure, SendTimeout

RECEIVE_BYTES = 65536
_TEXT, _BINARY, _CONT = Opcode.TEXT, Opcode.BINARY, Opcode.CONT
_CLOSE, _PING, _PONG = Opcode.CLOSE, Opcode.PING, Opcode.PONG
_OPEN, _CLOSED = State.OPEN, State.CLOSED
_LINGER_RESET = struct.pack("ii", 1, 0)
_utf8_decoder = codecs.getincrementaldecoder("utf-8")

#: The library logs "connection open/closed" at info for every socket; fitiq_rt logs its own
#: structured events, so this logger only passes warnings on.
PROTOCOL_LOGGER = logging.getLogger("fitiq_rt.websockets")
PROTOCOL_LOGGER.setLevel(logging.WARNING)


class ClosingWaits:
    """The closing handshakes in progress, so a shutdown can cut the ones already waiting.

    A client that got its close frame before the drain began has had its chance to answer; the
    drain ends those waits at once instead of holding the process for FITIQ_CLOSE_TIMEOUT.
    """

    def __init__(self) -> None:
        self._scopes: set[trio.CancelScope] = set()

    @contextmanager
    def waiting(self, timeout: float) -> Iterator[None]:
        scope = trio.move_on_after(timeout)
        self._scopes.add(scope)
        try:
            with scope:
                yield
        finally:
            self._scopes.discard(scope)

    def cut_all(self) -> int:
        for scope in self._scopes:
            scope.cancel()
        return len(self._scopes)


class WebSocketTransport:
    """One accepted WebSocket: the stream, its protocol state machine, and message assembly."""

    __slots__ = (
        "_broken",
        "_close_timeout",
        "_closing",
        "_decoder",
        "_events",
        "_fragments",
        "_pending",
        "_protocol",
        "_stream",
        "_write_timeout",
    )

    def __init__(
        self,
        stream: trio.abc.HalfCloseableStream,
        protocol: ServerProtocol,
        pending: bytes = b"",
        *,
        write_timeout: float,
        close_timeout: float,
        closing: ClosingWaits,
    ) -> None:
        self._stream = stream
        self._protocol = protocol
        self._pending = pending  # bytes to send before the protocol's first (the 101)
        self._write_timeout = write_timeout
        self._close_timeout = close_timeout
        self._closing = closing
        # Frames parsed already (bytes that came with the head); a list: an empty deque costs
        # ~600 B per socket.
        self._events: list[Frame] = protocol.events_received()  # type: ignore[assignment]
        self._fragments: list[bytes] | list[str] | None = None
        self._decoder: codecs.IncrementalDecoder | None = None
        self._broken = False

    # --- the writer's side -------------------------------------------------------------

    async def accept(self) -> None:
        """The 101 is already pending; it leaves with the welcome frame."""

    async def send(self, text: str) -> None:
        """Send one text message, unless a close frame has gone out: then nothing may follow
        (RFC 6455 §5.5.1), and the close frame has told the client why."""
        if self._protocol.state is _OPEN:
            self._protocol.send_text(text.encode())
        await self._flush()

    async def flush(self) -> None:
        """Send what the library queued while reading (pongs)."""
        await self._flush()

    async def close(self, code: int, reason: str) -> None:
        """The closing handshake, then TCP's end; never raises, and bounded in time."""
        protocol = self._protocol
        try:
            if self._broken:
                return
            if protocol.state is _OPEN:
                protocol.send_close(code, reason)
            done = protocol.close_rcvd is not None or protocol.state is _CLOSED
            await self._flush(eof=not done)  # closing the socket next sends the FIN anyway
            # RFC 6455 §7.1.1: once both close frames have passed, the server ends TCP at
            # once; until the client's arrives, what it sends is read and dropped. After a
            # protocol failure the library drops even that close frame, so then TCP's end is
            # what ends the wait.
            if done:
                return  # the client closed first (the usual case): nothing to wait for
            with self._closing.waiting(self._close_timeout):
                while protocol.close_rcvd is None and protocol.state is not _CLOSED:
                    try:
                        data = await self._stream.receive_some(RECEIVE_BYTES)
                    except trio.BusyResourceError:
                        # The cancelled reader has not unwound its receive yet (trio may run
                        # this task first); once it has, the stream is this task's to read.
                        await trio.lowlevel.checkpoint()
                        continue
                    if data:
                        protocol.receive_data(data)
                    else:
                        protocol.receive_eof()
                    protocol.events_received()  # after our close, what arrives is discarded
                    await self._flush()
        except (trio.BrokenResourceError, trio.ClosedResourceError, SendTimeout, PeerClosed):
            self._broken = True
        finally:
            await self._end_tcp()

    # --- the reader's side -------------------------------------------------------------

    async def receive(self) -> str | bytes | object | None:
        """The next message, PING_RECEIVED or CONTROL_FRAME (a pong); raises when it ends."""
        protocol = self._protocol
        events = self._events
        while True:
            while events:
                message = self._take(events.pop(0))
                if message is not _INCOMPLETE:
                    return message
            if protocol.parser_exc is not None or protocol.state is _CLOSED:
                raise self._ended()
            try:
                data = await self._stream.receive_some(RECEIVE_BYTES)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
            if data:
                protocol.receive_data(data)
            else:
                protocol.receive_eof()
            events.extend(protocol.events_received())  # type: ignore[arg-type]  # frames once open

    def _take(self, frame: Frame) -> str | bytes | object | None:
        opcode = frame.opcode
        if opcode is _TEXT or opcode is _BINARY or opcode is _CONT:
            return self._assemble(frame)
        if opcode is _CLOSE:
            close = self._protocol.close_rcvd
            raise PeerClosed(close.code if close is not None else NO_STATUS_RECEIVED)
        return PING_RECEIVED if opcode is _PING else CONTROL_FRAME  # a ping's pong is queued

    def _assemble(self, frame: Frame) -> str | bytes | object:
        opcode = frame.opcode
        try:
            if opcode is _TEXT:
                if frame.fin:
                    return frame.data.decode()  # type: ignore[union-attr]  # parsed: bytes
                self._decoder = _utf8_decoder()
                self._fragments = [self._decoder.decode(frame.data)]
                return _INCOMPLETE
            if opcode is _BINARY:
                if frame.fin:
                    return bytes(frame.data)
                self._decoder = None
                self._fragments = [bytes(frame.data)]
                return _INCOMPLETE
            # a continuation: the library has checked that a message is being assembled
            fragments = self._fragments
            assert fragments is not None
            decoder = self._decoder
            if decoder is None:
                fragments.append(bytes(frame.data))  # type: ignore[arg-type]
            else:
                fragments.append(decoder.decode(frame.data, frame.fin))  # type: ignore[arg-type]
            if not frame.fin:
                return _INCOMPLETE
            self._fragments = self._decoder = None
            return "".join(fragments) if decoder is not None else b"".join(fragments)  # type: ignore[arg-type]
        except UnicodeDecodeError:
            # RFC 6455 §8.1: invalid UTF-8 in a text message fails the connection with 1007;
            # the close frame the library queues here leaves with the transport's close().
            self._protocol.fail(INVALID_DATA.code, INVALID_DATA.text)
            self._events.clear()
            raise ProtocolFailure(INVALID_DATA, INVALID_DATA.code) from None

    def _ended(self) -> Exception:
        """Why reading stopped: a protocol failure, the client's close, or TCP's end."""
        protocol = self._protocol
        failure, sent = protocol.parser_exc, protocol.close_sent
        if failure is not None and not isinstance(failure, EOFError) and sent is not None:
            return ProtocolFailure(for_protocol_failure(sent.code), sent.code)
        received = protocol.close_rcvd
        return PeerClosed(received.code if received is not None else ABNORMAL_CLOSURE)

    # --- bytes to the network ----------------------------------------------------------

    async def _flush(self, eof: bool = True) -> None:
        """Send whatever the protocol has queued, bounded by the write timeout; `eof=False`
        leaves out the half-close when the socket is closed right after."""
        protocol = self._protocol
        while protocol.writes or self._pending:
            chunks = protocol.data_to_send()
            half_close = eof and bool(chunks) and chunks[-1] == b""
            data = b"".join(chunks)
            if self._pending:
                data, self._pending = self._pending + data, b""
            try:
                if data:
                    # A bare CancelScope, not fail_after: this runs for every frame sent.
                    bound = trio.CancelScope(deadline=trio.current_time() + self._write_timeout)
                    with bound:
                        await self._stream.send_all(data)
                    if bound.cancelled_caught:
                        self._broken = True
                        raise SendTimeout()
                if half_close:
                    await self._stream.send_eof()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._broken = True  # reset or gone: the client vanished without a close
                raise PeerClosed(ABNORMAL_CLOSURE) from None
            except BaseException:
                self._broken = True  # a send cut short leaves half a frame on the wire
                raise

    async def _end_tcp(self) -> None:
        """Close the socket; one whose send was cut short is reset, so its buffers go at once."""
        sock = getattr(self._stream, "socket", None)  # None for tests' in-memory streams
        if sock is None:
            await trio.aclose_forcefully(self._stream)
            return
        if self._broken:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
            except OSError:
                pass
        sock.close()  # what SocketStream.aclose does, without its extra checkpoint


_INCOMPLETE = object()
