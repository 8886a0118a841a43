"""e2e: POST /api/v1/meal-logs/natural → `meal_log.completed` on the user's socket, latency.

U users each hold one socket; POSTs go out open-loop at R per second (round-robin over the
users) on keep-alive connections. Latency runs from the moment the request is written to the
moment the notification frame is read, matched by meal-log id (the frame may beat the 201).
This is the product's promise — a logged meal shows up live — measured end to end.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import trio

from .. import procfs
from ..argtypes import positive_float, positive_int
from ..diskbusy import DEFAULT_CHUNK_MIB, DEFAULT_MIB_PER_SECOND, DiskBusy
from ..httpclient import HttpPool
from ..launch import Target, log_events
from ..progress import Progress
from ..stats import share, summarize_ms
from ..workers import DONE, READY, RUN, ClientPool, WorkerContext, overall_window
from ..wsclient import WsClosed, WsConn
from .common import (
    BUSY_MACHINE_PCT,
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
DISK_BUSY_LEAD = 2.0  # seconds the disk-busy writer runs before the measured window opens


@dataclass(frozen=True)
class E2EParams:
    users: int = 200
    rate: float = 200.0
    duration: float = 10.0
    http_conns: int = 32
    drain: float = 5.0
    raw_input: str = "2 eggs and a slice of toast"
    timeout: float = 30.0
    disk_busy: bool = False
    disk_busy_chunk_mib: int = DEFAULT_CHUNK_MIB
    disk_busy_mib_per_second: float = DEFAULT_MIB_PER_SECOND
    store_trace: bool = False

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
    parser.add_argument(
        f"{p}disk-busy",
        action="store_true",
        help="run a second process beside the server that writes and fsyncs on the filesystem "
        "of its data directory (a `dd conv=fsync` loop) for the whole run",
    )
    parser.add_argument(
        f"{p}disk-busy-chunk-mib",
        type=positive_int,
        default=DEFAULT_CHUNK_MIB,
        help="with --disk-busy: MiB the writer writes per fsync",
    )
    parser.add_argument(
        f"{p}disk-busy-mib-per-second",
        type=float,
        default=DEFAULT_MIB_PER_SECOND,
        help="with --disk-busy: the writer's pace (0: flat out, which costs a whole CPU)",
    )
    parser.add_argument(
        f"{p}store-trace",
        action="store_true",
        help="started fitiq_rt: log level debug, and a per-kind summary of its `store.call` "
        "lines (queue wait and run time of each store call) in the record",
    )


def params_from(args: argparse.Namespace, prefix: str = "") -> E2EParams:
    p = prefix.replace("-", "_")
    return E2EParams(
        users=getattr(args, f"{p}users"),
        rate=getattr(args, f"{p}rate"),
        duration=getattr(args, f"{p}duration"),
        http_conns=getattr(args, f"{p}http_conns", 32),
        disk_busy=getattr(args, f"{p}disk_busy", False),
        disk_busy_chunk_mib=getattr(args, f"{p}disk_busy_chunk_mib", DEFAULT_CHUNK_MIB),
        disk_busy_mib_per_second=getattr(
            args, f"{p}disk_busy_mib_per_second", DEFAULT_MIB_PER_SECOND
        ),
        store_trace=getattr(args, f"{p}store_trace", False),
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
    busy_dir = target.data_dir or Path(tempfile.gettempdir())
    busy = DiskBusy(
        busy_dir, params.disk_busy_chunk_mib, params.disk_busy_mib_per_second, opts.plan.client
    )
    disk_busy: dict[str, Any] | None = None
    with ClientPool(worker, payload, procs, opts.plan.client) as pool:
        pool.wait(READY, timeout=120)
        with busy if params.disk_busy else contextlib.nullcontext():
            if params.disk_busy:
                time.sleep(DISK_BUSY_LEAD)  # the writer's dirty pages build up before we measure
            window = procfs.CpuWindow(target.pid).open()
            pool.go(RUN)
            progress = Progress(f"e2e {target.name}", params.posts, "posts", enabled=opts.progress)
            pool.wait(
                DONE, tick=lambda: progress.update(pool.counter(0), f"errors {pool.counter(1)}")
            )
            window.stop()
            progress.close()
            if params.disk_busy:
                disk_busy = busy.stop()
        results = pool.results(timeout=120)
    start, end = overall_window(results)
    errors = merge_counts(results, "errors")
    missing = sum(r["missing"] for r in results)
    if missing:
        errors["notification_missing"] = missing
    common = finish(target, opts, results, window, rss_before, errors)
    if disk_busy and "cpu_pct" in disk_busy:
        _discount_writer(common, disk_busy["cpu_pct"])
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
            "server_cpu_ms_per_post": cpu_ms_per_post(common["cpu"], posted),
        },
        "disk_busy": disk_busy,
        "store_calls": store_calls(target, start, end) if params.store_trace else None,
        "wal_restarts": wal_restarts(target, start, end),
        **common,
    }


def cpu_ms_per_post(cpu: dict[str, Any], posted: int) -> float | None:
    """Server CPU per meal log, over the whole window (POST, processing, notification).

    Why: latency on a shared CPU swings with the machine and with queueing, while this cost per
    meal log is what a code change moves; the window closes only when every notification has
    arrived, so a saturated server's backlog is counted too.
    """
    if cpu.get("server_cpu_pct") is None or not posted:
        return None
    return round(cpu["server_cpu_pct"] * 10 * cpu["wall_seconds"] / posted, 3)


def _discount_writer(common: dict[str, Any], writer_pct: float) -> None:
    """The disk-busy writer is our own load, not other people's: keep it out of `other_cpu_pct`
    (and so out of the noisy-run warning and --retry-noisy), and report it on its own."""
    cpu = common["cpu"]
    cpu["disk_busy_cpu_pct"] = writer_pct
    if cpu.get("other_cpu_pct") is None:
        return
    cpu["other_cpu_pct"] = round(max(0.0, cpu["other_cpu_pct"] - writer_pct), 1)
    common["warnings"] = [w for w in common["warnings"] if not w.startswith("other processes")]
    if cpu["other_cpu_pct"] >= BUSY_MACHINE_PCT:
        common["warnings"].append(
            f"other processes used {cpu['other_cpu_pct']:.0f}% of a CPU during the run: noisy"
        )


def store_calls(target: Target, start: float, end: float) -> dict[str, Any]:
    """Per kind of store call inside the measured window: queue wait, run time, resume delay.

    Read from the server's `store.call` debug lines (src/fitiq_rt/meals/store_trace.py); `at` is
    the system monotonic clock, the same one the window was taken on.
    """
    if target.log_path is None:
        return {"error": "no server log (attached to --url)"}
    samples: dict[str, dict[str, list[float]]] = {}
    try:
        calls = list(log_events(target.log_path, "store.call"))
    except OSError as error:
        return {"error": f"server log unreadable: {error}"}
    for event in calls:
        if not start <= event.get("at", 0.0) <= end:
            continue
        kind = samples.setdefault(event["kind"], {"queue_ms": [], "run_ms": [], "resume_ms": []})
        for field_name in ("queue_ms", "run_ms", "resume_ms"):
            kind[field_name].append(event[field_name])
        if "batch" in event:  # writes committed together (SQLite's group commit)
            kind.setdefault("batch", []).append(event["batch"])
    if not samples:
        return {"error": "no store.call lines in the window (not fitiq_rt, or not at debug)"}
    return {
        kind: {name: summarize_ms(values) for name, values in fields.items()}
        for kind, fields in sorted(samples.items())
    }


def wal_restarts(target: Target, start: float, end: float) -> dict[str, Any] | None:
    """fitiq_rt's `store.wal_restarted` lines in the window: how often writes were held for a
    WAL rewind, and for how long (the stall size distribution). None without a server log.

    A line without `at` (fitiq_rt before it logged one) counts wherever it fell: a server's
    writes all happen in the measured window but for the warm-up's few."""
    if target.log_path is None:
        return None
    try:
        rewinds = list(log_events(target.log_path, "store.wal_restarted"))
    except OSError:
        return None
    held: list[float] = []
    for event in rewinds:
        if "at" in event and not start <= event["at"] <= end:
            continue
        held.append(event["writes_held_ms"])
    return {"count": len(held), "writes_held_ms": summarize_ms(held)}


def headline(record: dict[str, Any]) -> list[tuple[str, str]]:
    r = record["results"]
    lat, post = r["latency_ms"], r["post_response_ms"]
    rows = [
        ("POST → frame ms p50 / p90 / p99 / max", _four(lat)),
        ("POST → 201 ms p50 / p90 / p99 / max", _four(post)),
        (
            "posts ok / notified / missing",
            f"{r['posts_ok']:,} / {r['notified']:,} / {r['missing']}",
        ),
        ("achieved POST/s", f"{r['achieved_rate']:,.0f}"),
        ("server CPU %", str(r["server_cpu_pct"])),
        ("server CPU ms per meal log", str(r.get("server_cpu_ms_per_post"))),
    ]
    busy = record.get("disk_busy")
    if busy and "fsync_ms" in busy:
        fsync = busy["fsync_ms"]
        rows.append(
            (
                "disk-busy writer MiB/s, CPU %, fsync ms p50 / max",
                f"{busy['mib_per_second']}, {busy['cpu_pct']}, {fsync['p50']} / {fsync['max']}",
            )
        )
    restarts = record.get("wal_restarts")
    if restarts and restarts["count"]:
        held = restarts["writes_held_ms"]
        rows.append(
            (
                "WAL rewinds (writes held ms p50 / max)",
                f"{restarts['count']} ({held['p50']} / {held['max']})",
            )
        )
    for kind, fields in (record.get("store_calls") or {}).items():
        if isinstance(fields, dict):
            queue, ran = fields["queue_ms"], fields["run_ms"]
            rows.append(
                (
                    f"store {kind} ×{queue['count']}: queue / run ms p50, p99, max",
                    f"{queue['p50']}, {queue['p99']}, {queue['max']} / "
                    f"{ran['p50']}, {ran['p99']}, {ran['max']}",
                )
            )
    return rows


def _four(summary: dict[str, Any]) -> str:
    return " / ".join(str(summary[k]) for k in ("p50", "p90", "p99", "max"))
