"""Observability over real servers: a golden log and its report, the access log, `/metrics`.

One scripted session drives a real server (sockets, REST, refusals, an idle close, a resume,
a SIGTERM); the tests then check that what the server wrote (log lines, Prometheus text) and
what `fitiq-rt logs` computes from it equal, exactly, what the script did.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families
from trio_websocket import (
    ConnectionClosed,
    ConnectionRejected,
    WebSocketConnection,
    open_websocket_url,
)

from tests.servers import REPO_ROOT, SubprocessServer, start_in_process, token_for

FAST = {
    "FITIQ_PING_INTERVAL": "0.3",
    "FITIQ_IDLE_TIMEOUT": "1.0",
    "FITIQ_MAX_CONNECTIONS_PER_USER": "1",
}
ANA, BEN, CHLOE, DAN = "obs-ana", "obs-ben", "obs-chloe", "obs-dan"  # see `scripted_session`
MEAL = "/api/v1/meal-logs/natural"
DEADLINE = 10.0


# --------------------------------------------------------------------------------------------
# The script
# --------------------------------------------------------------------------------------------


class Peer:
    """A well-behaved client socket: answers the server's pings, hands every other frame on."""

    def __init__(self, ws: WebSocketConnection) -> None:
        self.ws = ws
        self.close_code: int | None = None
        self.closed = trio.Event()
        self._send, self._frames = trio.open_memory_channel[dict[str, Any]](100)

    async def pump(self) -> None:
        try:
            while True:
                frame = orjson.loads(await self.ws.get_message())
                if frame["type"] == "ping":
                    await self.ws.send_message('{"type":"pong"}')
                else:
                    self._send.send_nowait(frame)
        except ConnectionClosed as closed:
            self.close_code = closed.reason.code
        finally:
            self.closed.set()

    async def expect(self, kind: str) -> dict[str, Any]:
        with trio.fail_after(DEADLINE):
            frame = await self._frames.receive()
        assert frame["type"] == kind, frame
        return frame


@asynccontextmanager
async def peer(url: str) -> AsyncIterator[Peer]:
    """Open a socket that stays alive by answering pings; the exit closes it (1000)."""
    async with open_websocket_url(url) as ws, trio.open_nursery() as nursery:
        client = Peer(ws)
        nursery.start_soon(client.pump)
        yield client
        nursery.cancel_scope.cancel()


async def silent_socket(url: str, opened: trio.Event, result: dict[str, Any]) -> None:
    """A socket that reads but never sends a frame: the server must close it 4008."""
    async with open_websocket_url(url) as ws:
        result["welcome"] = orjson.loads(await ws.get_message())
        opened.set()
        with trio.fail_after(DEADLINE):
            try:
                while True:
                    await ws.get_message()
            except ConnectionClosed as closed:
                result["code"] = closed.reason.code


async def refused(url: str, headers: list[tuple[bytes, bytes]] | None = None) -> int:
    with pytest.raises(ConnectionRejected) as rejected:
        async with open_websocket_url(url, extra_headers=headers):
            pass
    return rejected.value.status_code


async def poll(check: Callable[[], Awaitable[bool]], what: str) -> None:
    with trio.move_on_after(DEADLINE):
        while not await check():
            await trio.sleep(0.02)
        return
    raise AssertionError(f"{what} within {DEADLINE}s")


@dataclass
class Script:
    """What the script did (the tests compare the server's accounts against this)."""

    tokens: list[str] = field(default_factory=list)
    http: list[tuple[str, str, int]] = field(default_factory=list)  # method, path, status
    idle_close_code: int | None = None
    resumed: dict[str, Any] | None = None
    replayed_seqs: list[int] = field(default_factory=list)
    last_close_code: int | None = None


async def scripted_session(
    base: str,
    *,
    wait_queued: Callable[[int], Awaitable[None]],
    wait_disconnects: Callable[[int], Awaitable[None]],
    finale: Callable[[Peer], Awaitable[None]],
) -> Script:
    """Four users, exactly:

    - ana: connect, ping/pong, client close (client_closed);
    - ben: connects while ana and chloe are open (3 concurrent), never sends: idle close 4008;
    - dan: 2 meal logs while he has no socket (queued), later connects with last_seq=0 and gets
      both replayed; a second socket of his is refused 429 (cap 1, token in the header);
    - chloe: 1 meal log while her socket is open (delivered), then client close;
    - an expired token refused 401 on the socket and on REST;
    - ``finale`` ends dan's socket (SIGTERM: server_shutdown, or a client close).
    """
    script = Script()
    tok = {user: token_for(user) for user in (ANA, BEN, CHLOE, DAN)}
    expired = token_for("obs-expired", ttl=-60)
    script.tokens = [*tok.values(), expired]
    ws_base = base.replace("http://", "ws://") + "/ws/meal-logs"

    def ws_url(token: str, tail: str = "") -> str:
        return f"{ws_base}?token={token}{tail}"

    def upgraded(status: int) -> None:
        script.http.append(("GET", "/ws/meal-logs", status))

    async def post(http: httpx.AsyncClient, token: str, text: str, status: int) -> None:
        response = await http.post(
            base + MEAL, json={"raw_input": text}, headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == status, response.text
        script.http.append(("POST", MEAL, status))

    async with httpx.AsyncClient() as http, trio.open_nursery() as nursery:
        async with peer(ws_url(tok[ANA])) as ana, peer(ws_url(tok[CHLOE])) as chloe:
            upgraded(101)
            upgraded(101)
            assert (await ana.expect("welcome"))["last_seq"] == 0
            assert (await chloe.expect("welcome"))["last_seq"] == 0
            ben_opened, ben = trio.Event(), {}
            nursery.start_soon(silent_socket, ws_url(tok[BEN]), ben_opened, ben)
            with trio.fail_after(DEADLINE):
                await ben_opened.wait()
            upgraded(101)

            await ana.ws.send_message('{"type":"ping"}')
            await ana.expect("pong")
            await ana.ws.aclose()  # client close while chloe and ben stay open

            for n in (1, 2):
                await post(http, tok[DAN], f"{n} boiled eggs", 201)
            await wait_queued(2)  # stored before dan has a socket: never delivered live

            await post(http, tok[CHLOE], "oatmeal with banana", 201)
            delivered = await chloe.expect("meal_log.completed")
            assert (delivered["seq"], delivered["data"]["user_id"]) == (1, CHLOE)

        with trio.fail_after(DEADLINE):
            while "code" not in ben:
                await trio.sleep(0.02)
        script.idle_close_code = ben["code"]
        await wait_disconnects(3)  # ana, chloe, ben are out before dan comes

        async with peer(ws_url(tok[DAN], "&last_seq=0")) as dan:
            upgraded(101)
            assert (await dan.expect("welcome"))["last_seq"] == 2
            for _ in range(2):
                script.replayed_seqs.append((await dan.expect("meal_log.completed"))["seq"])
            script.resumed = await dan.expect("resumed")

            script.http.append(("GET", "/ws/meal-logs", 429))
            assert (
                await refused(ws_base, [(b"authorization", f"Bearer {tok[DAN]}".encode())]) == 429
            )
            assert await refused(ws_url(expired)) == 401
            upgraded(401)
            await post(http, expired, "a sandwich", 401)

            await finale(dan)
            script.last_close_code = dan.close_code
    return script


# --------------------------------------------------------------------------------------------
# 1 + 2: a real `fitiq-rt serve`, its stderr, the report and the access log
# --------------------------------------------------------------------------------------------


@dataclass
class GoldenRun:
    script: Script
    lines: list[str]
    log: Path
    exit_code: int

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        out = [orjson.loads(line) for line in self.lines]
        return [e for e in out if name is None or e["event"] == name]


async def _await_events(server: SubprocessServer, name: str, count: int) -> None:
    async def enough() -> bool:
        return len(server.events(name)) >= count

    await poll(enough, f"{count} x {name} logged")


@pytest.fixture(scope="module")
def golden(tmp_path_factory: pytest.TempPathFactory) -> GoldenRun:
    """The script against a `fitiq-rt serve` subprocess, ended by SIGTERM with dan's socket open."""
    root = tmp_path_factory.mktemp("golden")
    server = SubprocessServer(root / "data", FAST)
    exit_code: list[int] = []

    async def sigterm(dan: Peer) -> None:
        exit_code.append(await trio.to_thread.run_sync(server.terminate))
        with trio.fail_after(DEADLINE):
            await dan.closed.wait()

    try:
        script = trio.run(
            partial(
                scripted_session,
                server.url(""),
                wait_queued=lambda n: _await_events(server, "notification.queued", n),
                wait_disconnects=lambda n: _await_events(server, "ws.disconnected", n),
                finale=sigterm,
            )
        )
    finally:
        server.kill()
    log = root / "fitiq-rt.log"
    log.write_text("".join(line + "\n" for line in server.lines))
    return GoldenRun(script, list(server.lines), log, exit_code[0])


def _epoch(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "fitiq_rt.cli", "logs", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stderr
    return result


def test_golden_run_the_script_saw_what_it_asked_for(golden: GoldenRun) -> None:
    assert golden.exit_code == 0
    assert golden.script.idle_close_code == 4008
    assert golden.script.replayed_seqs == [1, 2]
    assert golden.script.resumed == {"type": "resumed", "replayed": 2, "complete": True}
    assert golden.script.last_close_code == 1001
    assert golden.events()[-1]["event"] == "server.stopped"
    # SIGTERM with the script's HTTP keep-alive connection still open: the server closes it at
    # once instead of waiting out its 10 s shutdown timeout.
    (stopping,) = golden.events("server.stopping")
    (stopped,) = golden.events("server.stopped")
    assert _epoch(stopped["timestamp"]) - _epoch(stopping["timestamp"]) < 5.0
    assert stopped["connections_closed"] == 1


def test_golden_report_numbers_equal_the_script(golden: GoldenRun) -> None:
    report = orjson.loads(_cli("report", str(golden.log), "--json").stdout)

    parse = report["parse"]
    assert parse["lines"] == parse["events"] == len(golden.lines)
    assert (parse["malformed"], parse["foreign"], parse["blank"], parse["incomplete"]) == (
        0,
        0,
        0,
        0,
    )

    conns = report["connections"]
    assert conns["sessions"] == 4
    assert conns["closed"] == 4
    assert (conns["lost"], conns["still_open"], conns["unmatched_disconnects"]) == (0, 0, 0)
    assert conns["users"] == 4
    assert conns["disconnect_reasons"] == {
        "client_closed": 2,
        "idle_timeout": 1,
        "server_shutdown": 1,
    }
    assert conns["rejections"] == {"expired_token": 1, "too_many_connections": 1}
    assert conns["stale"] == 1
    assert conns["peak_concurrent"] == conns["peak_reported_by_server"] == 3
    assert sorted((u["user_id"], u["sessions"]) for u in conns["top_users"]) == [
        (ANA, 1),
        (BEN, 1),
        (CHLOE, 1),
        (DAN, 1),
    ]
    assert conns["duration_seconds"]["count"] == 4
    ben_closed = [e for e in golden.events("ws.disconnected") if e["user_id"] == BEN]
    assert [(e["reason"], e["code"]) for e in ben_closed] == [("idle_timeout", 4008)]
    assert ben_closed[0]["duration_seconds"] >= 1.0

    delivery = report["delivery"]
    assert delivery["delivered"] == 1
    assert delivery["queued"] == 2
    assert delivery["queued_no_socket"] == 2
    assert delivery["queued_while_connected"] == 0
    assert delivery["queued_in_close_race"] == 0
    assert delivery["replayed"] == 2
    assert (delivery["resumes"], delivery["incomplete_resumes"]) == (1, 0)
    assert delivery["latency_ms"]["count"] == 1

    meals = report["meal_logs"]
    assert (meals["created"], meals["processed"], meals["failed"]) == (3, 3, 0)
    assert (meals["unfinished"], meals["unmatched"]) == (0, 0)

    assert report["http"] == {
        "requests": len(golden.script.http),
        "ws_upgrades": 4,
        "ws_upgrade_failures": 0,
    }
    assert report["anomalies"] == {"counts": {}, "truncated": False, "items": []}
    metrics = {m["key"]: m for m in report["metrics"]}
    assert metrics["delivered_pct"]["number"] == 100.0
    assert metrics["not_connected_pct"]["number"] == 0.0
    assert metrics["realtime_working"]["value"] == "yes"
    assert all(m["ok"] is True for m in report["metrics"]), report["metrics"]


def test_golden_timeline_of_one_user_is_his_lines_in_order(golden: GoldenRun) -> None:
    timeline = orjson.loads(_cli("timeline", "--user", DAN, str(golden.log), "--json").stdout)
    # Exactly his lines (and the server's lifecycle, as context), in log order.
    expected = [
        (f"{golden.log}:{n}", event["event"])
        for n, event in enumerate(golden.events(), start=1)
        if event.get("user_id") == DAN or event["event"].startswith("server.")
    ]
    assert [(e["line"], e["event"]) for e in timeline["entries"]] == expected
    assert timeline["anomalies"] == []
    assert all(e["anomalies"] == [] for e in timeline["entries"])

    story = [
        (e["event"], e["fields"].get("seq"), e["fields"].get("reason"))
        for e in timeline["entries"]
        if e["event"] in {"notification.queued", "ws.connected", "ws.resumed", "ws.disconnected"}
        or e["event"].startswith("server.")
    ]
    assert story == [
        ("server.started", None, None),
        ("notification.queued", 1, None),
        ("notification.queued", 2, None),
        ("ws.connected", None, None),
        ("ws.resumed", None, None),
        ("server.stopping", None, None),
        ("ws.disconnected", None, "server_shutdown"),
        ("server.stopped", None, None),
    ]
    resumed = next(e for e in timeline["entries"] if e["event"] == "ws.resumed")
    assert (resumed["fields"]["last_seq"], resumed["fields"]["replayed"]) == (0, 2)
    assert sum(e["event"] == "meal_log.processed" for e in timeline["entries"]) == 2


def test_access_log_has_every_request_with_status_and_no_secret(golden: GoldenRun) -> None:
    access = golden.events("http.request")
    # Each line is written as its response goes out: compare as a multiset, not in order.
    assert Counter((e["method"], e["path"].split("?")[0], e["status"]) for e in access) == Counter(
        golden.script.http
    )
    for event in access:
        assert isinstance(event["duration_ms"], int | float) and event["duration_ms"] >= 0
        assert isinstance(event["bytes"], int) and event["bytes"] >= 0

    upgrades = [e for e in access if e["status"] == 101]
    assert sorted(e["path"] for e in upgrades) == sorted(
        ["/ws/meal-logs?token=[REDACTED]"] * 3 + ["/ws/meal-logs?token=[REDACTED]&last_seq=0"]
    )
    (unauthorized,) = [e for e in access if e["path"].startswith("/ws") and e["status"] == 401]
    assert unauthorized["path"] == "/ws/meal-logs?token=[REDACTED]"
    assert unauthorized["bytes"] > 0  # the JSON error body
    (too_many,) = [e for e in access if e["status"] == 429]
    assert too_many["path"] == "/ws/meal-logs"  # that token came in the Authorization header
    assert too_many["bytes"] > 0
    rest = [e for e in access if e["method"] == "POST"]
    assert [e["status"] for e in rest] == [201, 201, 201, 401]
    assert all(e["bytes"] > 0 for e in rest)

    stderr = "\n".join(golden.lines)
    assert "Bearer " not in stderr
    for token in golden.script.tokens:
        _header, payload, signature = token.split(".")
        assert token not in stderr
        assert payload not in stderr
        assert signature not in stderr
    assert '"authorization"' not in stderr.lower()


# --------------------------------------------------------------------------------------------
# 3: /metrics of an in-process server after the same script
# --------------------------------------------------------------------------------------------


def _scrape(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


async def test_metrics_after_the_script_show_its_counts(
    nursery: trio.Nursery, data_dir: Path
) -> None:
    server = await start_in_process(nursery, data_dir, **FAST)
    async with httpx.AsyncClient() as http:

        async def metrics() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
            response = await http.get(server.url("/metrics"))
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/plain")
            return _scrape(response.text)

        def value(samples: dict[Any, float], name: str, **labels: str) -> float:
            return samples.get((name, tuple(sorted(labels.items()))), 0.0)

        def total(samples: dict[Any, float], name: str) -> float:
            return sum(v for (sample, _), v in samples.items() if sample == name)

        async def wait_for(name: str, count: int, **labels: str) -> None:
            async def reached() -> bool:
                samples = await metrics()
                got = value(samples, name, **labels) if labels else total(samples, name)
                return got >= count

            await poll(reached, f"{name}{labels} >= {count}")

        async def client_close(dan: Peer) -> None:
            await dan.ws.aclose()

        script = await scripted_session(
            server.url(""),
            wait_queued=lambda n: wait_for("fitiq_notifications_total", n, outcome="queued"),
            wait_disconnects=lambda n: wait_for("fitiq_ws_disconnects_total", n),
            finale=client_close,
        )
        assert script.idle_close_code == 4008
        assert script.resumed == {"type": "resumed", "replayed": 2, "complete": True}

        async def all_closed() -> bool:
            samples = await metrics()
            connections = value(samples, "fitiq_ws_connections")
            return connections == 0 and total(samples, "fitiq_ws_disconnects_total") == 4

        await poll(all_closed, "every socket closed")
        samples = await metrics()

    assert value(samples, "fitiq_ws_connections") == 0
    assert value(samples, "fitiq_ws_connects_total") == 4
    disconnects = {
        dict(labels)["reason"]: v
        for (name, labels), v in samples.items()
        if name == "fitiq_ws_disconnects_total"
    }
    assert disconnects == {"client_closed": 3, "idle_timeout": 1}
    rejections = {
        dict(labels)["reason"]: v
        for (name, labels), v in samples.items()
        if name == "fitiq_ws_rejections_total"
    }
    assert rejections == {"expired_token": 1, "too_many_connections": 1}
    assert value(samples, "fitiq_notifications_total", outcome="delivered") == 1
    assert value(samples, "fitiq_notifications_total", outcome="queued") == 2
    assert value(samples, "fitiq_notifications_replayed_total") == 2
    assert value(samples, "fitiq_meal_logs_total", status="pending") == 3
    assert value(samples, "fitiq_meal_logs_total", status="completed") == 3
    assert value(samples, "fitiq_meal_logs_total", status="failed") == 0
    assert value(samples, "fitiq_ws_session_duration_seconds_count") == 4
    assert value(samples, "fitiq_notification_latency_ms_count") == 1
    assert value(samples, "fitiq_meal_log_processing_ms_count") == 3
