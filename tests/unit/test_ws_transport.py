"""The WebSocket transport's deadlines at exact virtual times, over in-memory trio streams.

The client end is `websockets`' own ClientProtocol, so the bytes on the wire are what a real
client would send and read.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing
from websockets.client import ClientProtocol
from websockets.frames import Close, Frame, Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.uri import parse_uri

from fitiq_rt.realtime.transport import (
    CONTROL_FRAME,
    PING_RECEIVED,
    PeerClosed,
    ProtocolFailure,
    SendTimeout,
)
from fitiq_rt.realtime.ws_transport import ClosingWaits, WebSocketTransport

WRITE_TIMEOUT = 2.0
CLOSE_TIMEOUT = 5.0


class Client:
    """The far end of the stream, speaking through websockets' ClientProtocol."""

    def __init__(self, stream: trio.abc.HalfCloseableStream) -> None:
        self.stream = stream
        self.protocol = ClientProtocol(parse_uri("ws://test/ws/meal-logs"), state=State.OPEN)

    async def send_frame(self, frame: Frame) -> None:
        self.protocol.send_frame(frame)
        await self.flush()

    async def flush(self) -> None:
        for data in self.protocol.data_to_send():
            if data:
                await self.stream.send_all(data)

    async def next_frame(self) -> Frame:
        while True:
            events = self.protocol.events_received()
            if events:
                assert isinstance(events[0], Frame)
                return events[0]
            data = await self.stream.receive_some(65536)
            if data:
                self.protocol.receive_data(data)
            else:
                self.protocol.receive_eof()


def _pair(
    lockstep: bool = False, closing: ClosingWaits | None = None
) -> tuple[WebSocketTransport, Client]:
    make = trio.testing.lockstep_stream_pair if lockstep else trio.testing.memory_stream_pair
    server_end, client_end = make()
    transport = WebSocketTransport(
        server_end,
        ServerProtocol(state=State.OPEN, max_size=1024),
        write_timeout=WRITE_TIMEOUT,
        close_timeout=CLOSE_TIMEOUT,
        closing=closing or ClosingWaits(),
    )
    return transport, Client(client_end)


async def test_a_close_the_client_never_answers_ends_at_the_close_timeout(
    autojump_clock: object,
) -> None:
    transport, client = _pair()
    start = trio.current_time()
    await transport.close(4008, "idle timeout")
    assert trio.current_time() - start == pytest.approx(CLOSE_TIMEOUT)
    frame = await client.next_frame()
    assert Close.parse(frame.data) == Close(4008, "idle timeout")


async def test_the_clients_close_ends_the_wait_at_once(autojump_clock: object) -> None:
    transport, client = _pair()
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(transport.close, 1001, "server shutting down")
        frame = await client.next_frame()
        assert frame.opcode is Opcode.CLOSE
        await trio.sleep(1.0)  # a client that takes a second to answer
        await client.flush()  # the library queued the echo of the server's close
    assert trio.current_time() - start == pytest.approx(1.0)


async def test_a_shutdown_cuts_a_close_wait_that_already_began(autojump_clock: object) -> None:
    closing = ClosingWaits()
    transport, _client = _pair(closing=closing)
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(transport.close, 1008, "too many messages")
        await trio.sleep(0.5)
        assert closing.cut_all() == 1
    assert trio.current_time() - start == pytest.approx(0.5)


async def test_a_send_that_makes_no_progress_times_out_at_the_write_timeout(
    autojump_clock: object,
) -> None:
    transport, _client = _pair(lockstep=True)  # nobody reads the client end
    start = trio.current_time()
    with pytest.raises(SendTimeout):
        await transport.send('{"type":"ping"}')
    assert trio.current_time() - start == pytest.approx(WRITE_TIMEOUT)
    await transport.close(1000, "")  # a broken stream is closed without a handshake
    assert trio.current_time() - start == pytest.approx(WRITE_TIMEOUT)


async def test_a_protocol_ping_is_activity_and_gets_its_payload_back(
    autojump_clock: object,
) -> None:
    transport, client = _pair()
    await client.send_frame(Frame(Opcode.PING, b"are you there"))
    assert await transport.receive() is PING_RECEIVED
    await transport.flush()  # the reader never sends; the writer flushes the queued pong
    pong = await client.next_frame()
    assert (pong.opcode, pong.data) == (Opcode.PONG, b"are you there")
    await client.send_frame(Frame(Opcode.PONG, b"unsolicited"))
    assert await transport.receive() is CONTROL_FRAME


async def test_fragments_are_assembled_and_checked_as_one_text(autojump_clock: object) -> None:
    transport, client = _pair()
    snowman = "☃".encode()
    await client.send_frame(Frame(Opcode.TEXT, b'{"t":"' + snowman[:1], fin=False))
    await client.send_frame(Frame(Opcode.CONT, snowman[1:] + b'"}', fin=True))
    assert await transport.receive() == '{"t":"☃"}'
    await client.send_frame(Frame(Opcode.TEXT, b"ok\xc3", fin=False))
    await client.send_frame(Frame(Opcode.CONT, b"\x28", fin=True))  # not a continuation byte
    with pytest.raises(ProtocolFailure) as failure:
        await transport.receive()
    assert (failure.value.code, failure.value.rule.reason) == (1007, "protocol_error")


async def test_a_message_over_the_limit_fails_with_1009(autojump_clock: object) -> None:
    transport, client = _pair()
    await client.send_frame(Frame(Opcode.TEXT, b"x" * 1025))
    with pytest.raises(ProtocolFailure) as failure:
        await transport.receive()
    assert failure.value.code == 1009


@pytest.mark.parametrize(("payload", "code"), [(b"\x10\xe1bye", 4321), (b"", 1005)])
async def test_the_client_close_code_is_what_receive_reports(
    autojump_clock: object, payload: bytes, code: int
) -> None:
    transport, client = _pair()
    await client.send_frame(Frame(Opcode.CLOSE, payload))
    with pytest.raises(PeerClosed) as closed:
        await transport.receive()
    assert closed.value.code == code
    start = trio.current_time()
    await transport.close(1000, "")  # both closes have passed: TCP ends without waiting
    assert trio.current_time() == start
    echo = await client.next_frame()
    assert (echo.opcode, echo.data) == (Opcode.CLOSE, payload)
