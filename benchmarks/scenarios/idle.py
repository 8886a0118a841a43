"""idle: what an open, quiet socket costs the server, and whether held sockets survive.

RSS per socket = (server RSS with N open − RSS before) / N, from /proc/<pid>/status. With
`--hold SECONDS` the sockets stay open that long answering the server's heartbeats (as the iOS
client does); sockets the server closes meanwhile are counted as dropped, and the server's CPU
over the hold shows what heartbeats and watchdogs cost when nothing else happens.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import httpx
import trio

from .. import leaks, procfs
from ..argtypes import non_negative_float, positive_int
from ..launch import Target
from ..progress import Progress
from ..stats import share
from ..workers import DONE, READY, RELEASE, RUN, ClientPool, WorkerContext, overall_window
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

NAME = "idle"
WARMUP = 100  # RSS is the measure: a long churn first would only pad the baseline heap
NOISE_SENSITIVE = False  # RSS per socket does not depend on the CPU share the server got
DROPPED = 2  # counter slot


@dataclass(frozen=True)
class IdleParams:
    sockets: int = 5000
    hold: float = 0.0
    open_concurrency: int = 200
    settle: float = 1.0
    timeout: float = 30.0


def add_arguments(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    p = f"--{prefix}"
    parser.add_argument(f"{p}sockets", type=positive_int, default=5000, help="sockets held open")
    parser.add_argument(
        f"{p}hold",
        type=non_negative_float,
        default=0.0,
        help="seconds to hold them (heartbeats answered)",
    )
    parser.add_argument(
        f"{p}open-concurrency",
        type=positive_int,
        default=200,
        help="handshakes in flight while opening",
    )
    parser.add_argument(
        f"{p}settle",
        type=non_negative_float,
        default=1.0,
        help="seconds between the last open and the RSS",
    )


def params_from(args: argparse.Namespace, prefix: str = "") -> IdleParams:
    p = prefix.replace("-", "_")
    return IdleParams(
        sockets=getattr(args, f"{p}sockets"),
        hold=getattr(args, f"{p}hold", 0.0),
        open_concurrency=getattr(args, f"{p}open_concurrency", 200),
        settle=getattr(args, f"{p}settle", 1.0),
    )


async def worker(ctx: WorkerContext) -> dict[str, Any]:
    params: IdleParams = ctx.params["params"]
    wire: Wire = ctx.params["wire"]
    users = list(range(ctx.index, params.sockets, ctx.procs))  # one socket per user
    tokens = [wire.tokens.user(u)[1] for u in users]
    gate = trio.Semaphore(max(1, share(params.open_concurrency, ctx.index, ctx.procs)))
    failed: Counter[str] = Counter()
    drops: Counter[str] = Counter()
    opened = 0
    releasing = False
    all_tried = trio.Event()

    def tried() -> None:
        if opened + sum(failed.values()) >= len(tokens):
            all_tried.set()

    async def hold(token: str) -> None:
        nonlocal opened
        try:
            async with welcomed(wire, token, gate, params.timeout) as ws:
                opened += 1
                ctx.count(0, opened)
                tried()
                try:
                    await answer_until_closed(ws)
                except Exception as error:  # the server (or the network) ended it
                    if not releasing:
                        drops[error_kind(error)] += 1
                        ctx.count(DROPPED, sum(drops.values()))
                finally:
                    await ws.close()  # shielded: runs although the holders were cancelled
        except Exception as error:
            failed[error_kind(error)] += 1
            ctx.count(1, sum(failed.values()))
            tried()

    ctx.stage(READY)
    await ctx.until(RUN)
    ctx.begin()
    async with trio.open_nursery() as holders:
        for token in tokens:
            holders.start_soon(hold, token)
        if not tokens:
            all_tried.set()
        await all_tried.wait()
        ctx.end()
        ctx.stage(DONE)
        await ctx.until(RELEASE)
        releasing = True
        holders.cancel_scope.cancel()
    return {"opened": opened, "failed": dict(failed), "dropped": dict(drops)}


def _server_count(target: Target) -> int | None:
    with httpx.Client(timeout=30.0) as client:
        return leaks.total_connections(target, client)


def run(target: Target, params: IdleParams, opts: RunOptions) -> dict[str, Any]:
    warm_up(target, opts, WARMUP)
    time.sleep(0.5)
    rss_before = server_rss(target)
    payload = {"params": params, "wire": Wire.of(target, opts)}
    hold_cpu: dict[str, Any] = {}
    with ClientPool(worker, payload, opts.procs, opts.plan.client) as pool:
        pool.wait(READY, timeout=120)
        window = procfs.CpuWindow(target.pid).open()
        pool.go(RUN)
        progress = Progress(f"idle {target.name}", params.sockets, "open", enabled=opts.progress)
        pool.wait(DONE, tick=lambda: progress.update(pool.counter(0), f"failed {pool.counter(1)}"))
        window.stop()
        progress.close()
        opened = pool.counter(0)
        time.sleep(params.settle)
        rss_open = server_rss(target)
        server_count = _server_count(target)
        if params.hold > 0:
            held = procfs.CpuWindow(target.pid).open()
            progress = Progress(
                f"hold {target.name}", int(params.hold), "s", enabled=opts.progress, rate=False
            )
            deadline = time.monotonic() + params.hold
            while (left := deadline - time.monotonic()) > 0:
                progress.update(int(params.hold - left), f"dropped {pool.counter(DROPPED)}")
                time.sleep(min(0.25, left))
            progress.close()
            hold_cpu = held.close(None)
        dropped_count = pool.counter(DROPPED)
        pool.go(RELEASE)
        results = pool.results(timeout=120)
    start, end = overall_window(results)
    failed = merge_counts(results, "failed")
    common = finish(target, opts, results, window, rss_before, failed)
    per_socket = (
        round((rss_open - rss_before) / opened, 2) if opened and rss_open and rss_before else None
    )
    out: dict[str, Any] = {
        "sockets_opened": opened,
        "sockets_failed": sum(failed.values()),
        "errors": failed,
        "open_seconds": round(end - start, 3),
        "opened_per_second": round(opened / max(end - start, 1e-9), 1),
        "server_connections_reported": server_count,
        "rss_before_kib": rss_before,
        "rss_open_kib": rss_open,
        "rss_kib_per_socket": per_socket,
    }
    if params.hold > 0:
        out.update(
            hold_seconds=params.hold,
            dropped=dropped_count,
            dropped_by_code=merge_counts(results, "dropped"),
            hold_server_cpu_pct=hold_cpu.get("server_cpu_pct"),
        )
        if dropped_count:
            common["warnings"].append(f"{dropped_count} sockets dropped during the hold")
    if server_count is not None and server_count != opened:
        common["warnings"].append(f"server reports {server_count} sockets, client opened {opened}")
    return {"results": out, **common}


def headline(record: dict[str, Any]) -> list[tuple[str, str]]:
    r = record["results"]
    rows = [
        ("sockets opened / failed", f"{r['sockets_opened']:,} / {r['sockets_failed']:,}"),
        ("server RSS KiB per socket", str(r["rss_kib_per_socket"])),
        ("server RSS before → open (MiB)", _mib(r["rss_before_kib"], r["rss_open_kib"])),
        ("opened/s", f"{r['opened_per_second']:,.0f}"),
    ]
    if "hold_seconds" in r:
        rows.append(("held s / dropped", f"{r['hold_seconds']:.0f} / {r['dropped']}"))
        rows.append(("server CPU % while held", str(r["hold_server_cpu_pct"])))
    return rows


def _mib(before: int | None, after: int | None) -> str:
    if before is None or after is None:
        return "n/a"
    return f"{before / 1024:.1f} → {after / 1024:.1f}"
