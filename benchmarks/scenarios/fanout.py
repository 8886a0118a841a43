"""fanout: one user with 10 sockets among 1,000 other connected users; time to reach all 10.

The seed bug's user had several devices; a notification counts as delivered only when every
one of them has it. Latency is POST written → the frame read on the last (and the first) of
the user's sockets, with a registry that also holds the background users.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import orjson
import trio

from .. import procfs
from ..argtypes import non_negative_int, positive_float, positive_int
from ..httpclient import HttpPool
from ..launch import Target
from ..progress import Progress
from ..stats import summarize_ms
from ..workers import DONE, READY, RELEASE, RUN, ClientPool, WorkerContext
from .common import RunOptions, Wire, error_kind, finish, merge_counts, server_rss, warm_up
from .e2e import POST_PATH, open_sockets

NAME = "fanout"
WARMUP = 1000
FAN_USER = 0  # user index of the many-socket user; background users are 1..N


@dataclass(frozen=True)
class FanoutParams:
    sockets: int = 10
    background_users: int = 1000
    posts: int = 200
    rate: float = 50.0
    drain: float = 5.0
    timeout: float = 30.0


def add_arguments(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    p = f"--{prefix}"
    parser.add_argument(
        f"{p}sockets", type=positive_int, default=10, help="sockets of the fan-out user"
    )
    parser.add_argument(
        f"{p}background-users",
        type=non_negative_int,
        default=1000,
        help="other users, one socket each",
    )
    parser.add_argument(
        f"{p}posts", type=positive_int, default=200, help="POSTs for the fan-out user"
    )
    parser.add_argument(f"{p}rate", type=positive_float, default=50.0, help="POSTs per second")


def params_from(args: argparse.Namespace, prefix: str = "") -> FanoutParams:
    p = prefix.replace("-", "_")
    return FanoutParams(
        sockets=getattr(args, f"{p}sockets"),
        background_users=getattr(args, f"{p}background_users"),
        posts=getattr(args, f"{p}posts"),
        rate=getattr(args, f"{p}rate"),
    )


@dataclass
class FanTracker:
    """Per meal log: when it was posted and when each of the user's sockets got its frame."""

    sockets: int
    sent: dict[str, float]
    arrivals: dict[str, list[float]]
    last_ms: list[float]
    first_ms: list[float]
    _emptied: trio.Event | None = None

    async def wait_all_delivered(self) -> None:
        """Until every POST answered so far has reached all of the user's sockets."""
        while self.sent:
            self._emptied = trio.Event()
            await self._emptied.wait()

    def _settle(self, meal_id: str) -> None:
        sent_at = self.sent.get(meal_id)
        times = self.arrivals.get(meal_id, [])
        if sent_at is not None and len(times) >= self.sockets:
            self.last_ms.append((max(times) - sent_at) * 1000)
            self.first_ms.append((min(times) - sent_at) * 1000)
            del self.sent[meal_id], self.arrivals[meal_id]
            if not self.sent and self._emptied is not None:
                self._emptied.set()

    def posted(self, meal_id: str, sent_at: float) -> None:
        self.sent[meal_id] = sent_at
        self._settle(meal_id)

    def notified(self, message: dict[str, Any]) -> None:
        if not str(message.get("type", "")).startswith("meal_log."):
            return
        meal_id = message["data"]["id"]
        self.arrivals.setdefault(meal_id, []).append(time.perf_counter())
        self._settle(meal_id)


async def worker(ctx: WorkerContext) -> dict[str, Any]:
    params: FanoutParams = ctx.params["params"]
    wire: Wire = ctx.params["wire"]
    background = [
        wire.tokens.user(u)[1] for u in range(1 + ctx.index, 1 + params.background_users, ctx.procs)
    ]
    fan = ctx.index == 0
    tracker = FanTracker(params.sockets, {}, {}, [], [])
    errors: Counter[str] = Counter()
    missing = 0
    async with trio.open_nursery() as readers:
        await open_sockets(wire, background, readers, None)
        if fan:
            token = wire.tokens.user(FAN_USER)[1]
            await open_sockets(wire, [token] * params.sockets, readers, tracker.notified)
        ctx.stage(READY)
        await ctx.until(RUN)
        ctx.begin()
        if fan:
            missing = await _post_all(ctx, params, wire, token, tracker, errors)
        ctx.end()
        ctx.stage(DONE)
        await ctx.until(RELEASE)
        readers.cancel_scope.cancel()
    return {
        "errors": dict(errors),
        "missing": missing,
        "all_ms": tracker.last_ms,
        "first_ms": tracker.first_ms,
    }


async def _post_all(
    ctx: WorkerContext,
    params: FanoutParams,
    wire: Wire,
    token: str,
    tracker: FanTracker,
    errors: Counter[str],
) -> int:
    """POST for the fan-out user at the given rate; returns how many never reached all sockets."""
    pool = HttpPool(wire.endpoint, 8)
    body = orjson.dumps({"raw_input": "a bowl of oatmeal with a banana"})
    headers = (("Authorization", f"Bearer {token}"), ("Content-Type", "application/json"))

    async def post() -> None:
        try:
            with trio.fail_after(params.timeout):
                response = await pool.request("POST", POST_PATH, body, headers)
        except Exception as error:
            errors[error_kind(error)] += 1
            return
        if response.status != 201:
            errors[f"http_{response.status}"] += 1
            return
        tracker.posted(orjson.loads(response.body)["id"], response.sent_at)

    started = time.perf_counter()
    async with trio.open_nursery() as posting:
        for index in range(params.posts):
            await trio.sleep(max(0.0, started + index / params.rate - time.perf_counter()))
            posting.start_soon(post)
            ctx.count(0, index + 1)
    with trio.move_on_after(params.drain):
        await tracker.wait_all_delivered()
    await pool.aclose()
    return len(tracker.sent)


def run(target: Target, params: FanoutParams, opts: RunOptions) -> dict[str, Any]:
    warm_up(target, opts, WARMUP)
    rss_before = server_rss(target)
    payload = {"params": params, "wire": Wire.of(target, opts)}
    with ClientPool(worker, payload, opts.procs, opts.plan.client) as pool:
        pool.wait(READY, timeout=120)
        window = procfs.CpuWindow(target.pid).open()
        pool.go(RUN)
        progress = Progress(f"fanout {target.name}", params.posts, "posts", enabled=opts.progress)
        pool.wait(DONE, indices=[0], tick=lambda: progress.update(pool.counter(0)))
        window.stop()
        progress.close()
        pool.go(RELEASE)
        results = pool.results(timeout=120)
    errors = merge_counts(results, "errors")
    missing = sum(r["missing"] for r in results)
    if missing:
        errors["not_on_all_sockets"] = missing
    common = finish(target, opts, results[:1], window, rss_before, errors)
    return {
        "results": {
            "fan_sockets": params.sockets,
            "background_users": params.background_users,
            "posts": params.posts,
            "delivered_to_all": len(results[0]["all_ms"]),
            "missing": missing,
            "errors": errors,
            "all_sockets_ms": summarize_ms(results[0]["all_ms"]),
            "first_socket_ms": summarize_ms(results[0]["first_ms"]),
            "server_cpu_pct": common["cpu"]["server_cpu_pct"],
        },
        **common,
    }


def headline(record: dict[str, Any]) -> list[tuple[str, str]]:
    r = record["results"]

    def four(s: dict[str, Any]) -> str:
        return " / ".join(str(s[k]) for k in ("p50", "p90", "p99", "max"))

    return [
        (f"to all {r['fan_sockets']} sockets ms p50 / p90 / p99 / max", four(r["all_sockets_ms"])),
        ("to the first socket ms p50 / p90 / p99 / max", four(r["first_socket_ms"])),
        ("delivered to all / missing", f"{r['delivered_to_all']} / {r['missing']}"),
        ("background users", f"{r['background_users']:,}"),
        ("server CPU %", str(r["server_cpu_pct"])),
    ]
