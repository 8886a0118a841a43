"""The listener's front door over a real server: routing by request head, and the handoff.

REST connections reach Hypercorn with the bytes already read (keep-alive still works), a head
that arrives in pieces is assembled first, bytes sent right after an upgrade's head are not
lost, and the WebSocket path answers plain requests and reused connections with clear errors.
"""

from __future__ import annotations

import base64
import os
import struct
from pathlib import Path

import orjson
import pytest
import trio

from tests.rawws import CLOSE, TEXT, RawClient, encode_frame
from tests.servers import InProcessServer, start_in_process, token_for


@pytest.fixture
async def server(nursery: trio.Nursery, data_dir: Path) -> InProcessServer:
    return await start_in_process(nursery, data_dir)


async def _read_response(stream: trio.SocketStream, buffer: bytearray) -> tuple[int, bytes]:
    """One HTTP/1.1 response with a Content-Length: (status, body); leftovers stay in buffer."""
    with trio.fail_after(10):
        while b"\r\n\r\n" not in buffer:
            chunk = await stream.receive_some(65536)
            assert chunk, "the server closed before answering"
            buffer += chunk
        end = buffer.index(b"\r\n\r\n")
        head = bytes(buffer[:end]).decode("latin-1").split("\r\n")
        length = next(
            int(line.split(":", 1)[1]) for line in head if line.lower().startswith("content-length")
        )
        while len(buffer) < end + 4 + length:
            chunk = await stream.receive_some(65536)
            assert chunk
            buffer += chunk
        body = bytes(buffer[end + 4 : end + 4 + length])
        del buffer[: end + 4 + length]
        return int(head[0].split(" ")[1]), body


def _upgrade(target: str) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {target} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


async def _upgraded(stream: trio.SocketStream) -> RawClient:
    """Read the 101 the server answered on `stream`; its frames follow in the client."""
    client = RawClient(stream)
    with trio.fail_after(10):
        while b"\r\n\r\n" not in client.buffer:
            client.buffer += await stream.receive_some(65536)
    assert client.buffer.startswith(b"HTTP/1.1 101 ")
    del client.buffer[: client.buffer.index(b"\r\n\r\n") + 4]
    return client


async def test_rest_keep_alive_works_through_the_handoff(server: InProcessServer) -> None:
    stream = await trio.open_tcp_stream("127.0.0.1", server.port)
    buffer = bytearray()
    for _ in range(3):  # the first request was read by the front door, the rest by Hypercorn
        await stream.send_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        status, body = await _read_response(stream, buffer)
        assert (status, orjson.loads(body)["status"]) == (200, "ok")
    await stream.aclose()


async def test_a_413_says_connection_close_and_closes_whatever_the_timing(
    server: InProcessServer,
) -> None:
    """The body is left unread: a client told nothing would send its next request into the close
    (httpx: "Server disconnected without sending a response")."""
    for body_first in (True, False):  # the body all there before the answer, or still coming
        stream = await trio.open_tcp_stream("127.0.0.1", server.port)
        head = (
            b"POST /api/v1/meal-logs/natural HTTP/1.1\r\nHost: x\r\n"
            b"Authorization: Bearer " + token_for("big").encode() + b"\r\n"
            b"Content-Type: application/json\r\nContent-Length: 70000\r\n\r\n"
        )
        await stream.send_all(head + (b"x" * 70_000 if body_first else b""))
        answer = bytearray()
        with trio.fail_after(10):  # read to the close: the 413 and nothing after it
            while chunk := await stream.receive_some(65536):
                answer += chunk
        response_head, _, body = bytes(answer).partition(b"\r\n\r\n")
        assert response_head.startswith(b"HTTP/1.1 413 ")
        assert b"\r\nconnection: close" in response_head.lower()
        assert orjson.loads(body)["error"]["code"] == "payload_too_large"
        await stream.aclose()


async def test_a_head_that_arrives_in_pieces_is_assembled(server: InProcessServer) -> None:
    head = _upgrade(f"/ws/meal-logs?token={token_for('piecemeal')}")
    stream = await trio.open_tcp_stream("127.0.0.1", server.port)
    for index in range(0, len(head), 7):  # a slow but honest client
        await stream.send_all(head[index : index + 7])
        await trio.sleep(0.001)
    client = await _upgraded(stream)
    opcode, welcome = await client.frame()  # type: ignore[misc]
    assert (opcode, orjson.loads(welcome)["type"]) == (TEXT, "welcome")
    await client.aclose()


async def test_frames_sent_right_after_the_head_are_not_lost(server: InProcessServer) -> None:
    stream = await trio.open_tcp_stream("127.0.0.1", server.port)
    ping = encode_frame(TEXT, b'{"type":"ping"}')
    await stream.send_all(_upgrade(f"/ws/meal-logs?token={token_for('eager')}") + ping)
    client = await _upgraded(stream)
    kinds = []
    for _ in range(2):
        frame = await client.frame()
        assert frame is not None
        kinds.append(orjson.loads(frame[1])["type"])
    assert kinds == ["welcome", "pong"]
    await client.send(encode_frame(CLOSE, struct.pack("!H", 1000)))
    await client.aclose()


async def test_an_upgrade_on_a_kept_alive_rest_connection_is_refused_clearly(
    server: InProcessServer,
) -> None:
    stream = await trio.open_tcp_stream("127.0.0.1", server.port)
    buffer = bytearray()
    await stream.send_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await _read_response(stream, buffer))[0] == 200
    await stream.send_all(_upgrade(f"/ws/meal-logs?token={token_for('reuser')}"))
    status, body = await _read_response(stream, buffer)
    error = orjson.loads(body)["error"]
    assert (status, error["code"]) == (400, "invalid_request")
    assert error["message"] == "open /ws/meal-logs on a new connection"
    await stream.aclose()


async def test_a_plain_get_of_the_websocket_path_gets_426_on_any_connection(
    server: InProcessServer,
) -> None:
    stream = await trio.open_tcp_stream("127.0.0.1", server.port)
    buffer = bytearray()
    plain = b"GET /ws/meal-logs HTTP/1.1\r\nHost: x\r\n\r\n"
    await stream.send_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await _read_response(stream, buffer))[0] == 200
    await stream.send_all(plain)  # kept alive: Hypercorn's side
    status, body = await _read_response(stream, buffer)
    assert (status, orjson.loads(body)["error"]["code"]) == (426, "upgrade_required")
    await stream.aclose()
    fresh = await trio.open_tcp_stream("127.0.0.1", server.port)  # the front door's side
    await fresh.send_all(plain)
    status, body = await _read_response(fresh, bytearray())
    assert (status, orjson.loads(body)["error"]["code"]) == (426, "upgrade_required")
    await fresh.aclose()
