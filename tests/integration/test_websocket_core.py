"""The WebSocket endpoint through a real Hypercorn on a free port, with trio-websocket clients."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import orjson
import pytest
import trio
from trio_websocket import ConnectionClosed, ConnectionRejected, open_websocket_url

from fitiq_rt.clock import parse_rfc3339
from tests.servers import SubprocessServer, scraped, start_in_process, token_for


async def _json(ws: object) -> dict:
    with trio.fail_after(10):
        return orjson.loads(await ws.get_message())  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("", "missing_token"),
        ("?token=not-a-jwt", "invalid_token"),
        ("?token=" + token_for("u1", ttl=-10), "expired_token"),
    ],
    ids=["missing", "invalid", "expired"],
)
async def test_bad_tokens_get_a_real_401_before_any_upgrade(
    nursery: trio.Nursery, data_dir: Path, store_backend: str | None, query: str, reason: str
) -> None:
    server = await start_in_process(nursery, data_dir, database_url=store_backend)
    url = f"ws://127.0.0.1:{server.port}/ws/meal-logs{query}"
    with pytest.raises(ConnectionRejected) as rejected:
        async with open_websocket_url(url):
            pass
    assert rejected.value.status_code == 401
    body = orjson.loads(rejected.value.body)
    assert body["error"]["code"] == "unauthorized"
    assert server.services.registry.total == 0
    assert await scraped(server, "fitiq_ws_connects_total") == 0
    del reason  # the reason is asserted in the subprocess log test


async def test_welcome_ping_pong_and_error_frames(
    nursery: trio.Nursery, data_dir: Path, store_backend: str | None
) -> None:
    server = await start_in_process(nursery, data_dir, database_url=store_backend)
    async with open_websocket_url(server.ws_url(token_for("alice"))) as ws:
        welcome = await _json(ws)
        assert welcome["type"] == "welcome"
        assert welcome["user_id"] == "alice"
        assert welcome["ping_interval"] == 30.0
        assert welcome["idle_timeout"] == 90.0
        assert welcome["last_seq"] == 0
        assert len(welcome["connection_id"]) >= 16
        await ws.send_message('{"type":"ping"}')
        pong = await _json(ws)
        assert pong["type"] == "pong" and pong["ts"].endswith("Z")
        for frame, code in [
            ("{nope", "invalid_json"),
            ("[1,2]", "invalid_message"),
            ('{"type":"dance"}', "unknown_type"),
            ('{"type":"ack","seq":-1}', "invalid_message"),
        ]:
            await ws.send_message(frame)
            error = await _json(ws)
            assert (error["type"], error["code"]) == ("error", code)
        await ws.send_message('{"type":"ping"}')  # still open after every error
        assert (await _json(ws))["type"] == "pong"


async def test_binary_frame_closes_1003(
    nursery: trio.Nursery, data_dir: Path, store_backend: str | None
) -> None:
    server = await start_in_process(nursery, data_dir, database_url=store_backend)
    async with open_websocket_url(server.ws_url(token_for("bob"))) as ws:
        await _json(ws)
        await ws.send_message(b"\x01\x02")
        with pytest.raises(ConnectionClosed) as closed:
            await _json(ws)
    assert closed.value.reason.code == 1003


async def test_oversized_message_closes_1009(
    nursery: trio.Nursery, data_dir: Path, store_backend: str | None
) -> None:
    server = await start_in_process(
        nursery, data_dir, database_url=store_backend, FITIQ_MAX_MESSAGE_BYTES="1024"
    )
    async with open_websocket_url(server.ws_url(token_for("bob"))) as ws:
        await _json(ws)
        await ws.send_message('{"type":"ping","pad":"' + "x" * 2000 + '"}')
        with pytest.raises(ConnectionClosed) as closed:
            await _json(ws)
    assert closed.value.reason.code == 1009


async def test_debug_endpoint_shows_the_socket_then_not(
    nursery: trio.Nursery, data_dir: Path, store_backend: str | None
) -> None:
    server = await start_in_process(nursery, data_dir, database_url=store_backend)
    admin = {"Authorization": "Bearer " + token_for("ops", admin=True)}
    url = server.url("/api/v1/debug/websocket/connections")
    async with httpx.AsyncClient() as http:
        assert (await http.get(url)).status_code == 401
        user_only = {"Authorization": "Bearer " + token_for("carol")}
        denied = await http.get(url, headers=user_only)
        assert denied.status_code == 403
        assert denied.json()["error"]["code"] == "forbidden"
        async with open_websocket_url(server.ws_url(token_for("carol"))) as ws:
            welcome = await _json(ws)
            await ws.send_message('{"type":"ping"}')
            await _json(ws)
            listing = (await http.get(url, headers=admin)).json()
            assert listing["total_connections"] == 1
            assert listing["total_users"] == 1
            (entry,) = listing["connections"]
            assert entry["user_id"] == "carol"
            assert entry["connection_id"] == welcome["connection_id"]
            assert entry["state"] == "active"
            assert entry["messages_in"] == 1
            assert entry["messages_out"] == 2
            assert entry["queued"] == 0
            for field in ("connected_at", "last_seen", "age_seconds", "idle_seconds"):
                assert field in entry
        with trio.fail_after(5):
            while (await http.get(url, headers=admin)).json()["total_connections"]:
                await trio.sleep(0.02)
        assert (await http.get(url, headers=admin)).json() == {
            "total_connections": 0,
            "total_users": 0,
            "connections": [],
        }


async def test_silent_socket_is_closed_4008_after_idle_timeout_in_real_time(
    nursery: trio.Nursery, data_dir: Path, store_backend: str | None
) -> None:
    server = await start_in_process(
        nursery,
        data_dir,
        database_url=store_backend,
        FITIQ_PING_INTERVAL="0.4",
        FITIQ_IDLE_TIMEOUT="1",
    )
    started = time.monotonic()
    async with open_websocket_url(server.ws_url(token_for("dave"))) as ws:
        await _json(ws)
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await _json(ws)  # server pings arrive; the client never answers
    elapsed = time.monotonic() - started
    assert closed.value.reason.code == 4008
    assert 0.9 <= elapsed < 5
    assert server.services.registry.total == 0


async def test_refresh_on_a_live_socket_outlives_the_first_token(
    nursery: trio.Nursery, data_dir: Path, store_backend: str | None
) -> None:
    """token_expiring, then refresh: the socket lives past the first token's exp, on the new one."""
    server = await start_in_process(
        nursery, data_dir, database_url=store_backend, FITIQ_TOKEN_WARNING="2.5"
    )
    first = token_for("erin", ttl=3)  # exp is whole seconds: 2 to 3 s left at connect
    async with open_websocket_url(server.ws_url(first)) as ws:
        await _json(ws)
        warning = await _json(ws)
        assert warning["type"] == "token_expiring"
        first_exp = parse_rfc3339(warning["expires_at"]).timestamp()
        await ws.send_message(orjson.dumps({"type": "refresh", "token": "nope"}).decode())
        assert (await _json(ws))["code"] == "invalid_token"
        other = token_for("mallory", ttl=3600)
        await ws.send_message(orjson.dumps({"type": "refresh", "token": other}).decode())
        assert (await _json(ws))["code"] == "token_user_mismatch"
        fresh = token_for("erin", ttl=3600)
        await ws.send_message(orjson.dumps({"type": "refresh", "token": fresh}).decode())
        refreshed = await _json(ws)
        assert refreshed["type"] == "refreshed"
        assert parse_rfc3339(refreshed["expires_at"]).timestamp() > first_exp + 3000
        await trio.sleep(max(0.0, first_exp - time.time()) + 0.5)  # past the first token's exp
        await ws.send_message('{"type":"ping"}')
        assert (await _json(ws))["type"] == "pong"  # still open
    assert server.services.registry.total == 0


async def test_healthz(nursery: trio.Nursery, data_dir: Path, store_backend: str | None) -> None:
    server = await start_in_process(nursery, data_dir, database_url=store_backend)
    async with httpx.AsyncClient() as http:
        response = await http.get(server.url("/healthz"))
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_sigterm_closes_live_sockets_with_1001_and_logs_everything(
    data_dir: Path, store_backend: str | None
) -> None:
    server = SubprocessServer(data_dir, database_url=store_backend)
    token = token_for("erin")
    close_codes: list[int] = []

    async def client() -> None:
        async with open_websocket_url(server.ws_url(token)) as ws:
            await _json(ws)
            await ws.send_message('{"type":"ping"}')
            await _json(ws)
            server.proc.send_signal(signal.SIGTERM)
            try:
                while True:
                    await _json(ws)
            except ConnectionClosed as closed:
                close_codes.append(closed.reason.code)

    async def rejected() -> None:
        with pytest.raises(ConnectionRejected) as refusal:
            async with open_websocket_url(server.ws_url("garbage")):
                pass
        assert refusal.value.status_code == 401

    try:
        trio.run(rejected)
        trio.run(client)
        assert server.proc.wait(15) == 0
    finally:
        server.kill()
    assert close_codes == [1001]
    events = [orjson.loads(line) for line in server.lines]  # every line is JSON
    names = [e["event"] for e in events]
    assert names.index("server.started") < names.index("ws.connected")
    assert names[-1] == "server.stopped"
    assert events[-1]["connections_closed"] == 1
    (disconnect,) = [e for e in events if e["event"] == "ws.disconnected"]
    assert disconnect["reason"] == "server_shutdown"
    assert disconnect["code"] == 1001
    (reject,) = [e for e in events if e["event"] == "ws.rejected"]
    assert reject["reason"] == "invalid_token"
    statuses = [e["status"] for e in events if e["event"] == "http.request"]
    assert statuses == [401, 101]
    for event in events:
        assert {"event", "timestamp", "level"} <= event.keys()
        assert event["timestamp"].endswith("Z")
    text = "\n".join(server.lines)
    assert token not in text
    assert "garbage" not in text
    assert "token=[REDACTED]" in text
