"""churn: sessions per second of connect → welcome → ping → pong → close, N in flight.

This is the seed bug's hot path (connect and disconnect bookkeeping) at full speed: a registry
or logging cost shows here first, and the leak check afterwards shows whether every one of the
sessions left the registry.
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
from ..argtypes import positive_int
from ..launch import Target
from ..progress import Progress
from ..stats import share, summarize_ms
from ..workers import DONE, READY, RUN, ClientPool, WorkerContext, overall_window
from ..wsclient import open_ws
from .common import (
    PING,
    PONG,
    RunOptions,
    Wire,
    error_kind,
    expect_welcome,
    finish,
    merge_counts,
    server_rss,
    warm_up,
)

NAME = "churn"
WARMUP = 3000


@dataclass(frozen=True)
class ChurnParams:
    sessions: int = 5000
    in_flight: int = 50
    users: int = 1000
    timeout: float = 10.0


def add_arguments(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    p = f"--{prefix}"
    parser.add_argument(f"{p}sessions", type=positive_int, default=5000, help="sessions in total")
    parser.add_argument(
        f"{p}in-flight", type=positive_int, default=50, help="sessions open at once"
    )
    parser.add_argument(
        f"{p}users", type=positive_int, default=1000, help="distinct users the sessions rotate over"
    )


def params_from(args: argparse.Namespace, prefix: str = "") -> ChurnParams:
    p = prefix.replace("-", "_")
    return ChurnParams(
        sessions=getattr(args, f"{p}sessions"),
        in_flight=getattr(args, f"{p}in_flight"),
        users=getattr(args, f"{p}users"),
    )


async def one_session(wire: Wire, token: str) -> None:
    async with open_ws(wire.endpoint, token, kind=wire.ws_client) as ws:
        await expect_welcome(ws)
        await ws.send(PING)
        while True:
            kind = orjson.loads(await ws.recv()).get("type")
            if kind == "pong":
                break
            if kind == "ping":  # a server heartbeat that happened to land here
                await ws.send(PONG)
        await ws.close()


async def worker(ctx: WorkerContext) -> dict[str, Any]:
    params: ChurnParams = ctx.params["params"]
    wire: Wire = ctx.params["wire"]
    total = share(params.sessions, ctx.index, ctx.procs)
    lanes = max(1, share(params.in_flight, ctx.index, ctx.procs))
    # Each process rotates over its own users, so no two processes share a per-user cap.
    tokens = [wire.tokens.user(u)[1] for u in range(ctx.index, max(params.users, 1), ctx.procs)]
    tokens = tokens or [wire.tokens.user(ctx.index)[1]]
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    next_index = 0

    async def lane() -> None:
        nonlocal next_index
        while next_index < total:
            index = next_index
            next_index += 1
            started = time.perf_counter()
            try:
                with trio.fail_after(params.timeout):
                    await one_session(wire, tokens[index % len(tokens)])
                latencies.append((time.perf_counter() - started) * 1000)
            except Exception as error:
                errors[error_kind(error)] += 1
                ctx.count(1, sum(errors.values()))
            ctx.count(0, len(latencies) + sum(errors.values()))

    ctx.stage(READY)
    await ctx.until(RUN)
    ctx.begin()
    async with trio.open_nursery() as nursery:
        for _ in range(lanes):
            nursery.start_soon(lane)
    ctx.end()
    ctx.stage(DONE)
    return {"ok": len(latencies), "errors": dict(errors), "session_ms": latencies}


def sessions_only(target: Target, opts: RunOptions, sessions: int) -> None:
    """Run `sessions` churned sessions without measuring (the warm-up)."""
    params = ChurnParams(sessions=sessions, in_flight=min(50, sessions), users=1000)
    payload = {"params": params, "wire": Wire.of(target, opts)}
    with ClientPool(worker, payload, 1, opts.plan.client) as pool:
        pool.go(RUN)
        pool.results()


def run(target: Target, params: ChurnParams, opts: RunOptions) -> dict[str, Any]:
    warm_up(target, opts, WARMUP)
    rss_before = server_rss(target)
    payload = {"params": params, "wire": Wire.of(target, opts)}
    with ClientPool(worker, payload, opts.procs, opts.plan.client) as pool:
        pool.wait(READY, timeout=120)
        window = procfs.CpuWindow(target.pid).open()
        pool.go(RUN)
        progress = Progress(
            f"churn {target.name}", params.sessions, "sessions", enabled=opts.progress
        )
        pool.wait(DONE, tick=lambda: progress.update(pool.counter(0), f"errors {pool.counter(1)}"))
        window.stop()
        progress.close()
        results = pool.results()
    start, end = overall_window(results)
    ok = sum(r["ok"] for r in results)
    errors = merge_counts(results, "errors")
    latencies = [ms for r in results for ms in r["session_ms"]]
    common = finish(target, opts, results, window, rss_before, errors)
    return {
        "results": {
            "sessions_ok": ok,
            "sessions_failed": sum(errors.values()),
            "errors": errors,
            "seconds": round(end - start, 3),
            "sessions_per_second": round(ok / max(end - start, 1e-9), 1),
            "session_ms": summarize_ms(latencies),
            "server_cpu_pct": common["cpu"]["server_cpu_pct"],
        },
        **common,
    }


def headline(record: dict[str, Any]) -> list[tuple[str, str]]:
    r = record["results"]
    s = r["session_ms"]
    return [
        ("sessions/s", f"{r['sessions_per_second']:,.0f}"),
        ("sessions ok / failed", f"{r['sessions_ok']:,} / {r['sessions_failed']:,}"),
        ("session ms p50 / p99 / max", f"{s['p50']} / {s['p99']} / {s['max']}"),
        ("server CPU %", str(r["server_cpu_pct"])),
    ]
