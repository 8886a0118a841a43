"""What every load scenario shares: run options, the wire to the server, warm-up, and the
closing bookkeeping (client saturation, other load on the machine, leak check)."""

from __future__ import annotations

import errno
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
import trio

from .. import leaks, procfs
from ..httpclient import HttpError
from ..launch import CpuPlan, Target
from ..tokens import TokenSource
from ..workers import client_usage
from ..wsclient import Endpoint, HandshakeRefused, WsClosed, WsConn, open_ws

PING = b'{"type":"ping"}'
PONG = b'{"type":"pong"}'
BUSY_MACHINE_PCT = 20.0  # CPU % used by neither server nor client above which numbers are noisy


@dataclass(frozen=True)
class RunOptions:
    """Harness settings that are not the scenario's own parameters."""

    procs: int = 1
    plan: CpuPlan = field(default_factory=lambda: CpuPlan(None, None))
    ws_client: str = "lean"
    progress: bool = True
    warmup: int | None = None  # None: the scenario's WARMUP
    leak_timeout: float = 5.0
    wait_quiet: float = 0.0
    retry_noisy: int = 0

    def settle_machine(self) -> dict[str, Any] | None:
        """Before a measurement: wait for other load to calm down, if asked to."""
        return procfs.wait_quiet(self.wait_quiet) if self.wait_quiet > 0 else None

    @property
    def client_cpu_count(self) -> int:
        import os

        return len(self.plan.client) if self.plan.client else len(os.sched_getaffinity(0))


@dataclass(frozen=True)
class Wire:
    """What a client process needs to reach the server (inherited through fork)."""

    endpoint: Endpoint
    tokens: TokenSource
    ws_client: str

    @classmethod
    def of(cls, target: Target, opts: RunOptions) -> Wire:
        return cls(target.endpoint, target.tokens, opts.ws_client)


class Unexpected(Exception):
    """The server sent something the scenario did not expect at that point."""


def error_kind(error: BaseException) -> str:
    """A short, countable name for why one session or request failed."""
    if isinstance(error, HandshakeRefused):
        return f"http_{error.status}"
    if isinstance(error, WsClosed):
        return f"closed_{error.code}"
    if isinstance(error, trio.TooSlowError):
        return "timeout"
    if isinstance(error, Unexpected):
        return f"unexpected_{error}"
    if isinstance(error, HttpError):
        return "http_broken"
    if isinstance(error, OSError):
        return f"os_{errno.errorcode.get(error.errno or 0, 'error')}"
    return type(error).__name__


async def expect_welcome(ws: WsConn) -> dict[str, Any]:
    message = orjson.loads(await ws.recv())
    if message.get("type") != "welcome":
        raise Unexpected("first_frame")
    return message


async def answer_until_closed(ws: WsConn, on_message: Any = None) -> None:
    """Read until the socket closes: answer server pings, hand anything else to `on_message`."""
    while True:
        raw = await ws.recv()
        message = orjson.loads(raw)
        kind = message.get("type")
        if kind == "ping":
            await ws.send(PONG)
        elif on_message is not None:
            on_message(message)


@asynccontextmanager
async def welcomed(
    wire: Wire, token: str, gate: trio.Semaphore | None = None, handshake_timeout: float = 30.0
) -> AsyncIterator[WsConn]:
    """A socket past its welcome frame; `gate` bounds handshakes in flight, not open sockets."""
    gated = gate is not None
    if gate is not None:
        await gate.acquire()
    try:
        async with open_ws(
            wire.endpoint, token, kind=wire.ws_client, connect_timeout=handshake_timeout
        ) as ws:
            with trio.fail_after(handshake_timeout):
                await expect_welcome(ws)
            if gate is not None:
                gate.release()
                gated = False
            yield ws
    finally:
        if gated and gate is not None:
            gate.release()


def merge_counts(results: list[dict[str, Any]], key: str) -> dict[str, int]:
    total: Counter[str] = Counter()
    for result in results:
        total.update(result.get(key, {}))
    return dict(total)


def server_rss(target: Target) -> int | None:
    return procfs.rss_kib(target.pid) if target.pid else None


def warm_up(target: Target, opts: RunOptions, default: int) -> None:
    """Churned sessions first, so lazy imports, first-use caches and a JIT are not measured.

    Why thousands: the Node peer churns ~2,700 sessions/s right after start and ~4,400 after
    5,000 warm-up sessions on this machine; Python servers barely move.
    """
    sessions = default if opts.warmup is None else opts.warmup
    if sessions <= 0:
        return
    from . import churn

    churn.sessions_only(target, opts, sessions)


def finish(
    target: Target,
    opts: RunOptions,
    worker_results: list[dict[str, Any]],
    window: procfs.CpuWindow,
    rss_before: int | None,
    errors: dict[str, int],
) -> dict[str, Any]:
    """The bookkeeping every scenario ends with; returns the common part of its record."""
    usage = client_usage(worker_results, opts.client_cpu_count)
    cpu = window.close(usage["cpu_seconds"])
    leak = leaks.check(target, rss_before, opts.leak_timeout)
    warnings = []
    if usage["saturated"]:
        warnings.append(
            f"client CPU saturated (busiest client process at {usage['busiest_proc_cpu_ratio']:.2f}"
            " CPU s per wall s): the number measures the load generator, try --client-procs"
        )
    if (cpu["other_cpu_pct"] or 0) >= BUSY_MACHINE_PCT:
        warnings.append(
            f"other processes used {cpu['other_cpu_pct']:.0f}% of a CPU during the run: noisy"
        )
    if errors:
        warnings.append(f"errors: {errors}")
    if leak["checked"] and not leak["passed"]:
        warnings.append(
            f"leak: server still lists {leak['total_connections_after']} sockets after "
            f"{opts.leak_timeout:.0f}s"
        )
    elif not leak["checked"]:
        warnings.append("leak check skipped: " + leak.get("reason", "debug endpoint unreachable"))
    return {"client": usage, "cpu": cpu, "leak_check": leak, "warnings": warnings}
