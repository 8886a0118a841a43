"""Live traffic of a real server validated against both API descriptions, so neither can drift.

REST: every route is called until it has answered every status `/openapi.json` documents for it
(and nothing else); each body is validated against that status's schema. WebSocket: every
server-to-client message kind of `docs/asyncapi.yaml` is provoked for real and validated; so are
the handshake refusals and the close codes. Validation is strict: a field the code sends but the
description does not name fails too (the descriptions themselves stay open for clients).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import httpx
import jsonschema
import orjson
import pytest
import trio
from trio_websocket import (
    ConnectionClosed,
    ConnectionRejected,
    WebSocketConnection,
    open_websocket_url,
)

from fitiq_rt.meals.store import StoreUnavailable
from fitiq_rt.realtime import closing
from tests.descriptions import (
    ASYNCAPI,
    CLIENT_SCHEMAS,
    CLOSE_CODES,
    REFUSALS,
    SERVER_SCHEMAS,
    WS_EXTRA,
    validate,
    validate_frame,
)
from tests.processors import ExplodingProcessor
from tests.servers import InProcessServer, start_in_process, token_for


class RestRecorder:
    """Validates each live response against /openapi.json and remembers which statuses it saw."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.seen: set[tuple[str, str, int]] = set()

    def documented(self) -> set[tuple[str, str, int]]:
        return {
            (method.upper(), path, int(status))
            for path, item in self.doc["paths"].items()
            for method, operation in item.items()
            for status in operation["responses"]
        }

    def check(self, template: str, response: httpx.Response) -> httpx.Response:
        method = response.request.method
        operation = self.doc["paths"][template][method.lower()]
        documented = operation["responses"].get(str(response.status_code))
        assert documented is not None, f"{method} {template}: undocumented {response.status_code}"
        if "content" not in documented:  # documented without a body (204)
            assert response.content == b"", f"{method} {template}: a body where none is described"
            self.seen.add((method, template, response.status_code))
            return response
        media = response.headers["content-type"].split(";")[0]
        assert media in documented["content"], f"{method} {template}: {media}"
        if media == "application/json":
            validate(response.json(), documented["content"][media]["schema"], self.doc)
        self.seen.add((method, template, response.status_code))
        return response


# ------------------------------------------------------------------------------------ REST

ONE = "/api/v1/meal-logs/{meal_log_id}"
LIST = "/api/v1/meal-logs"
CREATE = "/api/v1/meal-logs/natural"
DEBUG = "/api/v1/debug/websocket/connections"
DEVICE = "/api/v1/devices/{device_token}"
DEVICES = "/api/v1/devices"


@pytest.fixture
async def server(
    nursery: trio.Nursery, data_dir: Path, store_backend: str | None
) -> InProcessServer:
    return await start_in_process(
        nursery,
        data_dir,
        processor=ExplodingProcessor(),
        database_url=store_backend,
        FITIQ_PING_INTERVAL="0.3",
        FITIQ_IDLE_TIMEOUT="1.5",
        FITIQ_MAX_CONNECTIONS_PER_USER="3",
        FITIQ_MAX_MESSAGE_BYTES="4096",
    )


@pytest.fixture
def store_down(server: InProcessServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A switch that makes every meal-log query of the live store raise StoreUnavailable."""

    async def unavailable(*args: Any, **kwargs: Any) -> Any:
        raise StoreUnavailable("test: the database is down")

    def switch() -> None:
        queries = ("create_meal_log", "get_meal_log", "list_meal_logs")
        for name in (*queries, "put_device", "delete_device", "list_devices"):
            monkeypatch.setattr(server.services.store, name, unavailable)

    yield switch
    monkeypatch.undo()


async def test_every_documented_rest_response_is_real_and_matches(
    server: InProcessServer, store_down: Any
) -> None:
    auth = {"Authorization": "Bearer " + token_for("ana")}
    admin = {"Authorization": "Bearer " + token_for("ops", admin=True)}
    bad = {"Authorization": "Bearer not-a-token"}
    async with httpx.AsyncClient(base_url=server.url("")) as http:
        openapi = await http.get("/openapi.json")
        assert openapi.status_code == 200
        doc = openapi.json()
        assert doc["openapi"].startswith("3.1")
        rest = RestRecorder(doc)
        check = rest.check

        created = check(CREATE, await http.post(CREATE, json={"raw_input": "2 eggs"}, headers=auth))
        assert created.status_code == 201
        meal_id = created.json()["id"]
        keyed = {**auth, "Idempotency-Key": "k1"}
        first = check(CREATE, await http.post(CREATE, json={"raw_input": "tea"}, headers=keyed))
        again = check(CREATE, await http.post(CREATE, json={"raw_input": "tea"}, headers=keyed))
        assert (first.status_code, again.status_code) == (201, 200)
        reused = await http.post(CREATE, json={"raw_input": "coffee"}, headers=keyed)
        assert check(CREATE, reused).json()["error"]["code"] == "idempotency_key_reused"
        check(CREATE, await http.post(CREATE, json={"raw_input": ""}, headers=auth))
        check(CREATE, await http.post(CREATE, content=b"{nope", headers=auth))
        check(CREATE, await http.post(CREATE, json={"raw_input": "egg"}, headers=bad))
        check(CREATE, await http.post(CREATE, content=b"x" * 70_000, headers=auth))

        check(ONE, await http.get(f"/api/v1/meal-logs/{meal_id}", headers=auth))
        check(ONE, await http.get(f"/api/v1/meal-logs/{meal_id}", headers=bad))
        other = {"Authorization": "Bearer " + token_for("bob")}
        check(ONE, await http.get(f"/api/v1/meal-logs/{meal_id}", headers=other))

        listing = check(LIST, await http.get(LIST, params={"limit": 10}, headers=auth))
        assert meal_id in [item["id"] for item in listing.json()["items"]]
        check(LIST, await http.get(LIST, headers=bad))
        check(LIST, await http.get(LIST, params={"limit": 0}, headers=auth))

        device = "/api/v1/devices/" + "ab" * 32
        ios = {"platform": "ios"}
        assert check(DEVICE, await http.put(device, json=ios, headers=auth)).status_code == 201
        assert check(DEVICE, await http.put(device, json=ios, headers=auth)).status_code == 200
        check(DEVICE, await http.put(device, json=ios, headers=bad))
        check(DEVICE, await http.put(device, content=b"{nope", headers=auth))
        check(DEVICE, await http.put(device, json={"platform": "android"}, headers=auth))
        check(DEVICE, await http.put(device, content=b"x" * 70_000, headers=auth))
        assert len(check(DEVICES, await http.get(DEVICES, headers=auth)).json()["items"]) == 1
        check(DEVICES, await http.get(DEVICES, headers=bad))
        assert check(DEVICE, await http.delete(device, headers=auth)).status_code == 204
        check(DEVICE, await http.delete(device, headers=auth))
        check(DEVICE, await http.delete(device, headers=bad))

        check("/healthz", await http.get("/healthz"))
        check("/readyz", await http.get("/readyz"))
        check("/metrics", await http.get("/metrics"))
        check(DEBUG, await http.get(DEBUG, headers=admin))
        check(DEBUG, await http.get(DEBUG, headers=auth))
        check(DEBUG, await http.get(DEBUG))

        pad = {"X-Pad": "p" * (server.settings.max_header_bytes + 1)}
        for path in (CREATE, ONE, LIST, "/healthz", "/readyz", "/metrics", DEBUG, DEVICE, DEVICES):
            method = {CREATE: "POST", DEVICE: "PUT"}.get(path, "GET")
            url = path.replace("{meal_log_id}", meal_id).replace("{device_token}", "ab" * 32)
            check(path, await http.request(method, url, headers={**auth, **pad}))
        check(DEVICE, await http.delete(device, headers={**auth, **pad}))

        store_down()
        check(CREATE, await http.post(CREATE, json={"raw_input": "egg"}, headers=auth))
        check(ONE, await http.get(f"/api/v1/meal-logs/{meal_id}", headers=auth))
        check(LIST, await http.get(LIST, headers=auth))
        check(DEVICE, await http.put(device, json=ios, headers=auth))
        check(DEVICE, await http.delete(device, headers=auth))
        check(DEVICES, await http.get(DEVICES, headers=auth))
        server.services.start_draining()  # what the first SIGTERM does; last, as it is for good
        draining = check("/healthz", await http.get("/healthz"))
        assert (draining.status_code, draining.json()["ready"]) == (200, False)  # still alive
        check("/readyz", await http.get("/readyz"))

    assert rest.seen == rest.documented(), (
        f"documented but never seen: {sorted(rest.documented() - rest.seen)}"
    )


async def test_openapi_describes_bearer_auth_idempotency_and_bounds(
    server: InProcessServer,
) -> None:
    async with httpx.AsyncClient(base_url=server.url("")) as http:
        doc = (await http.get("/openapi.json")).json()
    assert doc["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }
    paths = doc["paths"]
    assert paths["/healthz"]["get"]["security"] == []
    assert paths["/readyz"]["get"]["security"] == []
    assert paths["/metrics"]["get"]["security"] == []
    assert doc["security"] == [{"bearer": []}]
    create = paths[CREATE]["post"]
    assert create["requestBody"]["required"] is True
    body = create["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"]["raw_input"]["maxLength"] == 2000
    (key,) = [p for p in create["parameters"] if p["in"] == "header"]
    assert (key["name"], key["schema"]["maxLength"]) == ("Idempotency-Key", 255)
    query = {p["name"]: p["schema"] for p in paths[LIST]["get"]["parameters"]}
    assert (query["limit"]["minimum"], query["limit"]["maximum"]) == (1, 1000)
    assert query["updated_since"]["format"] == "date-time"
    for path, item in paths.items():
        for operation in item.values():
            for status, response in operation["responses"].items():
                if int(status) >= 400 and path != "/readyz":
                    schema = response["content"]["application/json"]["schema"]
                    assert schema["required"] == ["error"], (path, status)


async def test_both_descriptions_share_the_meal_log_shape(server: InProcessServer) -> None:
    async with httpx.AsyncClient(base_url=server.url("")) as http:
        doc = (await http.get("/openapi.json")).json()
    rest_meal = doc["paths"][ONE]["get"]["responses"]["200"]["content"]["application/json"]
    pairs = {
        "MealLog": rest_meal["schema"],
        "FoodItem": doc["components"]["schemas"]["FoodItem"],
        "Totals": doc["components"]["schemas"]["Totals"],
    }
    for name, rest_schema in pairs.items():
        ws_schema = ASYNCAPI["components"]["schemas"][name]
        assert set(ws_schema["properties"]) == set(rest_schema["properties"]), name
        assert set(ws_schema["required"]) == set(rest_schema["required"]), name


# ------------------------------------------------------------------------------- WebSocket


class FrameLog:
    """Reads server frames, validating each one and counting the kinds seen."""

    def __init__(self) -> None:
        self.kinds: set[str] = set()
        self.close_codes: set[int] = set()

    async def next(self, ws: WebSocketConnection, *, skip_pings: bool = True) -> dict[str, Any]:
        while True:
            with trio.fail_after(10):
                frame = orjson.loads(await ws.get_message())
            self.kinds.add(validate_frame(frame))
            if not (skip_pings and frame["type"] == "ping"):
                return frame

    async def until(self, ws: WebSocketConnection, kind: str) -> list[dict[str, Any]]:
        frames = [await self.next(ws)]
        while frames[-1]["type"] != kind:
            frames.append(await self.next(ws))
        return frames

    async def closed(self, ws: WebSocketConnection) -> int:
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await self.next(ws)
        code = closed.value.reason.code
        assert code in CLOSE_CODES, f"undocumented close code {code}"
        self.close_codes.add(code)
        return code


def client_message(payload: dict[str, Any]) -> str:
    """A client frame, checked against the description of what the server accepts."""
    validate(payload, CLIENT_SCHEMAS[payload["type"]], ASYNCAPI, jsonschema.Draft7Validator)
    return orjson.dumps(payload).decode()


async def test_every_server_frame_is_real_and_matches_asyncapi(server: InProcessServer) -> None:
    frames = FrameLog()
    auth = {"Authorization": "Bearer " + token_for("walt")}
    async with (
        httpx.AsyncClient(base_url=server.url(""), headers=auth) as http,
        open_websocket_url(server.ws_url(token_for("walt"))) as ws,
    ):
        welcome = await frames.next(ws)
        assert welcome["type"] == "welcome"
        for payload in ({"type": "pong"}, {"type": "ack", "seq": 0}):
            await ws.send_message(client_message(payload))
        await ws.send_message(client_message({"type": "ping"}))
        assert (await frames.next(ws))["type"] == "pong"  # the pong and ack got no error
        for text, code in (
            ("{nope", "invalid_json"),
            ("[1]", "invalid_message"),
            ('{"type":"ack","seq":"1"}', "invalid_message"),
            ('{"type":"dance"}', "unknown_type"),
        ):
            await ws.send_message(text)
            error = await frames.next(ws)
            assert (error["type"], error["code"]) == ("error", code)
        await frames.next(ws, skip_pings=False)  # within 0.3 s: the server's heartbeat
        assert "ping" in frames.kinds

        await http.post(CREATE, json={"raw_input": "2 eggs and toast"})
        completed = await frames.next(ws)
        await ws.send_message(client_message({"type": "ack", "seq": completed["seq"]}))
        await http.post(CREATE, json={"raw_input": "[boom] toast"})
        failed = await frames.next(ws)
        assert (completed["type"], failed["type"]) == ("meal_log.completed", "meal_log.failed")
        assert failed["data"]["status"] == "failed" and failed["data"]["error"]

        await ws.send_message(client_message({"type": "resume", "last_seq": 0}))
        resumed = await frames.next(ws)
        assert resumed == {"type": "resumed", "replayed": 0, "complete": True}

    # A token shorter than the 60 s warning is warned about at once; a refresh answers.
    async with open_websocket_url(server.ws_url(token_for("walt", ttl=30))) as short:
        assert (await frames.next(short))["type"] == "welcome"
        assert (await frames.next(short))["type"] == "token_expiring"
        fresh = client_message({"type": "refresh", "token": token_for("walt")})
        await short.send_message(fresh)
        assert (await frames.next(short))["type"] == "refreshed"
        for token, code in (("x", "invalid_token"), (token_for("ivy"), "token_user_mismatch")):
            await short.send_message(client_message({"type": "refresh", "token": token}))
            error = await frames.next(short)
            assert (error["type"], error["code"]) == ("error", code)

    async with open_websocket_url(server.ws_url(token_for("walt"), last_seq=0)) as replay:
        replayed = await frames.until(replay, "resumed")
        assert [f["type"] for f in replayed] == [
            "welcome",
            "meal_log.completed",
            "meal_log.failed",
            "resumed",
        ]
        assert replayed[-1]["replayed"] == 2

    assert frames.kinds == set(SERVER_SCHEMAS), (
        f"never provoked: {set(SERVER_SCHEMAS) - frames.kinds}"
    )


async def test_close_codes_are_documented(server: InProcessServer) -> None:
    frames = FrameLog()
    cases: list[tuple[str, Any, int]] = [
        ("binary", b"\x01", 1003),
        ("too big", '{"type":"ping","pad":"' + "x" * 5000 + '"}', 1009),
        ("flood", '{"type":"pong"}', 1008),
        ("silent", None, 4008),
    ]
    for user, message, expected in cases:
        async with open_websocket_url(server.ws_url(token_for(user))) as ws:
            await frames.next(ws)
            try:
                for _ in range(200 if user == "flood" else 0 if message is None else 1):
                    await ws.send_message(message)
            except ConnectionClosed:
                pass  # the flood was cut off mid-way: the close code is read below
            assert await frames.closed(ws) == expected, user

    async with open_websocket_url(server.ws_url(token_for("brief", ttl=1.2))) as ws:
        await frames.next(ws)
        assert await frames.closed(ws) == 4001

    async with open_websocket_url(server.ws_url(token_for("polite"))) as ws:
        await frames.next(ws)
        await ws.aclose(1000)
    assert ws.closed is not None and ws.closed.code == 1000

    async with open_websocket_url(server.ws_url(token_for("last"))) as ws:
        await frames.next(ws)
        server.stop.set()
        assert await frames.closed(ws) == 1001

    # Elsewhere: 4029 in test_delivery, 1002 and 1007 in test_rfc6455; 1011 only on a server bug.
    assert frames.close_codes | {1000} >= CLOSE_CODES - {4029, 1002, 1007, 1011}


async def test_handshake_refusals_are_documented(server: InProcessServer) -> None:
    seen: set[int] = set()
    url = server.ws_url

    async def refused(target: str, **kwargs: Any) -> None:
        with pytest.raises(ConnectionRejected) as rejected:
            async with open_websocket_url(target, **kwargs):
                pass
        status = rejected.value.status_code
        assert status in REFUSALS, f"undocumented refusal {status}"
        body = orjson.loads(rejected.value.body)
        validate(
            body,
            ASYNCAPI["components"]["schemas"]["ErrorBody"],
            ASYNCAPI,
            jsonschema.Draft7Validator,
        )
        assert body["error"]["code"] == REFUSALS[status], (status, body)
        seen.add(status)

    await refused(url())
    await refused(url(token_for("zed"), last_seq="abc"))
    await refused(
        url(token_for("zed")), extra_headers=[("X-Pad", "p" * server.settings.max_header_bytes)]
    )
    async with (
        open_websocket_url(url(token_for("zed"))),
        open_websocket_url(url(token_for("zed"))),
        open_websocket_url(url(token_for("zed"))),
    ):
        await refused(url(token_for("zed")))
    async with httpx.AsyncClient() as http:  # no upgrade at all
        plain = await http.get(server.url("/ws/meal-logs"), headers={"Connection": "close"})
    assert (plain.status_code, plain.headers["upgrade"]) == (426, "websocket")
    assert plain.json()["error"]["code"] == REFUSALS[426]
    seen.add(426)
    server.services.start_draining()  # what the first SIGTERM does; last, as it is for good
    await refused(url(token_for("zed")))
    assert seen == set(REFUSALS)


def test_documented_close_codes_match_the_code() -> None:
    """The description lists exactly the close table's rules: code, reason, text and advice."""
    documented = [
        (e["code"], e["reason"], e["text"], e["meaning"], e["client"])
        for e in WS_EXTRA["x-close-codes"]
    ]
    assert documented == [attrs.astuple(rule) for rule in closing.RULES]
