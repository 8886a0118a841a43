"""Push end to end: a real server (both stores) pushes queued notifications to a real HTTP/2 +
TLS stand-in for APNs (tests/apns_standin.py), which verifies the provider token's ES256
signature with the key's public half and every header, and answers what the test scripts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import structlog
import trio
from trio_websocket import open_websocket_url

from tests.apns_standin import (
    HANG,
    TEAM_ID,
    WAIT,
    ApnsKeys,
    ApnsStandIn,
    make_keys,
    push_env,
    running_standin,
)
from tests.servers import InProcessServer, scraped, start_in_process, token_for

PHONE = "a1" * 32
IPAD = "b2" * 50  # 100 hex digits: tokens are not all 64
SETTLE = 0.5  # seconds a push that should not come is given to come anyway


def bearer(user: str) -> dict[str, str]:
    return {"Authorization": "Bearer " + token_for(user)}


@pytest.fixture
def keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ApnsKeys:
    made = make_keys(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(made.ca_file))  # httpx trusts the stand-in's CA
    return made


@pytest.fixture
async def production(keys: ApnsKeys, tmp_path: Path) -> AsyncIterator[ApnsStandIn]:
    async with running_standin(keys, tmp_path / "production") as standin:
        yield standin
        assert standin.problems == []


@pytest.fixture
async def sandbox(keys: ApnsKeys, tmp_path: Path) -> AsyncIterator[ApnsStandIn]:
    async with running_standin(keys, tmp_path / "sandbox") as standin:
        yield standin
        assert standin.problems == []


#: Starts a server pushing to the two stand-ins: `await start(store_backend, **env overrides)`.
Starter = Callable[..., Awaitable[InProcessServer]]


@pytest.fixture
def start(
    nursery: trio.Nursery,
    data_dir: Path,
    keys: ApnsKeys,
    production: ApnsStandIn,
    sandbox: ApnsStandIn,
) -> Starter:
    async def start_server(store_backend: str | None = None, **overrides: str) -> InProcessServer:
        env = {**push_env(keys, production, sandbox), **overrides}
        return await start_in_process(nursery, data_dir, database_url=store_backend, **env)

    return start_server


async def register(
    http: httpx.AsyncClient, user: str, device: str, environment: str = "production"
) -> None:
    body = {"platform": "ios", "environment": environment}
    response = await http.put(f"/api/v1/devices/{device}", json=body, headers=bearer(user))
    assert response.status_code in (200, 201), response.text


async def log_meal(http: httpx.AsyncClient, user: str, text: str = "2 eggs and toast") -> str:
    response = await http.post(
        "/api/v1/meal-logs/natural", json={"raw_input": text}, headers=bearer(user)
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def wait_for_event(
    logs: list[dict[str, Any]], name: str, count: int = 1
) -> list[dict[str, Any]]:
    with trio.fail_after(WAIT):
        while len(found := [e for e in logs if e["event"] == name]) < count:
            await trio.sleep(0.01)
    return found


async def push_counts(server: InProcessServer) -> dict[str, float]:
    """fitiq_push_total by outcome, read from GET /metrics."""
    return {
        outcome: await scraped(server, "fitiq_push_total", outcome=outcome)
        for outcome in ("sent", "failed", "removed", "dropped")
    }


def assert_no_secret_logged(logs: list[dict[str, Any]], standins: list[ApnsStandIn]) -> None:
    secrets = {PHONE, IPAD} | {r.provider_token for s in standins for r in s.received}
    for event in logs:
        text = orjson.dumps(event, default=str).decode()
        assert not any(secret in text for secret in secrets), event


async def test_a_queued_notification_is_pushed_to_each_device_with_every_header(
    start: Starter,
    production: ApnsStandIn,
    sandbox: ApnsStandIn,
    store_backend: str | None,
) -> None:
    with structlog.testing.capture_logs() as logs:
        server = await start(store_backend)
        async with httpx.AsyncClient(base_url=server.url("")) as http:
            await register(http, "ana", PHONE)
            await register(http, "ana", IPAD, "sandbox")
            await register(http, "bob", "c3" * 32)  # another user's device gets nothing
            meal_id = await log_meal(http, "ana")
            await production.wait_for(1)
            await sandbox.wait_for(1)
            await wait_for_event(logs, "push.sent", 2)
    queued = [e for e in logs if e["event"] == "notification.queued"]
    assert [(e["user_id"], e["seq"]) for e in queued] == [("ana", 1)]
    (pushed,) = production.received
    assert pushed.device_token == PHONE
    assert pushed.http_version == "2"
    assert pushed.claims["iss"] == TEAM_ID
    assert pushed.body == {
        "aps": {
            "alert": {"title": "Meal logged", "body": pushed.body["aps"]["alert"]["body"]},
            "thread-id": "meal-logs",
        },
        "seq": 1,
        "meal_log_id": meal_id,
        "type": "meal_log.completed",
    }
    assert pushed.body["aps"]["alert"]["body"].startswith("2 eggs and toast — ")
    assert pushed.body["aps"]["alert"]["body"].endswith(" kcal")
    assert [r.device_token for r in sandbox.received] == [IPAD]
    assert sandbox.received[0].body == pushed.body
    sent = [e for e in logs if e["event"] == "push.sent"]
    assert sorted(e["device"] for e in sent) == sorted([PHONE[-8:], IPAD[-8:]])
    assert all((e["user_id"], e["seq"], e["attempts"]) == ("ana", 1, 1) for e in sent)
    assert (await push_counts(server)) == {"sent": 2, "failed": 0, "removed": 0, "dropped": 0}
    await trio.sleep(SETTLE)
    assert len(production.received) + len(sandbox.received) == 2  # one per device, no more
    assert_no_secret_logged(logs, [production, sandbox])
    metrics = (await httpx.AsyncClient().get(server.url("/metrics"))).text
    assert 'fitiq_push_total{outcome="sent"} 2.0' in metrics


@pytest.mark.parametrize(
    ("answer", "reason"),
    [((410, "Unregistered"), "Unregistered"), ((400, "BadDeviceToken"), "BadDeviceToken")],
)
async def test_a_dead_token_removes_the_device(
    start: Starter,
    production: ApnsStandIn,
    answer: tuple[int, str],
    reason: str,
) -> None:
    production.answer(PHONE, answer)
    with structlog.testing.capture_logs() as logs:
        server = await start()
        async with httpx.AsyncClient(base_url=server.url("")) as http:
            await register(http, "ana", PHONE)
            await register(http, "ana", IPAD)
            await log_meal(http, "ana")
            (removed,) = await wait_for_event(logs, "device.removed")
            await wait_for_event(logs, "push.sent")
            devices = (await http.get("/api/v1/devices", headers=bearer("ana"))).json()["items"]
            assert [d["device_token"] for d in devices] == [IPAD]  # the other device stays
            await log_meal(http, "ana", "an apple")
            await wait_for_event(logs, "push.sent", 2)
    assert (removed["user_id"], removed["device"], removed["reason"]) == ("ana", PHONE[-8:], reason)
    tokens = [r.device_token for r in production.received]
    assert sorted(tokens) == [PHONE, IPAD, IPAD]  # PHONE answered dead once, never pushed again
    assert (await push_counts(server)) == {"sent": 2, "failed": 0, "removed": 1, "dropped": 0}
    assert_no_secret_logged(logs, [production])


async def test_an_expired_provider_token_is_renewed_and_retried_once(
    start: Starter,
    production: ApnsStandIn,
) -> None:
    production.answer(PHONE, (403, "ExpiredProviderToken"))
    with structlog.testing.capture_logs() as logs:
        server = await start()
        async with httpx.AsyncClient(base_url=server.url("")) as http:
            await register(http, "ana", PHONE)
            await log_meal(http, "ana")
            (sent,) = await wait_for_event(logs, "push.sent")
            production.answer(PHONE, (403, "ExpiredProviderToken"), (403, "ExpiredProviderToken"))
            await log_meal(http, "ana", "an apple")
            (failed,) = await wait_for_event(logs, "push.failed")
    first, renewed, once, twice = production.received
    assert first.provider_token != renewed.provider_token  # a new signature, not the same token
    assert renewed.provider_token == once.provider_token  # cached, not signed per push
    assert twice.provider_token != once.provider_token  # renewed once more, then no third try
    assert sent["attempts"] == 2
    assert (failed["reason"], failed["status"], failed["attempts"]) == (
        "ExpiredProviderToken",
        403,
        2,
    )
    assert (await push_counts(server))["failed"] == 1


@pytest.mark.parametrize(
    "answer", [(429, "TooManyRequests"), (500, "InternalServerError"), (503, "ServiceUnavailable")]
)
async def test_throttling_and_server_errors_are_retried(
    start: Starter,
    production: ApnsStandIn,
    answer: tuple[int, str],
) -> None:
    production.answer(PHONE, answer)
    with structlog.testing.capture_logs() as logs:
        server = await start()
        async with httpx.AsyncClient(base_url=server.url("")) as http:
            await register(http, "ana", PHONE)
            await log_meal(http, "ana")
            (sent,) = await wait_for_event(logs, "push.sent")
    assert sent["attempts"] == 2
    assert len(production.received) == 2
    assert production.received[1].at - production.received[0].at >= 0.5  # backed off
    assert (await push_counts(server)) == {"sent": 1, "failed": 0, "removed": 0, "dropped": 0}


async def test_a_push_that_keeps_failing_gives_up_and_the_phone_still_resumes_it(
    start: Starter,
    production: ApnsStandIn,
    store_backend: str | None,
) -> None:
    production.answer(PHONE, *[(500, "InternalServerError")] * 10)
    with structlog.testing.capture_logs() as logs:
        server = await start(store_backend, FITIQ_PUSH_RETRY_TIMEOUT="2")
        async with httpx.AsyncClient(base_url=server.url("")) as http:
            await register(http, "ana", PHONE)
            meal_id = await log_meal(http, "ana")
            (failed,) = await wait_for_event(logs, "push.failed")
    assert (failed["reason"], failed["status"], failed["device"]) == (
        "InternalServerError",
        500,
        PHONE[-8:],
    )
    assert 2 <= failed["attempts"] <= 3  # 0.5-1 s, then 1-2 s: no attempt after 2 s
    async with open_websocket_url(server.ws_url(token_for("ana"), last_seq=0)) as ws:
        welcome = orjson.loads(await ws.get_message())
        replayed = orjson.loads(await ws.get_message())
    assert welcome["last_seq"] == 1
    assert (replayed["seq"], replayed["data"]["id"]) == (1, meal_id)
    assert (await push_counts(server))["failed"] == 1


async def test_a_gateway_that_hangs_times_out_and_the_next_push_goes_through(
    start: Starter,
    production: ApnsStandIn,
) -> None:
    production.answer(PHONE, HANG)
    with structlog.testing.capture_logs() as logs:
        server = await start(
            FITIQ_PUSH_TIMEOUT="0.5",
            FITIQ_PUSH_RETRY_TIMEOUT="0",
        )
        async with httpx.AsyncClient(base_url=server.url("")) as http:
            await register(http, "ana", PHONE)
            started = trio.current_time()
            await log_meal(http, "ana")
            (failed,) = await wait_for_event(logs, "push.failed")
            waited = trio.current_time() - started
            await log_meal(http, "ana", "an apple")
            (sent,) = await wait_for_event(logs, "push.sent")
    assert (failed["reason"], failed["status"], failed["attempts"]) == ("timeout", None, 1)
    assert waited >= 0.5
    assert sent["seq"] == 2
    assert production.arrived == 2
    assert (await push_counts(server)) == {"sent": 1, "failed": 1, "removed": 0, "dropped": 0}


async def test_a_user_with_a_socket_open_gets_no_push(
    start: Starter,
    production: ApnsStandIn,
    store_backend: str | None,
) -> None:
    with structlog.testing.capture_logs() as logs:
        server = await start(store_backend)
        async with httpx.AsyncClient(base_url=server.url("")) as http:
            await register(http, "ana", PHONE)
            async with open_websocket_url(server.ws_url(token_for("ana"))) as ws:
                await ws.get_message()  # welcome
                await log_meal(http, "ana")
                while orjson.loads(await ws.get_message())["type"] != "meal_log.completed":
                    pass
                await trio.sleep(SETTLE)
                assert production.arrived == 0
            await wait_for_event(logs, "ws.disconnected")
            await log_meal(http, "ana", "an apple")  # the control: now no socket, one push
            await production.wait_for(1)
    assert [e["seq"] for e in logs if e["event"] == "notification.delivered"] == [1]
    assert [r.body["seq"] for r in production.received] == [2]


async def test_push_off_by_default_still_registers_devices(
    nursery: trio.Nursery, data_dir: Path
) -> None:
    server = await start_in_process(nursery, data_dir)
    assert server.services.push is None
    async with httpx.AsyncClient(base_url=server.url("")) as http:
        await register(http, "ana", PHONE)
        await log_meal(http, "ana")
