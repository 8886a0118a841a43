"""Log-analysis benchmark: generate a realistic fitiq_rt server log, time ``logs report`` on it.

The generator simulates a server in discrete events (a heap ordered by time): users with one
or two devices connect and reconnect, ping every 30 s, post meal logs that get processed and
notified (delivered live when a socket is open, queued otherwise, replayed on resume), and poll
over HTTP while offline. Proportions are roughly those of a busy production log: debug ping/pong
lines dominate, then the access log, then lifecycle and meal-log events. A healthy server is
simulated, so the analyzer must report no errors on it: that doubles as a false-positive test.

Run from the repository root::

    python -m benchmarks.logs_bench --lines 1000000

It prints a table and writes ``benchmarks/results/logs.json``. The analysis runs in a child
process so the peak RSS it reports (``resource.getrusage``) is the analyzer's alone.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from fitiq_rt import events as ev

START_EPOCH = datetime(2026, 11, 25, 19, 0, tzinfo=UTC).timestamp()
PING_INTERVAL = 30.0
RESULTS = Path(__file__).resolve().parent / "results" / "logs.json"

# Why sessions end, and the close code each reason carries (CONTRACT.md §4).
REASONS: tuple[tuple[str, int, float], ...] = (
    ("client_closed", 1000, 0.86),
    ("idle_timeout", 4008, 0.07),
    ("token_expired", 4001, 0.03),
    ("slow_consumer", 4029, 0.01),
    ("policy_violation", 1008, 0.005),
    ("protocol_error", 1002, 0.005),
    ("error", 1011, 0.02),
)


@dataclass
class _Conn:
    cid: str
    user: str
    device: int
    opened: float


@dataclass
class _Sim:
    """State of one simulated server; ``emit`` writes one log line."""

    out: BinaryIO
    rng: random.Random
    users: list[str]
    now: float = START_EPOCH
    written: int = 0
    heap: list[tuple[float, int, str, Any]] = field(default_factory=list)
    counter: int = 0
    open: dict[str, _Conn] = field(default_factory=dict)
    by_user: dict[str, set[str]] = field(default_factory=dict)
    seq: dict[str, int] = field(default_factory=dict)
    acked: dict[tuple[str, int], int] = field(default_factory=dict)  # last seq a device saw
    meal_created: dict[str, float] = field(default_factory=dict)
    _stamp_cache: tuple[int, str] = (-1, "")

    def stamp(self) -> str:
        second = int(self.now)
        if self._stamp_cache[0] != second:
            text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            self._stamp_cache = (second, text)
        micros = int((self.now - second) * 1_000_000)
        return f"{self._stamp_cache[1]}.{micros:06d}Z"

    def emit(self, event: str, level: str = "info", **fields: Any) -> None:
        fields["event"] = event
        fields["level"] = level
        fields["timestamp"] = self.stamp()
        self.out.write(orjson.dumps(fields))
        self.out.write(b"\n")
        self.written += 1

    def at(self, delay: float, kind: str, payload: Any) -> None:
        self.counter += 1
        heapq.heappush(self.heap, (self.now + delay, self.counter, kind, payload))


def _connect(sim: _Sim, payload: tuple[str, int]) -> None:
    user, device = payload
    rng = sim.rng
    if rng.random() < 0.01:
        sim.emit(ev.WS_REJECTED, "warning", reason="expired_token", path="/ws/meal-logs")
        sim.emit(
            ev.HTTP_REQUEST,
            method="GET",
            path="/ws/meal-logs?token=[REDACTED]",
            status=401,
            duration_ms=0.4,
            bytes=64,
        )
        sim.at(rng.uniform(1, 10), "connect", payload)
        return
    cid = uuid.UUID(int=rng.getrandbits(128)).hex[:16]
    conn = _Conn(cid, user, device, sim.now)
    sim.open[cid] = conn
    sim.by_user.setdefault(user, set()).add(cid)
    sim.emit(
        ev.HTTP_REQUEST,
        method="GET",
        path="/ws/meal-logs?token=[REDACTED]",
        status=101,
        duration_ms=round(rng.uniform(0.5, 3), 2),
        bytes=0,
    )
    sim.emit(
        ev.WS_CONNECTED,
        user_id=user,
        connection_id=cid,
        user_connections=len(sim.by_user[user]),
        total_connections=len(sim.open),
    )
    last = sim.acked.get((user, device))
    if last is not None:
        newest = sim.seq.get(user, 0)
        sim.emit(
            ev.WS_RESUMED,
            user_id=user,
            connection_id=cid,
            last_seq=last,
            replayed=newest - last,
            complete=True,
        )
    sim.acked[(user, device)] = sim.seq.get(user, 0)
    sim.at(rng.uniform(1, PING_INTERVAL), "ping", cid)
    sim.at(rng.lognormvariate(6.0, 1.2), "disconnect", cid)  # median ≈ 7 min


def _ping(sim: _Sim, cid: str) -> None:
    conn = sim.open.get(cid)
    if conn is None:
        return
    sim.emit(ev.WS_PING_RECEIVED, "debug", user_id=conn.user, connection_id=cid)
    sim.emit(ev.WS_PONG_SENT, "debug", user_id=conn.user, connection_id=cid)
    sim.at(PING_INTERVAL + sim.rng.uniform(-0.5, 0.5), "ping", cid)


def _close(sim: _Sim, conn: _Conn, reason: str, code: int) -> None:
    del sim.open[conn.cid]
    cids = sim.by_user[conn.user]
    cids.discard(conn.cid)
    sim.emit(
        ev.WS_DISCONNECTED,
        user_id=conn.user,
        connection_id=conn.cid,
        reason=reason,
        code=code,
        duration_seconds=round(sim.now - conn.opened, 3),
        user_connections=len(cids),
        total_connections=len(sim.open),
    )


def _pick_reason(roll: float) -> tuple[str, int]:
    for reason, code, share in REASONS:
        roll -= share
        if roll <= 0:
            return reason, code
    return REASONS[0][0], REASONS[0][1]


def _disconnect(sim: _Sim, cid: str) -> None:
    conn = sim.open.get(cid)
    if conn is None:
        return
    rng = sim.rng
    reason, code = _pick_reason(rng.random())
    if reason == "idle_timeout":
        sim.emit(ev.WS_STALE, "warning", user_id=conn.user, connection_id=cid, idle_seconds=90.0)
    _close(sim, conn, reason, code)
    sim.at(rng.expovariate(1 / 180), "connect", (conn.user, conn.device))
    sim.at(30 + rng.uniform(0, 5), "poll", (conn.user, conn.device))


def _poll(sim: _Sim, payload: tuple[str, int]) -> None:
    user, device = payload
    if any(sim.open[c].device == device for c in sim.by_user.get(user, ())):
        return  # reconnected: polling stops
    sim.emit(
        ev.HTTP_REQUEST,
        method="GET",
        path="/api/v1/meal-logs",
        status=200,
        duration_ms=round(sim.rng.uniform(0.8, 4), 2),
        bytes=512,
    )
    sim.at(30 + sim.rng.uniform(0, 5), "poll", payload)


def _post_meal(sim: _Sim, user: str) -> None:
    rng = sim.rng
    meal = uuid.UUID(int=rng.getrandbits(128)).hex
    sim.emit(
        ev.HTTP_REQUEST,
        method="POST",
        path="/api/v1/meal-logs/natural",
        status=201,
        duration_ms=round(rng.uniform(1, 4), 2),
        bytes=420,
    )
    sim.emit(ev.MEAL_LOG_CREATED, user_id=user, meal_log_id=meal)
    sim.meal_created[meal] = sim.now
    sim.at(rng.uniform(0.5, 8), "process", (user, meal))
    sim.at(rng.expovariate(1 / 900), "post", user)


def _process(sim: _Sim, payload: tuple[str, str]) -> None:
    user, meal = payload
    created = sim.meal_created.pop(meal)
    took = round((sim.now - created) * 1000, 1)
    if sim.rng.random() < 0.03:
        sim.emit(ev.MEAL_LOG_FAILED, "warning", user_id=user, meal_log_id=meal, error="no_match")
    else:
        sim.emit(ev.MEAL_LOG_PROCESSED, user_id=user, meal_log_id=meal, duration_ms=took)
    seq = sim.seq.get(user, 0) + 1
    sim.seq[user] = seq
    cids = sim.by_user.get(user)
    if cids:
        latency = round(took + sim.rng.uniform(0.2, 3), 2)
        sim.emit(
            ev.NOTIFICATION_DELIVERED,
            user_id=user,
            seq=seq,
            connections=len(cids),
            meal_log_id=meal,
            latency_ms=latency,
        )
        for cid in cids:
            sim.acked[(user, sim.open[cid].device)] = seq
    else:
        sim.emit(ev.NOTIFICATION_QUEUED, user_id=user, seq=seq, meal_log_id=meal)


_STEPS: dict[str, Callable[[_Sim, Any], None]] = {
    "connect": _connect,
    "ping": _ping,
    "disconnect": _disconnect,
    "poll": _poll,
    "post": _post_meal,
    "process": _process,
}


def _shutdown(sim: _Sim) -> None:
    """Graceful stop: every open socket gets its ws.disconnected before server.stopped."""
    closed = 0
    for conn in list(sim.open.values()):
        _close(sim, conn, "server_shutdown", 1001)
        closed += 1
    sim.emit(ev.SERVER_STOPPED, connections_closed=closed)


def generate_log(path: str | Path, lines: int, users: int, seed: int) -> None:
    """Write a healthy server's log of about ``lines`` lines (±1 %) for ``users`` users."""
    rng = random.Random(seed)
    names = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(users)]
    with open(path, "wb", buffering=1 << 20) as out:
        sim = _Sim(out=out, rng=rng, users=names)
        sim.emit(ev.SERVER_STARTED, host="0.0.0.0", port=8080, version="0.1.0")
        for user in names:
            devices = 2 if rng.random() < 0.15 else 1
            for device in range(devices):
                sim.at(rng.uniform(0, 300), "connect", (user, device))
            sim.at(rng.uniform(0, 900), "post", user)
        while sim.heap and sim.written + len(sim.open) + 1 < lines:
            when, _, kind, payload = heapq.heappop(sim.heap)
            sim.now = when
            _STEPS[kind](sim, payload)
        sim.now += 1.0
        _shutdown(sim)


# --------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------


def _analyze_once(path: str) -> dict[str, Any]:
    """Child-process body: one timed analysis, its summary and this process's peak RSS."""
    from fitiq_rt.logreport import analyze

    started = time.perf_counter()
    report = analyze([path])
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "lines": report.parse.lines,
        "sessions": report.connections.sessions,
        "errors": sum(1 for a in report.anomalies if a.severity == "error"),
        "anomalies": report.anomaly_counts,
        "metrics": {m.key: m.value for m in report.metrics},
    }


def _run_child(path: str) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "benchmarks.logs_bench", "--child", path]
    done = subprocess.run(cmd, check=True, capture_output=True, cwd=Path(__file__).parent.parent)
    return json.loads(done.stdout)


def run(lines: int, users: int, seed: int, repeat: int, keep: str | None) -> dict[str, Any]:
    """Generate once, analyse ``repeat`` times in fresh processes, return the result record."""
    with tempfile.TemporaryDirectory() as tmp:
        path = keep or os.path.join(tmp, "server.log")
        started = time.perf_counter()
        generate_log(path, lines, users, seed)
        generated = time.perf_counter() - started
        runs = [_run_child(path) for _ in range(repeat)]
        size = os.path.getsize(path)
    seconds = statistics.median(r["seconds"] for r in runs)
    last = runs[-1]
    return {
        "benchmark": "logs_report",
        "lines": last["lines"],
        "bytes": size,
        "users": users,
        "seed": seed,
        "repeat": repeat,
        "seconds": round(seconds, 3),
        "seconds_all": [round(r["seconds"], 3) for r in runs],
        "lines_per_second": round(last["lines"] / seconds),
        "mib_per_second": round(size / seconds / 2**20, 1),
        "peak_rss_mib": round(max(r["peak_rss_kib"] for r in runs) / 1024, 1),
        "generate_seconds": round(generated, 2),
        "sessions": last["sessions"],
        "error_anomalies": last["errors"],
        "anomaly_counts": last["anomalies"],
        "metrics": last["metrics"],
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
    }


def _print_table(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="fitiq-rt logs report — analyzer throughput")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key in (
        "lines",
        "bytes",
        "users",
        "seconds",
        "lines_per_second",
        "mib_per_second",
        "peak_rss_mib",
        "sessions",
        "error_anomalies",
        "generate_seconds",
    ):
        table.add_row(key, f"{result[key]:,}" if isinstance(result[key], int) else str(result[key]))
    Console().print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.logs_bench", description=__doc__)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", metavar="PATH", help="write the generated log here and keep it")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--child", metavar="PATH", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        sys.stdout.write(json.dumps(_analyze_once(args.child)))
        return 0
    result = run(args.lines, args.users, args.seed, args.repeat, args.keep)
    _print_table(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
