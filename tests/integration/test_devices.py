"""`/api/v1/devices` on a real server and both stores: register, move, forget, list, and the
access log that never carries a device token whole."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import structlog
import trio

from fitiq_rt.meals.sqlite_store import SqliteStore
from tests.servers import InProcessServer, start_in_process, token_for

ANA = {"Authorization": "Bearer " + token_for("ana")}
BOB = {"Authorization": "Bearer " + token_for("bob")}
TOKEN = "0123456789ABCDEF" * 4  # 64 hex digits, upper case as some clients send it
LOWER = TOKEN.lower()
OTHER = "f" * 200


@pytest.fixture
async def server(
    nursery: trio.Nursery, data_dir: Path, store_backend: str | None
) -> InProcessServer:
    return await start_in_process(nursery, data_dir, database_url=store_backend)


async def test_register_update_move_and_forget(server: InProcessServer) -> None:
    async with httpx.AsyncClient(base_url=server.url("")) as http:
        put = await http.put(f"/api/v1/devices/{TOKEN}", json={"platform": "ios"}, headers=ANA)
        assert put.status_code == 201, put.text
        first = put.json()
        assert first["device_token"] == LOWER
        assert (first["platform"], first["environment"]) == ("ios", "production")

        again = await http.put(
            f"/api/v1/devices/{LOWER}",
            json={"platform": "ios", "environment": "sandbox"},
            headers=ANA,
        )
        assert again.status_code == 200
        assert again.json()["environment"] == "sandbox"
        assert again.json()["created_at"] == first["created_at"]
        assert again.json()["updated_at"] > first["updated_at"]

        second = await http.put(f"/api/v1/devices/{OTHER}", json={"platform": "ios"}, headers=ANA)
        assert second.status_code == 201
        listed = (await http.get("/api/v1/devices", headers=ANA)).json()["items"]
        assert [d["device_token"] for d in listed] == [LOWER, OTHER]  # several devices per user

        moved = await http.put(f"/api/v1/devices/{TOKEN}", json={"platform": "ios"}, headers=BOB)
        assert moved.status_code == 201  # new to bob
        assert moved.json()["environment"] == "production"
        ana_left = (await http.get("/api/v1/devices", headers=ANA)).json()["items"]
        assert [d["device_token"] for d in ana_left] == [OTHER]  # ana no longer has it
        bob_has = (await http.get("/api/v1/devices", headers=BOB)).json()["items"]
        assert [d["device_token"] for d in bob_has] == [LOWER]

        assert (await http.delete(f"/api/v1/devices/{TOKEN}", headers=ANA)).status_code == 404
        gone = await http.delete(f"/api/v1/devices/{TOKEN}", headers=BOB)
        assert (gone.status_code, gone.content) == (204, b"")
        assert (await http.delete(f"/api/v1/devices/{TOKEN}", headers=BOB)).status_code == 404
        assert (await http.get("/api/v1/devices", headers=BOB)).json() == {"items": []}


async def test_access_log_keeps_only_the_last_eight_characters(server: InProcessServer) -> None:
    with structlog.testing.capture_logs() as logs:
        async with httpx.AsyncClient(base_url=server.url("")) as http:
            await http.put(f"/api/v1/devices/{TOKEN}", json={"platform": "ios"}, headers=ANA)
            await http.delete(f"/api/v1/devices/{TOKEN}?token=x", headers=ANA)
            await http.put("/api/v1/devices/abc", json={"platform": "ios"}, headers=ANA)
        with trio.fail_after(5):  # the access line follows the response's last byte
            while sum(e["event"] == "http.request" for e in logs) < 3:
                await trio.sleep(0.01)
    paths = [e["path"] for e in logs if e["event"] == "http.request"]
    assert paths == [
        f"/api/v1/devices/...{TOKEN[-8:]}",
        f"/api/v1/devices/...{TOKEN[-8:]}?token=[REDACTED]",
        "/api/v1/devices/abc",
    ]
    for event in logs:
        assert not any(TOKEN in str(v) or LOWER in str(v) for v in event.values()), event
    registered = [e for e in logs if e["event"] == "device.registered"]
    assert [(e["user_id"], e["device"]) for e in registered] == [("ana", LOWER[-8:])]


async def test_sqlite_schema_1_database_migrates_to_devices(tmp_path: Path) -> None:
    """A database written by the previous release (schema 1) gains the devices table."""
    import sqlite3

    from fitiq_rt.meals import sqlite_store

    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for statement in sqlite_store.MIGRATIONS[1].split(";"):
        if statement.strip():
            db.execute(statement)
    db.execute("INSERT INTO schema_version VALUES (1)")
    db.close()
    store = SqliteStore(path)
    await store.open()
    try:
        device, created = await store.put_device("ana", LOWER, "ios", "sandbox")
        assert created and device.environment == "sandbox"
        assert await store.list_devices("ana") == [device]
    finally:
        await store.close()
    check = sqlite3.connect(path)
    assert check.execute("SELECT MAX(version) FROM schema_version").fetchone() == (2,)
