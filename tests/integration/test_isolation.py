"""One user can never read, list, resume or receive another user's meal logs or notifications.

Every REST route and every WebSocket message is tried by "ana" against data of "Ana" (user ids
are exact strings: case matters), on a real server, with positive controls so that a test that
sees nothing cannot pass by accident.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import trio
from trio_websocket import ConnectionRejected, WebSocketConnection, open_websocket_url

from tests.servers import InProcessServer, start_in_process, token_for

ANA, OTHER = "ana", "Ana"
CREATE = "/api/v1/meal-logs/natural"


def bearer(user: str, **claims: Any) -> dict[str, str]:
    return {"Authorization": "Bearer " + token_for(user, **claims)}


async def frame(ws: WebSocketConnection) -> dict[str, Any]:
    """The next frame that is not a server heartbeat."""
    while True:
        with trio.fail_after(10):
            message = orjson.loads(await ws.get_message())
        if message["type"] != "ping":
            return message


async def frames_until(ws: WebSocketConnection, kind: str) -> list[dict[str, Any]]:
    out = [await frame(ws)]
    while out[-1]["type"] != kind:
        out.append(await frame(ws))
    return out


async def quiet(ws: WebSocketConnection) -> None:
    """Nothing is pending for this socket: a ping's pong is the next frame."""
    await ws.send_message('{"type":"ping"}')
    assert (await frame(ws))["type"] == "pong"


@pytest.fixture
async def server(
    nursery: trio.Nursery, data_dir: Path, store_backend: str | None
) -> InProcessServer:
    return await start_in_process(nursery, data_dir, database_url=store_backend)


async def _create(
    http: httpx.AsyncClient, user: str, text: str, key: str | None = None, **extra: Any
) -> httpx.Response:
    headers = bearer(user) | ({"Idempotency-Key": key} if key else {})
    return await http.post(CREATE, json={"raw_input": text, **extra}, headers=headers)


async def test_rest_routes_never_show_another_users_meal_logs(server: InProcessServer) -> None:
    async with httpx.AsyncClient(base_url=server.url("")) as http:
        theirs = await _create(http, OTHER, "2 eggs", key="shared-key")
        assert theirs.status_code == 201
        their_id = theirs.json()["id"]

        # Read one: another user's meal log is exactly as absent as one that never existed.
        stolen = await http.get(f"/api/v1/meal-logs/{their_id}", headers=bearer(ANA))
        unknown = await http.get(
            "/api/v1/meal-logs/7f1d5e0e-0000-4000-8000-000000000000", headers=bearer(ANA)
        )
        assert stolen.status_code == unknown.status_code == 404
        assert stolen.json() == unknown.json()
        owner_view = await http.get(f"/api/v1/meal-logs/{their_id}", headers=bearer(OTHER))
        assert owner_view.status_code == 200  # positive control

        # Create: the same Idempotency-Key and body make a new meal log of ana's, never theirs;
        # a user_id in the body is ignored.
        mine = await _create(http, ANA, "2 eggs", key="shared-key", user_id=OTHER)
        assert mine.status_code == 201
        assert mine.json()["id"] != their_id
        assert mine.json()["user_id"] == ANA
        again = await _create(http, OTHER, "2 eggs", key="shared-key")
        assert (again.status_code, again.json()["id"]) == (200, their_id)

        # List: whatever the filters, only ana's own.
        for params in ({}, {"limit": 1000}, {"updated_since": "1970-01-01T00:00:00Z"}):
            listing = await http.get("/api/v1/meal-logs", params=params, headers=bearer(ANA))
            ids = [item["id"] for item in listing.json()["items"]]
            assert ids == [mine.json()["id"]], params
            assert {item["user_id"] for item in listing.json()["items"]} == {ANA}

        # The connection listing names every user: admins only.
        listing = await http.get("/api/v1/debug/websocket/connections", headers=bearer(ANA))
        assert listing.status_code == 403


async def test_websocket_never_delivers_or_replays_another_users_notifications(
    server: InProcessServer,
) -> None:
    async with (
        httpx.AsyncClient(base_url=server.url("")) as http,
        open_websocket_url(server.ws_url(token_for(OTHER))) as their_ws,
        open_websocket_url(server.ws_url(token_for(ANA))) as my_ws,
    ):
        assert (await frame(their_ws))["user_id"] == OTHER
        welcome = await frame(my_ws)
        assert (welcome["user_id"], welcome["last_seq"]) == (ANA, 0)

        for text in ("2 eggs", "[not food] zzz", "a banana"):
            await _create(http, OTHER, text)
        theirs = [await frame(their_ws) for _ in range(3)]
        assert [note["seq"] for note in theirs] == [1, 2, 3]
        assert {note["data"]["user_id"] for note in theirs} == {OTHER}
        await quiet(my_ws)  # live fan-out: nothing reached ana

        # Resume by message, at every seq the other user has: nothing of theirs replays.
        for last_seq in (0, 1, 3, 99):
            await my_ws.send_message(
                orjson.dumps({"type": "resume", "last_seq": last_seq}).decode()
            )
            resumed = await frame(my_ws)
            assert resumed["type"] == "resumed" and resumed["replayed"] == 0, last_seq
        # Acks of their seqs are accepted silently and change nothing.
        await my_ws.send_message('{"type":"ack","seq":3}')
        await quiet(my_ws)

        # ana's own notification: her seq 1, with her meal log only (positive control).
        await _create(http, ANA, "toast")
        mine = await frame(my_ws)
        assert (mine["seq"], mine["data"]["user_id"]) == (1, ANA)
        await quiet(their_ws)  # and the other user does not get ana's

    # Resume at the handshake, with last_seq below, at and above the other user's newest seq.
    for last_seq in (0, 3, 50):
        url = server.ws_url(token_for(ANA), last_seq=last_seq)
        async with open_websocket_url(url) as ws:
            replay = await frames_until(ws, "resumed")
        assert replay[0]["last_seq"] == 1  # ana's newest, not the other user's 3
        notes = [note for note in replay if note["type"].startswith("meal_log.")]
        assert [(note["seq"], note["data"]["user_id"]) for note in notes] == [(1, ANA)], last_seq
        # Above ana's newest seq means "another life of the store": hers again, from 1.
        assert replay[-1]["complete"] is (last_seq == 0)


async def test_a_token_cannot_borrow_another_identity(server: InProcessServer) -> None:
    """Query and header tokens for different users are refused, not resolved to either."""
    url = server.ws_url(token_for(ANA))
    with pytest.raises(ConnectionRejected) as rejected:
        async with open_websocket_url(url, extra_headers=[*bearer(OTHER).items()]):
            pass
    assert rejected.value.status_code == 401
    assert server.services.registry.total == 0
