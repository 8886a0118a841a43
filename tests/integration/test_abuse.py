"""Abuse limits against a real server: socket caps, inbound rate, slow and huge handshakes."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest
import trio
from trio_websocket import ConnectionClosed, ConnectionRejected, open_websocket_url

from tests.servers import scraped, start_in_process, token_for


async def test_process_socket_cap_answers_503(
    nursery: trio.Nursery, data_dir: Path, store_backend: str | None
) -> None:
    server = await start_in_process(
        nursery, data_dir, database_url=store_backend, FITIQ_MAX_CONNECTIONS="2"
    )
    async with (
        open_websocket_url(server.ws_url(token_for("a"))) as first,
        open_websocket_url(server.ws_url(token_for("b"))) as second,
    ):
        await first.get_message()
        await second.get_message()
        with pytest.raises(ConnectionRejected) as refused:
            async with open_websocket_url(server.ws_url(token_for("c"))):
                pass
    assert refused.value.status_code == 503
    assert orjson.loads(refused.value.body)["error"]["code"] == "unavailable"


async def test_per_address_cap_answers_429(
    nursery: trio.Nursery, data_dir: Path, store_backend: str | None
) -> None:
    server = await start_in_process(
        nursery, data_dir, database_url=store_backend, FITIQ_MAX_CONNECTIONS_PER_IP="1"
    )
    async with open_websocket_url(server.ws_url(token_for("a"))) as first:
        await first.get_message()
        with pytest.raises(ConnectionRejected) as refused:
            async with open_websocket_url(server.ws_url(token_for("b"))):
                pass
    assert refused.value.status_code == 429


async def test_inbound_flood_is_closed_1008(
    nursery: trio.Nursery, data_dir: Path, store_backend: str | None
) -> None:
    server = await start_in_process(
        nursery, data_dir, database_url=store_backend, FITIQ_MAX_MESSAGES_PER_SECOND="5"
    )
    async with open_websocket_url(server.ws_url(token_for("a"))) as ws:
        await ws.get_message()
        with pytest.raises(ConnectionClosed) as closed, trio.fail_after(10):
            for _ in range(200):
                await ws.send_message('{"type":"pong"}')
            while True:
                await ws.get_message()
    assert closed.value.reason.code == 1008
    assert await scraped(server, "fitiq_ws_disconnects_total", reason="policy_violation") == 1


async def test_query_and_header_tokens_that_disagree_get_401(
    nursery: trio.Nursery, data_dir: Path, store_backend: str | None
) -> None:
    server = await start_in_process(nursery, data_dir, database_url=store_backend)
    with pytest.raises(ConnectionRejected) as refused:
        async with open_websocket_url(
            server.ws_url(token_for("a")),
            extra_headers=[("Authorization", "Bearer " + token_for("b"))],
        ):
            pass
    assert refused.value.status_code == 401
    async with open_websocket_url(
        server.ws_url(), extra_headers=[("Authorization", "Bearer " + token_for("b"))]
    ) as ws:
        assert orjson.loads(await ws.get_message())["user_id"] == "b"


async def test_slowloris_handshake_is_dropped_and_honest_clients_still_connect(
    nursery: trio.Nursery, data_dir: Path, store_backend: str | None
) -> None:
    server = await start_in_process(
        nursery, data_dir, database_url=store_backend, FITIQ_HANDSHAKE_TIMEOUT="1"
    )
    slow = await trio.open_tcp_stream("127.0.0.1", server.port)
    started = time.monotonic()
    await slow.send_all(b"GET /ws/meal-logs HTTP/1.1\r\nHost: x\r\n")
    with trio.fail_after(10):
        try:
            while True:
                await trio.sleep(0.2)
                await slow.send_all(b"X-Slow: 1\r\n")  # trickle, never finish the head
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
    assert 0.8 <= time.monotonic() - started < 5
    floods = []
    for _ in range(50):  # a flood of half-open handshakes
        floods.append(await trio.open_tcp_stream("127.0.0.1", server.port))
    async with open_websocket_url(server.ws_url(token_for("honest"))) as ws:
        assert orjson.loads(await ws.get_message())["type"] == "welcome"
    for stream in floods:
        await stream.aclose()


async def test_oversized_request_headers_are_refused(
    nursery: trio.Nursery, data_dir: Path, store_backend: str | None
) -> None:
    server = await start_in_process(
        nursery, data_dir, database_url=store_backend, FITIQ_MAX_HEADER_BYTES="4096"
    )
    stream = await trio.open_tcp_stream("127.0.0.1", server.port)
    await stream.send_all(
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 8000 + b"\r\n\r\n"
    )
    with trio.fail_after(5):
        answer = await stream.receive_some(4096)
    assert answer.startswith(b"HTTP/1.1 431")
