"""POST -> store -> processor -> notification on every socket of the user, over real parts."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import httpx
import orjson
import trio
from trio_websocket import WebSocketConnection, open_websocket_url

from tests.servers import SubprocessServer, start_in_process, token_for


def bearer(user: str) -> dict[str, str]:
    return {"Authorization": "Bearer " + token_for(user)}


async def next_of(ws: WebSocketConnection, kind: str) -> dict[str, Any]:
    """The next frame of a type, skipping heartbeats."""
    with trio.fail_after(10):
        while True:
            frame = orjson.loads(await ws.get_message())
            if frame["type"] == kind:
                return frame


async def test_meal_reaches_both_sockets_of_the_user_and_nobody_else(
    nursery: trio.Nursery, data_dir: Path, store_backend: str | None
) -> None:
    server = await start_in_process(nursery, data_dir, database_url=store_backend)
    async with (
        open_websocket_url(server.ws_url(token_for("ana"))) as phone,
        open_websocket_url(server.ws_url(token_for("ana"))) as ipad,
        open_websocket_url(server.ws_url(token_for("ben"))) as other,
        httpx.AsyncClient() as http,
    ):
        for ws in (phone, ipad, other):
            await next_of(ws, "welcome")
        created = await http.post(
            server.url("/api/v1/meal-logs/natural"),
            json={"raw_input": "2 eggs and a slice of toast", "meal_type": "breakfast"},
            headers=bearer("ana"),
        )
        assert created.status_code == 201
        body = created.json()
        assert body["status"] == "pending"
        assert body["user_id"] == "ana"
        assert body["meal_type"] == "breakfast"
        for ws in (phone, ipad):
            note = await next_of(ws, "meal_log.completed")
            assert note["seq"] == 1
            assert note["data"]["id"] == body["id"]
            assert note["data"]["status"] == "completed"
            names = [item["name"] for item in note["data"]["items"]]
            assert len(names) == 2
            assert note["data"]["totals"]["calories"] > 150
            assert note["created_at"].endswith("Z")
        await other.send_message('{"type":"ping"}')
        assert orjson.loads(await other.get_message())["type"] == "pong"  # nothing else queued
        fetched = await http.get(
            server.url(f"/api/v1/meal-logs/{body['id']}"), headers=bearer("ana")
        )
        assert fetched.status_code == 200
        assert fetched.json()["status"] == "completed"
        hidden = await http.get(
            server.url(f"/api/v1/meal-logs/{body['id']}"), headers=bearer("ben")
        )
        assert hidden.status_code == 404
        listing = await http.get(server.url("/api/v1/meal-logs"), headers=bearer("ana"))
        assert [m["id"] for m in listing.json()["items"]] == [body["id"]]
        assert listing.json()["items"][0]["status"] == "completed"
        since = await http.get(
            server.url("/api/v1/meal-logs"),
            params={"updated_since": fetched.json()["updated_at"]},
            headers=bearer("ana"),
        )
        assert since.json() == {"items": []}
        assert (await http.get(server.url("/api/v1/meal-logs"), headers=bearer("ben"))).json() == {
            "items": []
        }


async def test_idempotency_key_returns_the_same_meal_log(
    nursery: trio.Nursery, data_dir: Path, store_backend: str | None
) -> None:
    server = await start_in_process(nursery, data_dir, database_url=store_backend)
    url = server.url("/api/v1/meal-logs/natural")
    payload = {"raw_input": "a banana"}
    async with httpx.AsyncClient() as http:
        first = await http.post(
            url, json=payload, headers={**bearer("ana"), "Idempotency-Key": "k1"}
        )
        again = await http.post(
            url, json=payload, headers={**bearer("ana"), "Idempotency-Key": "k1"}
        )
        other_user = await http.post(
            url, json=payload, headers={**bearer("ben"), "Idempotency-Key": "k1"}
        )
        changed = await http.post(
            url,
            json={"raw_input": "two bananas"},
            headers={**bearer("ana"), "Idempotency-Key": "k1"},
        )
        listing = await http.get(server.url("/api/v1/meal-logs"), headers=bearer("ana"))
    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json() == first.json()
    assert other_user.status_code == 201
    assert other_user.json()["id"] != first.json()["id"]
    assert changed.status_code == 422
    assert changed.json()["error"]["code"] == "idempotency_key_reused"
    assert len(listing.json()["items"]) == 1


async def test_processor_error_marks_failed_and_the_worker_lives_on(
    nursery: trio.Nursery, data_dir: Path, store_backend: str | None
) -> None:
    from tests.processors import ExplodingProcessor

    server = await start_in_process(
        nursery, data_dir, database_url=store_backend, processor=ExplodingProcessor()
    )
    async with (
        open_websocket_url(server.ws_url(token_for("ana"))) as ws,
        httpx.AsyncClient() as http,
    ):
        await next_of(ws, "welcome")
        url = server.url("/api/v1/meal-logs/natural")
        await http.post(url, json={"raw_input": "soup [boom]"}, headers=bearer("ana"))
        failed = await next_of(ws, "meal_log.failed")
        assert failed["seq"] == 1
        assert failed["data"]["status"] == "failed"
        assert "ValueError" in failed["data"]["error"]
        await http.post(url, json={"raw_input": "an apple"}, headers=bearer("ana"))
        completed = await next_of(ws, "meal_log.completed")
        assert completed["seq"] == 2


def test_killed_server_leaves_work_that_the_next_one_finishes_with_next_seqs(
    data_dir: Path,
    store_backend: str | None,
) -> None:
    """SIGKILL with meal logs mid-processing; a new process completes them, seqs 3..5."""
    first = SubprocessServer(
        data_dir, {"FITIQ_PROCESSOR": "tests.processors:holding"}, database_url=store_backend
    )
    held: list[str] = []
    try:
        with httpx.Client() as http:
            url = first.url("/api/v1/meal-logs/natural")
            for text in ("an apple", "a pear"):
                assert (
                    http.post(url, json={"raw_input": text}, headers=bearer("ana")).status_code
                    == 201
                )
            first.wait_for_event("notification.queued", count=2)
            for n in range(3):
                response = http.post(
                    url, json={"raw_input": f"{n + 1} eggs [hold]"}, headers=bearer("ana")
                )
                held.append(response.json()["id"])
            first.wait_for_event("meal_log.created", count=5)
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(10)
    finally:
        first.kill()

    second = SubprocessServer(data_dir, database_url=store_backend)
    try:
        second.wait_for_event("notification.queued", count=3)

        async def resume() -> list[dict[str, Any]]:
            async with open_websocket_url(second.ws_url(token_for("ana"), last_seq=0)) as ws:
                welcome = await next_of(ws, "welcome")
                assert welcome["last_seq"] == 5
                frames = []
                while True:
                    frame = orjson.loads(await ws.get_message())
                    if frame["type"] == "resumed":
                        assert frame == {"type": "resumed", "replayed": 5, "complete": True}
                        return frames
                    frames.append(frame)

        frames = trio.run(resume)
    finally:
        second.kill()
    assert [f["seq"] for f in frames] == [1, 2, 3, 4, 5]
    assert sorted(f["data"]["id"] for f in frames[2:]) == sorted(held)
    assert all(f["data"]["status"] == "completed" for f in frames)
    assert "[hold]" in frames[2]["data"]["raw_input"]


async def test_an_input_with_no_food_fails_with_a_message_the_app_can_show(
    nursery: trio.Nursery, data_dir: Path
) -> None:
    server = await start_in_process(nursery, data_dir)
    async with (
        open_websocket_url(server.ws_url(token_for("ana"))) as ws,
        httpx.AsyncClient() as http,
    ):
        await next_of(ws, "welcome")
        url = server.url("/api/v1/meal-logs/natural")
        created = await http.post(url, json={"raw_input": "zzzz qqqq"}, headers=bearer("ana"))
        assert created.status_code == 201  # accepted; the outcome comes on the socket
        failed = await next_of(ws, "meal_log.failed")
        assert failed["data"]["error"] == (
            "no food was recognized; try naming the foods, e.g. '2 eggs'"
        )
        assert (failed["data"]["items"], failed["data"]["totals"]["calories"]) == ([], 0)


async def test_a_post_whose_client_hangs_up_at_once_is_still_processed(
    nursery: trio.Nursery, data_dir: Path
) -> None:
    """A phone that loses its connection right after sending: every meal log it sent is
    processed now, none left pending for the recovery sweep (its handler is never cancelled)."""
    server = await start_in_process(nursery, data_dir, FITIQ_RECOVERY_INTERVAL="3600")
    body = b'{"raw_input": "2 eggs and a slice of toast"}'
    head = (
        "POST /api/v1/meal-logs/natural HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {token_for('ana')}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    for _ in range(20):
        stream = await trio.open_tcp_stream("127.0.0.1", server.port)
        await stream.send_all(head.encode() + body)
        await stream.aclose()  # gone before the 201
    statuses: list[str] = []
    async with httpx.AsyncClient() as http:
        with trio.move_on_after(10):
            while len(statuses) < 20 or set(statuses) != {"completed"}:
                await trio.sleep(0.05)
                listed = await http.get(server.url("/api/v1/meal-logs"), headers=bearer("ana"))
                statuses = [meal["status"] for meal in listed.json()["items"]]
    assert sorted(statuses) == ["completed"] * 20
