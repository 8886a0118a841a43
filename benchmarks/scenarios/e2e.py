"""e2e: POST /api/v1/meal-logs/natural → `meal_log.completed` on the user's socket, latency.

U users each hold one socket; POSTs go out open-loop at R per second (round-robin over the
users) on keep-alive connections. Latency runs from the moment the request is written to the
moment the notification frame is read, matched by meal-log id (the frame may beat the 201).
This is the product's promise — a logged meal shows up live — measured end to end.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson
import trio

from .. import procfs
from ..argtypes import positive_float, positive_int
from ..httpclient import HttpPool
from ..launch import Target
from ..progress import Progress
from ..stats import share, summarize_ms
from ..workers import DONE, READY, RUN, ClientPool, WorkerContext, overall_window
from ..wsclient import WsClosed, WsConn
from .common import (
    RunOptions,
    Wire,
    answer_until_closed,
    error_kind,
    finish,
    merge_counts,
    server_rss,
    warm_up,
    welcomed,
)

NAME = "e2e"
WARMUP = 1000
POST_PATH = "/api/v1/meal-logs/natural"
NOTIFIED = 2  # counter slot
WARMUP_POSTS = 50
SLOWEST = 20  # slowest samples reported with their send time (seconds into the run)


@dataclass(frozen=True)
class E2EParams:
    users: int = 200
    rate: float = 200.0
    duration: float = 10.0
    http_conns: int = 32
    drain: float = 5.0
    raw_input: str = "2 eggs and a slice of toast"
    timeout: float = 30.0

    @property
    def posts(self) -> int:
        return max(1, round(self.rate * self.duration))


def add_arguments(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    p = f"--{prefix}"
    parser.add_argument(f"{p}users", type=positive_int, default=200, help="users, one socket each")
    parser.add_argument(f"{p}rate", type=positive_float, default=200.0, help="POSTs per second")
    parser.add_argument(
        f"{p}duration", type=positive_float, default=10.0, help="seconds of POSTing"
    )
    parser.add_argument(
        f"{p}http-conns", type=positive_int, default=32, help="keep-alive connections for the POSTs"
    )


def params_from(args: argparse.Namespace, prefix: str = "") -> E2EParams:
    p = prefix.replace("-", "_")
    return E2EParams(
        users=getattr(args, f"{p}users"),
        rate=getattr(args, f"{p}rate"),
        duration=getattr(args, f"{p}duration"),
        http_conns=getattr(args, f"{p}http_conns", 32),
    )


@dataclass
class Tracker:
    """Matches notifications to POSTs by meal-log id, whichever of the two arrives first."""

    sent: dict[str, float]
    early: dict[str, float]
    latencies: list[float]
    sent_times: list[float] = field(default_factory=list)  # perf_counter of each latency's POST
    _emptied: trio.Event | None = None

    @classmethod
    def new(cls) -> Tracker:
        return cls({}, {}, [])

    async def wait_all_notified(self) -> None:
        """Until every POST answered so far has had its notification."""
        while self.sent:
            self._emptied = trio.Event()
            await self._emptied.wait()

    def posted(self, meal_id: str, sent_at: float) -> None:
        arrived = self.early.pop(meal_id, None)
        if arrived is None:
            self.sent[meal_id] = sent_at
        else:
            self.latencies.append((arrived - sent_at) * 1000)
            self.sent_times.append(sent_at)

    def notified(self, message: dict[str, Any]) -> None:
        if not str(message.get("type", "")).startswith("meal_log."):
            return
        now = time.perf_counter()
        meal_id = message["data"]["id"]
        sent_at = self.sent.pop(meal_id, None)
        if sent_at is None:
            self.early[meal_id] = now
        else:
            self.latencies.append((now - sent_at) * 1000)
            self.sent_times.append(sent_at)
            if not self.sent and self._emptied is not None:
                self._emptied.set()


async def open_sockets(
    wire: Wire, tokens: list[str], nursery: trio.Nursery, on_message: Any, concurrency: int = 100
) -> list[WsConn]:
    """Open one socket per token (bounded handshakes); each keeps a reader in `nursery`."""
    conns: list[WsConn] = []
    gate = trio.Semaphore(concurrency)

    async def hold(token: str, task_status: trio.TaskStatus[None]) -> None:
        async with welcomed(wire, token, gate) as ws:
            conns.append(ws)
            task_status.started()
            try:
                await answer_until_closed(ws, on_message)
            except WsClosed:
                pass
            finally:
                await ws.close()  # shielded: a graceful close even when the readers are cancelled

    async def start(token: str) -> None:
        await nursery.start(hold, token)

    async with trio.open_nursery() as starter:
        for token in tokens:
            starter.start_soon(start, token)
    return conns


async def worker(ctx: WorkerContext) -> dict[str, Any]:
    params: E2EParams = ctx.params["params"]
    wire: Wire = ctx.params["wire"]
    users = [wire.tokens.user(u)[1] for u in range(ctx.index, params.users, ctx.procs)]
    posts = share(params.posts, ctx.index, ctx.procs)
    rate = params.rate * len(users) / max(params.users, 1)
    tracker = Tracker.new()
    post_ms: list[float] = []
    lag_ms: list[float] = []
    errors: Counter[str] = Counter()
    pool = HttpPool(wire.endpoint, max(1, share(params.http_conns, ctx.index, ctx.procs)))
    body = orjson.dumps({"raw_input": params.raw_input})

    async def post(token: str, scheduled: float | None) -> None:
        headers = (("Authorization", f"Bearer {token}"), ("Content-Type", "application/json"))
        try:
            with trio.fail_after(params.timeout):
                response = await pool.request("POST", POST_PATH, body, headers)
        except Exception as error:
            errors[error_kind(error)] += 1
            ctx.count(1, sum(errors.values()))
            return
        if response.status != 201:
            errors[f"http_{response.status}"] += 1
            ctx.count(1, sum(errors.values()))
            return
        tracker.posted(orjson.loads(response.body)["id"], response.sent_at)
        if scheduled is not None:
            post_ms.append((time.perf_counter() - response.sent_at) * 1000)
            lag_ms.append((response.sent_at - scheduled) * 1000)

    async with trio.open_nursery() as readers:
        await open_sockets(wire, users, readers, tracker.notified)
        for index in range(WARMUP_POSTS):  # first-request costs and a JIT, not measured
            await post(users[index % len(users)], None)
        with trio.move_on_after(params.drain):
            await tracker.wait_all_notified()
        tracker.latencies.clear()
        tracker.sent_times.clear()
        tracker.early.clear()
        ctx.stage(READY)
        await ctx.until(RUN)
        ctx.begin()
        started = time.perf_counter()
        async with trio.open_nursery() as posting:
            for index in range(posts):
                scheduled = started + index / rate
                await trio.sleep(max(0.0, scheduled - time.perf_counter()))
                posting.start_soon(post, users[index % len(users)], scheduled)
                ctx.count(0, index + 1)
        with trio.move_on_after(params.drain):
            await tracker.wait_all_notified()
        ctx.end()
        ctx.stage(DONE)
        missing = len(tracker.sent)
        readers.cancel_scope.cancel()
    await pool.aclose()
    return {
        "posted": len(post_ms),
        "notified": len(tracker.latencies),
        "missing": missing,
        "errors": dict(errors),
        "latency_ms": tracker.latencies,
        # Where in the run the slowest ones were sent: a cluster points at a server stall.
        "slowest": sorted(
            (
                (round(ms, 3), round(at - started, 3))
                for ms, at in zip(tracker.latencies, tracker.sent_times, strict=True)
            ),
            reverse=True,
        )[:SLOWEST],
        "post_ms": post_ms,
        "send_lag_ms": lag_ms,
    }


def run(target: Target, params: E2EParams, opts: RunOptions) -> dict[str, Any]:
    warm_up(target, opts, WARMUP)
    rss_before = server_rss(target)
    payload = {"params": params, "wire": Wire.of(target, opts)}
    procs = max(1, min(opts.procs, params.users))
    with ClientPool(worker, payload, procs, opts.plan.client) as pool:
        pool.wait(READY, timeout=120)
        window = procfs.CpuWindow(target.pid).open()
        pool.go(RUN)
        progress = Progress(f"e2e {target.name}", params.posts, "posts", enabled=opts.progress)
        pool.wait(DONE, tick=lambda: progress.update(pool.counter(0), f"errors {pool.counter(1)}"))
        window.stop()
        progress.close()
        results = pool.results(timeout=120)
    start, end = overall_window(results)
    errors = merge_counts(results, "errors")
    missing = sum(r["missing"] for r in results)
    if missing:
        errors["notification_missing"] = missing
    common = finish(target, opts, results, window, rss_before, errors)
    lag = summarize_ms(ms for r in results for ms in r["send_lag_ms"])
    if (lag["p99"] or 0) > 50:
        common["warnings"].append(
            f"client fell behind its schedule (send lag p99 {lag['p99']} ms): latency is suspect"
        )
    posted = sum(r["posted"] for r in results)
    return {
        "results": {
            "posts_ok": posted,
            "notified": sum(r["notified"] for r in results),
            "missing": missing,
            "errors": errors,
            "achieved_rate": round(posted / max(end - start, 1e-9), 1),
            "latency_ms": summarize_ms(ms for r in results for ms in r["latency_ms"]),
            "post_response_ms": summarize_ms(ms for r in results for ms in r["post_ms"]),
            "send_lag_ms": lag,
            "slowest_ms_at_second": sorted(
                (tuple(pair) for r in results for pair in r["slowest"]), reverse=True
            )[:SLOWEST],
            "server_cpu_pct": common["cpu"]["server_cpu_pct"],
        },
        **common,
    }


def headline(record: dict[str, Any]) -> list[tuple[str, str]]:
    r = record["results"]
    lat, post = r["latency_ms"], r["post_response_ms"]
    return [
        ("POST → frame ms p50 / p90 / p99 / max", _four(lat)),
        ("POST → 201 ms p50 / p90 / p99 / max", _four(post)),
        (
            "posts ok / notified / missing",
            f"{r['posts_ok']:,} / {r['notified']:,} / {r['missing']}",
        ),
        ("achieved POST/s", f"{r['achieved_rate']:,.0f}"),
        ("server CPU %", str(r["server_cpu_pct"])),
    ]


def _four(summary: dict[str, Any]) -> str:
    return " / ".join(str(summary[k]) for k in ("p50", "p90", "p99", "max"))
