"""Every bad input a client can send gets the contract's JSON error and the right status."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from tests.servers import InProcessServer, start_in_process, token_for

AUTH = {"Authorization": "Bearer " + token_for("ana")}
JSON = {**AUTH, "Content-Type": "application/json"}
POST = "/api/v1/meal-logs/natural"
DEVICE_PREFIX = "/api/v1/devices/"
DEVICE = DEVICE_PREFIX + "ab" * 32
IOS = {"platform": "ios"}

CASES: list[tuple[str, str, str, dict[str, Any], int, str]] = [
    # (id, method, path, request kwargs, status, code)
    ("bad json", "POST", POST, {"content": b"{not json", "headers": JSON}, 400, "invalid_json"),
    ("empty body", "POST", POST, {"content": b"", "headers": JSON}, 400, "invalid_json"),
    ("array body", "POST", POST, {"json": [1], "headers": AUTH}, 422, "validation_error"),
    ("missing raw_input", "POST", POST, {"json": {}, "headers": AUTH}, 422, "validation_error"),
    (
        "raw_input number",
        "POST",
        POST,
        {"json": {"raw_input": 5}, "headers": AUTH},
        422,
        "validation_error",
    ),
    (
        "raw_input null",
        "POST",
        POST,
        {"json": {"raw_input": None}, "headers": AUTH},
        422,
        "validation_error",
    ),
    (
        "raw_input empty",
        "POST",
        POST,
        {"json": {"raw_input": ""}, "headers": AUTH},
        422,
        "validation_error",
    ),
    (
        "raw_input blank",
        "POST",
        POST,
        {"json": {"raw_input": "   "}, "headers": AUTH},
        422,
        "validation_error",
    ),
    (
        "raw_input 2001",
        "POST",
        POST,
        {"json": {"raw_input": "a" * 2001}, "headers": AUTH},
        422,
        "validation_error",
    ),
    (
        "meal_type unknown",
        "POST",
        POST,
        {"json": {"raw_input": "egg", "meal_type": "brunch"}, "headers": AUTH},
        422,
        "validation_error",
    ),
    (
        "meal_type number",
        "POST",
        POST,
        {"json": {"raw_input": "egg", "meal_type": 3}, "headers": AUTH},
        422,
        "validation_error",
    ),
    (
        "logged_at words",
        "POST",
        POST,
        {"json": {"raw_input": "egg", "logged_at": "yesterday"}, "headers": AUTH},
        422,
        "validation_error",
    ),
    (
        "logged_at no zone",
        "POST",
        POST,
        {"json": {"raw_input": "egg", "logged_at": "2026-01-01T10:00:00"}, "headers": AUTH},
        422,
        "validation_error",
    ),
    (
        "logged_at number",
        "POST",
        POST,
        {"json": {"raw_input": "egg", "logged_at": 17}, "headers": AUTH},
        422,
        "validation_error",
    ),
    (
        "body over 64 KiB",
        "POST",
        POST,
        {"json": {"raw_input": "egg", "pad": "x" * 70000}, "headers": AUTH},
        413,
        "payload_too_large",
    ),
    (
        "idempotency key too long",
        "POST",
        POST,
        {"json": {"raw_input": "egg"}, "headers": {**AUTH, "Idempotency-Key": "k" * 300}},
        422,
        "validation_error",
    ),
    ("no token", "POST", POST, {"json": {"raw_input": "egg"}}, 401, "unauthorized"),
    (
        "bad token",
        "POST",
        POST,
        {"json": {"raw_input": "egg"}, "headers": {"Authorization": "Bearer nope"}},
        401,
        "unauthorized",
    ),
    (
        "expired token",
        "GET",
        "/api/v1/meal-logs",
        {"headers": {"Authorization": "Bearer " + token_for("ana", ttl=-60)}},
        401,
        "unauthorized",
    ),
    (
        "basic auth",
        "GET",
        "/api/v1/meal-logs",
        {"headers": {"Authorization": "Basic YTpi"}},
        401,
        "unauthorized",
    ),
    ("limit zero", "GET", "/api/v1/meal-logs?limit=0", {"headers": AUTH}, 422, "validation_error"),
    (
        "limit negative",
        "GET",
        "/api/v1/meal-logs?limit=-1",
        {"headers": AUTH},
        422,
        "validation_error",
    ),
    (
        "limit words",
        "GET",
        "/api/v1/meal-logs?limit=ten",
        {"headers": AUTH},
        422,
        "validation_error",
    ),
    (
        "limit too big",
        "GET",
        "/api/v1/meal-logs?limit=1001",
        {"headers": AUTH},
        422,
        "validation_error",
    ),
    (
        "updated_since bad",
        "GET",
        "/api/v1/meal-logs?updated_since=last-week",
        {"headers": AUTH},
        422,
        "validation_error",
    ),
    ("id not a uuid", "GET", "/api/v1/meal-logs/not-a-uuid", {"headers": AUTH}, 404, "not_found"),
    (
        "id unknown",
        "GET",
        "/api/v1/meal-logs/7f1d5e0e-0000-4000-8000-000000000000",
        {"headers": AUTH},
        404,
        "not_found",
    ),
    ("unknown route", "GET", "/api/v2/nothing", {}, 404, "not_found"),
    ("wrong method", "DELETE", POST, {"headers": AUTH}, 405, "method_not_allowed"),
    ("device no token", "PUT", DEVICE, {"json": IOS}, 401, "unauthorized"),
    ("device bad json", "PUT", DEVICE, {"content": b"{", "headers": JSON}, 400, "invalid_json"),
    ("device no body", "PUT", DEVICE, {"content": b"", "headers": JSON}, 400, "invalid_json"),
    ("device array", "PUT", DEVICE, {"json": [IOS], "headers": AUTH}, 422, "validation_error"),
    ("device no platform", "PUT", DEVICE, {"json": {}, "headers": AUTH}, 422, "validation_error"),
    (
        "device android",
        "PUT",
        DEVICE,
        {"json": {"platform": "android"}, "headers": AUTH},
        422,
        "validation_error",
    ),
    (
        "device environment",
        "PUT",
        DEVICE,
        {"json": {**IOS, "environment": "staging"}, "headers": AUTH},
        422,
        "validation_error",
    ),
    (
        "device token 63 hex",
        "PUT",
        DEVICE_PREFIX + "a" * 63,
        {"json": IOS, "headers": AUTH},
        422,
        "validation_error",
    ),
    (
        "device token 201 hex",
        "PUT",
        DEVICE_PREFIX + "a" * 201,
        {"json": IOS, "headers": AUTH},
        422,
        "validation_error",
    ),
    (
        "device token not hex",
        "PUT",
        DEVICE_PREFIX + "g" * 64,
        {"json": IOS, "headers": AUTH},
        422,
        "validation_error",
    ),
    (
        "device too large",
        "PUT",
        DEVICE,
        {"content": b"x" * 70_000, "headers": JSON},
        413,
        "payload_too_large",
    ),
    ("device delete unknown", "DELETE", DEVICE, {"headers": AUTH}, 404, "not_found"),
    ("device delete not hex", "DELETE", DEVICE_PREFIX + "zz", {"headers": AUTH}, 404, "not_found"),
    ("devices no token", "GET", "/api/v1/devices", {}, 401, "unauthorized"),
    (
        "devices wrong method",
        "POST",
        "/api/v1/devices",
        {"headers": AUTH},
        405,
        "method_not_allowed",
    ),
]


@pytest.fixture
async def server(
    nursery: trio.Nursery, data_dir: Path, store_backend: str | None
) -> InProcessServer:
    return await start_in_process(nursery, data_dir, database_url=store_backend)


@pytest.mark.parametrize(
    ("name", "method", "path", "kwargs", "status", "code"), CASES, ids=[c[0] for c in CASES]
)
async def test_bad_input_gets_the_contract_error(
    server: InProcessServer,
    name: str,
    method: str,
    path: str,
    kwargs: dict[str, Any],
    status: int,
    code: str,
) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.request(method, server.url(path), **kwargs)
        listing = await http.get(server.url("/api/v1/meal-logs"), headers=AUTH)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    assert "\n" not in error["message"] and len(error["message"]) < 200  # one line, no essay
    if name == "unknown route":
        assert error["message"] == f"no route for {method} {path}"
    if name == "wrong method":
        allowed = response.headers["allow"]
        assert error["message"] == f"{method} {path} is not allowed; this path takes {allowed}"
    assert listing.json() == {"items": []}  # a refused request stored nothing


async def test_boundaries_are_accepted(server: InProcessServer) -> None:
    async with httpx.AsyncClient() as http:
        longest = await http.post(server.url(POST), json={"raw_input": "a" * 2000}, headers=AUTH)
        with_time = await http.post(
            server.url(POST),
            json={
                "raw_input": "egg",
                "logged_at": "2026-11-25T08:30:00+01:00",
                "meal_type": "snack",
            },
            headers=AUTH,
        )
        limited = await http.get(server.url("/api/v1/meal-logs?limit=1"), headers=AUTH)
    assert longest.status_code == 201
    assert with_time.status_code == 201
    assert with_time.json()["logged_at"] == "2026-11-25T07:30:00.000000Z"
    assert len(limited.json()["items"]) == 1
