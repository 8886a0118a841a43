"""Lossless delivery over real sockets: resume, caps, slow consumers, restarts."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import trio
from trio_websocket import (
    ConnectionClosed,
    ConnectionRejected,
    open_websocket_url,
    wrap_client_stream,
)

from fitiq_rt.client import Backoff, ReferenceClient, static_token
from tests.servers import SubprocessServer, scraped, start_in_process, token_for


def bearer(user: str) -> dict[str, str]:
    return {"Authorization": "Bearer " + token_for(user)}


async def _frames_until_resumed(ws: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    frames = []
    with trio.fail_after(10):
        while True:
            frame = orjson.loads(await ws.get_message())
            if frame["type"] == "resumed":
                return frames, frame
            if frame["type"].startswith("meal_log."):
                frames.append(frame)


async def test_offline_user_reconnects_with_last_seq_0_and_gets_1_to_5(
    nursery: trio.Nursery, data_dir: Path, store_backend: str | None
) -> None:
    server = await start_in_process(nursery, data_dir, database_url=store_backend)
    async with httpx.AsyncClient() as http:
        for n in range(5):
            response = await http.post(
                server.url("/api/v1/meal-logs/natural"),
                json={"raw_input": f"{n + 1} apples"},
                headers=bearer("ana"),
            )
            assert response.status_code == 201
        with trio.fail_after(10):
            while await server.services.store.latest_seq("ana") < 5:
                await trio.sleep(0.01)
    async with open_websocket_url(server.ws_url(token_for("ana"), last_seq=0)) as ws:
        welcome = orjson.loads(await ws.get_message())
        frames, resumed = await _frames_until_resumed(ws)
    assert welcome["last_seq"] == 5
    assert [f["seq"] for f in frames] == [1, 2, 3, 4, 5]
    assert resumed == {"type": "resumed", "replayed": 5, "complete": True}
    assert await scraped(server, "fitiq_notifications_total", outcome="queued") == 5


async def test_per_user_cap_refuses_with_429_then_admits_after_a_close(
    nursery: trio.Nursery, data_dir: Path, store_backend: str | None
) -> None:
    server = await start_in_process(
        nursery, data_dir, database_url=store_backend, FITIQ_MAX_CONNECTIONS_PER_USER="2"
    )
    url = server.ws_url(token_for("ana"))
    async with open_websocket_url(url) as first:
        await first.get_message()
        async with open_websocket_url(url) as second:
            await second.get_message()
            with pytest.raises(ConnectionRejected) as refused:
                async with open_websocket_url(url):
                    pass
            assert refused.value.status_code == 429
            assert orjson.loads(refused.value.body)["error"]["code"] == "too_many_connections"
            async with open_websocket_url(server.ws_url(token_for("ben"))) as other_user:
                assert orjson.loads(await other_user.get_message())["type"] == "welcome"
        with trio.fail_after(5):
            while server.services.registry.count_for_user("ana") > 1:
                await trio.sleep(0.01)
        async with open_websocket_url(url) as third:
            assert orjson.loads(await third.get_message())["type"] == "welcome"


async def _stalled_socket(nursery: trio.Nursery, port: int, token: str) -> Any:
    """A WebSocket whose client never reads: tiny receive buffer, trio-websocket queue of 1."""
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    await sock.connect(("127.0.0.1", port))
    stream = trio.SocketStream(sock)
    return await wrap_client_stream(
        nursery, stream, "127.0.0.1", f"/ws/meal-logs?token={token}", message_queue_size=1
    )


async def test_slow_consumer_is_closed_4029_while_the_other_socket_gets_everything(
    nursery: trio.Nursery, data_dir: Path, store_backend: str | None
) -> None:
    server = await start_in_process(
        nursery, data_dir, database_url=store_backend, FITIQ_SEND_QUEUE="4"
    )
    token = token_for("ana")
    stalled = await _stalled_socket(nursery, server.port, token)
    meal = "2 eggs, " * 249 + "toast"  # a large notification: fills the stalled buffers fast
    received: list[int] = []
    async with open_websocket_url(server.ws_url(token)) as healthy, httpx.AsyncClient() as http:
        await healthy.get_message()
        posted = 0
        with trio.fail_after(60):
            while server.services.registry.count_for_user("ana") == 2:
                response = await http.post(
                    server.url("/api/v1/meal-logs/natural"),
                    json={"raw_input": meal},
                    headers=bearer("ana"),
                )
                assert response.status_code == 201
                posted += 1
                while len(received) < posted:
                    frame = orjson.loads(await healthy.get_message())
                    if frame["type"] == "meal_log.completed":
                        received.append(frame["seq"])
        for _ in range(3):  # the remaining socket keeps receiving after the slow one is gone
            await http.post(
                server.url("/api/v1/meal-logs/natural"),
                json={"raw_input": "egg"},
                headers=bearer("ana"),
            )
            posted += 1
        with trio.fail_after(10):
            while len(received) < posted:
                frame = orjson.loads(await healthy.get_message())
                if frame["type"] == "meal_log.completed":
                    received.append(frame["seq"])
    assert received == list(range(1, posted + 1))
    assert await scraped(server, "fitiq_ws_disconnects_total", reason="slow_consumer") == 1
    with pytest.raises(ConnectionClosed) as closed, trio.fail_after(10):
        while True:  # once it reads again it gets what was in flight, then the 4029 close
            await stalled.get_message()
    assert closed.value.reason.code == 4029


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_reference_client_sees_every_seq_once_across_a_server_restart(
    data_dir: Path, store_backend: str | None
) -> None:
    port = _free_port()
    total = 30
    server = SubprocessServer(data_dir, port=port, database_url=store_backend)
    seen: list[int] = []
    stats: dict[str, Any] = {}

    async def main() -> None:
        nonlocal server
        client = ReferenceClient(
            f"ws://127.0.0.1:{port}/ws/meal-logs",
            static_token(token_for("ana")),
            backoff=Backoff(initial=0.05, cap=0.5),
        )

        async def on_note(frame: dict[str, Any]) -> None:
            seen.append(frame["seq"])

        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.run, on_note)
            with trio.fail_after(10):
                while client.welcome is None:
                    await trio.sleep(0.01)
            async with httpx.AsyncClient() as http:
                for n in range(total):
                    if n == total // 2:
                        server.kill()  # SIGKILL mid-stream, then a new process, same port
                        server = await trio.to_thread.run_sync(
                            lambda: SubprocessServer(
                                data_dir, port=port, database_url=store_backend
                            )
                        )
                    response = await http.post(
                        f"http://127.0.0.1:{port}/api/v1/meal-logs/natural",
                        json={"raw_input": f"{n % 5 + 1} eggs"},
                        headers=bearer("ana"),
                    )
                    assert response.status_code == 201
            with trio.fail_after(20):
                while len(seen) < total:
                    await trio.sleep(0.02)
            stats["connections"] = client.connections
            nursery.cancel_scope.cancel()

    try:
        trio.run(main)
    finally:
        server.kill()
    assert seen == list(range(1, total + 1))
    assert stats["connections"] >= 2
