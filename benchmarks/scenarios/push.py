"""push: what a queued notification costs with push on: `notification.queued` → the APNs
stand-in's 200, p50/p99 over N queued notifications.

A `fitiq-rt serve` process (SQLite in a temporary directory, the builtin processor, push
settings at their defaults) pushes to the HTTP/2 + TLS stand-in the tests use
(tests/apns_standin.py: Hypercorn, a trustme CA, the provider token verified with ES256 on
every request), run in this process. `--users` users each register one device and nobody
opens a socket, so every notification is queued and pushed; meal logs are POSTed at `--rate`
per second. The latency of each is the stand-in's clock when it answered 200 minus the
`timestamp` of the server's `notification.queued` line (one machine, one wall clock). Also
reported: the server's own queue → 200 time (`push.sent` `ms`), and pushes that failed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import trio

from ..argtypes import positive_int
from ..launch import log_events
from ..stats import summarize_ms

NAME = "push"
SECRET = "benchmark-secret-that-is-long-enough-for-hs256-0123"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--notifications", type=positive_int, default=1000, help="queued notifications"
    )
    parser.add_argument("--users", type=positive_int, default=100, help="users, one device each")
    parser.add_argument(
        "--rate", type=positive_int, default=100, help="meal logs POSTed per second"
    )


def params_from(args: argparse.Namespace) -> dict[str, Any]:
    return {"notifications": args.notifications, "users": args.users, "rate": args.rate}


def _server(workdir: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    full = {
        **{k: v for k, v in os.environ.items() if not k.startswith("FITIQ_")},
        "FITIQ_PORT": env.pop("FITIQ_PORT"),
        "FITIQ_DATA_DIR": str(workdir / "data"),
        "FITIQ_JWT_SECRET": SECRET,
        "FITIQ_LOG_FORMAT": "json",
        **env,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "fitiq_rt.cli", "serve"],
        env=full,
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
    )


async def _measure(params: dict[str, Any], workdir: Path) -> dict[str, Any]:
    import httpx

    from fitiq_rt.auth import mint_token
    from tests.apns_standin import make_keys, push_env, running_standin

    from ..launch import free_port

    keys = make_keys(workdir)
    users = [f"push-bench-{i}" for i in range(params["users"])]
    devices = {user: f"{i:064x}" for i, user in enumerate(users)}
    headers = {u: {"Authorization": f"Bearer {mint_token(SECRET, u, ttl=3600)}"} for u in users}
    log = workdir / "server.log"
    async with running_standin(keys, workdir / "apns") as standin:
        port = free_port()
        env = {
            "FITIQ_PORT": str(port),
            "SSL_CERT_FILE": str(keys.ca_file),
            **push_env(keys, standin),
        }
        proc = _server(workdir, env, log)
        base = f"http://127.0.0.1:{port}"
        try:
            async with httpx.AsyncClient(base_url=base, timeout=30) as http:
                with trio.fail_after(20):
                    while True:
                        try:
                            if (await http.get("/healthz")).status_code == 200:
                                break
                        except httpx.TransportError:
                            pass
                        await trio.sleep(0.05)
                for user in users:
                    put = await http.put(
                        f"/api/v1/devices/{devices[user]}",
                        json={"platform": "ios"},
                        headers=headers[user],
                    )
                    assert put.status_code == 201, put.text
                started = time.perf_counter()
                async with trio.open_nursery() as posting:
                    for i in range(params["notifications"]):
                        user = users[i % len(users)]
                        posting.start_soon(_post, http, headers[user], i)
                        await trio.sleep_until(
                            trio.current_time()
                            + max(0.0, started + (i + 1) / params["rate"] - time.perf_counter())
                        )
            with trio.move_on_after(60):
                while len(standin.received) < params["notifications"]:
                    await trio.sleep(0.05)
        finally:
            proc.terminate()
            await trio.to_thread.run_sync(proc.wait, 20)
        received = list(standin.received)
        problems = list(standin.problems)
    return _analyse(log, received, devices, params, problems)


async def _post(http: Any, headers: dict[str, str], i: int) -> None:
    response = await http.post(
        "/api/v1/meal-logs/natural",
        json={"raw_input": f"{i % 9 + 1} eggs and toast"},
        headers=headers,
    )
    assert response.status_code == 201, response.text


def _analyse(
    log: Path,
    received: list[Any],
    devices: dict[str, str],
    params: dict[str, Any],
    problems: list[str],
) -> dict[str, Any]:
    queued: dict[tuple[str, int], float] = {}
    server_ms: list[float] = []
    failed = 0
    for event in log_events(log):
        name = event.get("event")
        if name == "notification.queued":
            stamp = datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))
            queued[(devices[event["user_id"]], event["seq"])] = stamp.timestamp()
        elif name == "push.sent":
            server_ms.append(float(event["ms"]))
        elif name == "push.failed":
            failed += 1
    latencies = [
        (r.at - queued[(r.device_token, r.body["seq"])]) * 1000
        for r in received
        if (r.device_token, r.body["seq"]) in queued
    ]
    return {
        "queued": len(queued),
        "pushed": len(received),
        "push_failed": failed,
        "standin_problems": problems[:5],
        "queued_to_200_ms": summarize_ms(latencies),
        "server_queue_to_200_ms": summarize_ms(server_ms),
    }


def run(params: dict[str, Any]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="fitiq-push-") as workdir:
        return trio.run(_measure, params, Path(workdir))


def headline(record: dict[str, Any]) -> list[tuple[str, str]]:
    latency = record["queued_to_200_ms"]
    server = record["server_queue_to_200_ms"]
    rows = [
        ("queued notifications / pushes answered 200", f"{record['queued']} / {record['pushed']}"),
        ("pushes failed", str(record["push_failed"])),
    ]
    for key in ("p50", "p90", "p99", "max"):
        rows.append((f"notification.queued → stand-in 200, {key} (ms)", str(latency[key])))
    rows.append(("server: push queued → 200, p50 / p99 (ms)", f"{server['p50']} / {server['p99']}"))
    return rows
