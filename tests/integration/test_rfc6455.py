"""RFC 6455 conformance of `/ws/meal-logs` over a real server, with a raw-frame client.

Every violation a client can make gets the close code §7.4.1 names and a `protocol_error` log
line with that code; the closing handshake runs both ways (the server waits for the client's
close, and the client's reply is answered by a clean FIN, not a reset); a client's own close
code is what the log says; protocol pings get their payload back; a flooding client receives
its 1008; and SIGTERM right after such a close stops the process at once.
"""

from __future__ import annotations

import signal
import struct
import time
from pathlib import Path
from typing import Any

import pytest
import structlog
import trio
import trio.lowlevel

from tests.rawws import (
    BINARY,
    CLOSE,
    CONTINUATION,
    PING,
    PONG,
    TEXT,
    RawClient,
    encode_frame,
)
from tests.servers import InProcessServer, SubprocessServer, start_in_process, token_for

VIOLATIONS: dict[str, tuple[bytes, int]] = {
    "invalid close code": (encode_frame(CLOSE, struct.pack("!H", 999)), 1002),
    "close code 1005 on the wire": (encode_frame(CLOSE, struct.pack("!H", 1005)), 1002),
    "1-byte close payload": (encode_frame(CLOSE, b"\x03"), 1002),
    "invalid UTF-8 in a text frame": (encode_frame(TEXT, b'{"type":"\xff"}'), 1007),
    "invalid UTF-8 across fragments": (
        encode_frame(TEXT, b'{"t":"\xe2', fin=False) + encode_frame(CONTINUATION, b'\x28"}'),
        1007,
    ),
    "invalid UTF-8 in a close reason": (
        encode_frame(CLOSE, struct.pack("!H", 1000) + b"\xc3\x28"),
        1007,
    ),
    "reserved opcode": (encode_frame(0x3, b"{}"), 1002),
    "reserved control opcode": (encode_frame(0xB, b""), 1002),
    "RSV1 without an extension": (encode_frame(TEXT, b"{}", rsv=4), 1002),
    "unmasked frame": (encode_frame(TEXT, b"{}", masked=False), 1002),
    "control frame over 125 bytes": (encode_frame(PING, b"p" * 126), 1002),
    "fragmented control frame": (encode_frame(PING, b"p", fin=False), 1002),
    "stray continuation": (encode_frame(CONTINUATION, b"{}"), 1002),
    "new message inside a fragmented one": (
        encode_frame(TEXT, b"[", fin=False) + encode_frame(TEXT, b"1]"),
        1002,
    ),
}


@pytest.fixture
async def server(nursery: trio.Nursery, data_dir: Path) -> InProcessServer:
    return await start_in_process(nursery, data_dir, FITIQ_CLOSE_TIMEOUT="30")


async def _open(server: InProcessServer, user: str) -> RawClient:
    status, _head, client = await RawClient.connect(
        server.port, f"/ws/meal-logs?token={token_for(user)}"
    )
    assert status == 101
    opcode, _welcome = await _frame(client)
    assert opcode == TEXT
    return client


async def _frame(client: RawClient) -> tuple[int, bytes]:
    with trio.fail_after(10):
        frame = await client.frame()
    assert frame is not None, "the server ended TCP without a close frame"
    return frame


async def _close_frame(client: RawClient) -> tuple[int, str]:
    """Read up to the server's close frame: (code, reason text)."""
    while True:
        opcode, payload = await _frame(client)
        if opcode == CLOSE:
            return struct.unpack("!H", payload[:2])[0], payload[2:].decode()


async def _tcp_end(client: RawClient) -> str:
    """How the server ended TCP: "fin" (a clean end) or "reset"."""
    try:
        with trio.fail_after(10):
            while True:
                data = await client.stream.receive_some(65536)
                if not data:
                    return "fin"
    except trio.BrokenResourceError:
        return "reset"


def _disconnects(logs: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return [(e["reason"], e["code"]) for e in logs if e["event"] == "ws.disconnected"]


async def _wait_logged_out(server: InProcessServer) -> None:
    with trio.fail_after(10):
        while server.services.registry.total:
            await trio.sleep(0.01)


@pytest.mark.parametrize("name", sorted(VIOLATIONS))
async def test_each_violation_gets_its_close_code_and_a_clean_end(
    server: InProcessServer, name: str
) -> None:
    data, expected = VIOLATIONS[name]
    with structlog.testing.capture_logs() as logs:
        client = await _open(server, "vic")
        await client.send(data)
        code, text = await _close_frame(client)
        assert code == expected
        assert text  # every server close frame says why
        # The client answers as RFC 6455 §5.5.1 says; a server that had already closed its
        # socket would answer these bytes with a reset.
        assert await client.send(encode_frame(CLOSE, struct.pack("!H", code)))
        assert await _tcp_end(client) == "fin"
        await client.aclose()
        await _wait_logged_out(server)
    assert _disconnects(logs) == [("protocol_error", expected)]


@pytest.mark.parametrize(
    ("payload", "logged"),
    [(struct.pack("!H", 1000), 1000), (struct.pack("!H", 4321) + b"bye", 4321), (b"", 1005)],
    ids=["1000", "4321", "no code"],
)
async def test_a_client_close_is_echoed_and_logged_with_its_own_code(
    server: InProcessServer, payload: bytes, logged: int
) -> None:
    with structlog.testing.capture_logs() as logs:
        client = await _open(server, "cleo")
        await client.send(encode_frame(CLOSE, payload))
        opcode, echo = await _frame(client)
        assert (opcode, echo) == (CLOSE, payload)
        assert await _tcp_end(client) == "fin"  # both closes passed: the server ends TCP
        await client.aclose()
        await _wait_logged_out(server)
    assert _disconnects(logs) == [("client_closed", logged)]


async def test_the_server_waits_for_the_clients_close_while_the_client_still_sends(
    server: InProcessServer,
) -> None:
    with structlog.testing.capture_logs() as logs:
        client = await _open(server, "flo")
        await client.send(encode_frame(TEXT, b'{"type":"pong"}') * 100)  # past the 2x burst
        code, text = await _close_frame(client)
        assert (code, text) == (1008, "too many messages")
        for _ in range(20):  # still sending after the close: read and dropped, no reset
            assert await client.send(encode_frame(TEXT, b'{"type":"ping"}'))
        await trio.sleep(0.2)
        assert server.services.registry.total == 0  # logged out at once, TCP still open
        assert await client.send(encode_frame(CLOSE, struct.pack("!H", 1008)))
        assert await _tcp_end(client) == "fin"
        await client.aclose()
    assert _disconnects(logs) == [("policy_violation", 1008)]


async def test_a_flooding_client_receives_its_1008(server: InProcessServer) -> None:
    client = await _open(server, "fred")
    received: list[int] = []

    async def flood() -> None:
        burst = encode_frame(TEXT, b'{"type":"pong"}') * 50
        while not received and await client.send(burst):
            await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(flood)
        code, _text = await _close_frame(client)
        received.append(code)
    assert received == [1008]
    await client.aclose()


async def test_protocol_pings_get_their_payload_back_and_count_as_activity(
    server: InProcessServer,
) -> None:
    client = await _open(server, "pat")
    (conn,) = server.services.registry.connections_of("pat")
    seen_before = conn.last_seen
    for payload in (b"", b"hello", bytes(range(125))):
        await client.send(encode_frame(PING, payload))
        assert await _frame(client) == (PONG, payload)
    await client.send(encode_frame(PONG, b"unsolicited"))  # no answer expected
    await client.send(encode_frame(TEXT, b'{"type":"ping"}'))
    opcode, pong = await _frame(client)
    assert opcode == TEXT and b'"pong"' in pong
    assert conn.messages_in == 5
    assert conn.last_seen > seen_before
    await client.send(encode_frame(BINARY, b"\x00"))
    assert await _close_frame(client) == (1003, "binary messages are not accepted")
    await client.aclose()


async def _open_on(server: SubprocessServer, user: str) -> RawClient:
    """An upgraded raw socket on a subprocess server (the welcome not read yet)."""
    assert server.port is not None
    status, _head, client = await RawClient.connect(
        server.port, f"/ws/meal-logs?token={token_for(user)}"
    )
    assert status == 101
    return client


async def _sigterm(server: SubprocessServer) -> tuple[int, float]:
    """Send SIGTERM and wait for the exit: (exit status, seconds it took)."""
    start = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    code = await trio.to_thread.run_sync(server.proc.wait, 20)
    return code, time.monotonic() - start


async def test_sigterm_right_after_a_flood_close_exits_at_once(data_dir: Path) -> None:
    server = SubprocessServer(data_dir, env={"FITIQ_CLOSE_TIMEOUT": "60"})
    try:
        client = await _open_on(server, "sig")
        await client.send(encode_frame(TEXT, b'{"type":"pong"}') * 100)
        assert (await _close_frame(client))[0] == 1008
        # The client never answers, so the server's close wait (60 s) is still running.
        code, took = await _sigterm(server)
        await client.aclose()
        assert code == 0
        assert took < 5.0, f"SIGTERM took {took:.1f} s"  # not the 60 s wait, nor the 10 s bound
        server.wait_for_event("server.stopped")
    finally:
        server.kill()


async def test_a_second_sigterm_during_the_drain_stops_at_once(data_dir: Path) -> None:
    server = SubprocessServer(
        data_dir, env={"FITIQ_CLOSE_TIMEOUT": "60", "FITIQ_SHUTDOWN_TIMEOUT": "60"}
    )
    try:
        client = await _open_on(server, "twice")
        server.proc.send_signal(signal.SIGTERM)
        assert (await _close_frame(client))[0] == 1001
        # The client never answers the 1001: the drain would wait up to 60 s for it.
        await trio.to_thread.run_sync(server.wait_for_event, "server.stopping")
        code, took = await _sigterm(server)
        await client.aclose()
        assert code == 0
        assert took < 5.0, f"the second SIGTERM took {took:.1f} s"
        server.wait_for_event("server.force_stopping")
        (stopped,) = server.wait_for_event("server.stopped")
        assert stopped["forced"] is True
        assert stopped["connections_closed"] == 1
    finally:
        server.kill()
