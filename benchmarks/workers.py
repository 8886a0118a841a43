"""Client processes: each runs one trio loop of a scenario's worker on the client CPUs.

Why processes: one Python process saturates one core long before a server does, so
`--client-procs N` splits the load N ways. Even with N = 1 the load runs in a child process, so
its CPU time is measured on its own (saturation warning) and the parent stays free to sample the
server's RSS and CPU and to print progress.

Coordination is by shared memory, polled: each worker publishes the stage it reached and a few
counters; the parent publishes a `go` level that workers wait for between phases.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue as queue_module
import resource
import time
import traceback
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import trio

# Stages a worker reports / go levels the parent sets.
READY = 1  # connected / prepared; waiting for go
RUN = 2  # measuring
DONE = 3  # measured; may still hold sockets until RELEASE
RELEASE = 4  # parent: close everything and return
SLOTS = 4  # counters per worker: 0 progress, 1 errors, 2 and 3 scenario-defined
POLL = 0.02
SATURATED = 0.9  # client CPU seconds per wall second at which the client is the bottleneck


class WorkerFailed(Exception):
    """A client process raised or died; the message holds its traceback."""


def _cpu_now() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class WorkerContext:
    """What a worker sees: its index, the scenario's parameters and the shared state."""

    index: int
    procs: int
    params: Any
    _stage: Any
    _go: Any
    _counters: Any
    window_start: float = 0.0
    window_end: float = 0.0
    cpu_start: float = 0.0
    cpu_end: float = 0.0

    def stage(self, value: int) -> None:
        self._stage[self.index] = value

    async def until(self, level: int) -> None:
        """Wait until the parent's go level reaches `level`."""
        # Shared memory written by another process cannot wake a trio.Event: poll it.
        while self._go.value < level:
            await trio.sleep(POLL)

    def count(self, slot: int, value: int) -> None:
        self._counters[self.index * SLOTS + slot] = value

    def begin(self) -> None:
        """Start the measured window (wall clock shared by all processes, and this CPU)."""
        self.window_start = time.monotonic()
        self.cpu_start = _cpu_now()

    def end(self) -> None:
        self.window_end = time.monotonic()
        self.cpu_end = _cpu_now()


WorkerFn = Callable[[WorkerContext], Awaitable[dict[str, Any]]]


def _child(fn: WorkerFn, ctx: WorkerContext, results: Any, cpus: Iterable[int] | None) -> None:
    if cpus is not None:
        os.sched_setaffinity(0, set(cpus))
    try:
        result = trio.run(fn, ctx)
        if not ctx.window_end:
            ctx.end()
        result["_window"] = {
            "start": ctx.window_start,
            "end": ctx.window_end,
            "cpu_seconds": ctx.cpu_end - ctx.cpu_start,
        }
        results.put(("ok", ctx.index, result))
    except BaseException:
        results.put(("error", ctx.index, traceback.format_exc()))


class ClientPool:
    """N worker processes of one scenario; use as a context manager."""

    def __init__(self, fn: WorkerFn, params: Any, procs: int, cpus: frozenset[int] | None) -> None:
        self._mp = mp.get_context("fork")  # the parent runs no trio loop and no threads
        self.procs = procs
        self._stage = self._mp.Array("i", procs, lock=False)
        self._go = self._mp.Value("i", 0, lock=False)
        self._counters = self._mp.Array("q", procs * SLOTS, lock=False)
        self._results = self._mp.Queue()
        self._done: dict[int, dict[str, Any]] = {}
        self._processes = [
            self._mp.Process(
                target=_child,
                args=(
                    fn,
                    WorkerContext(i, procs, params, self._stage, self._go, self._counters),
                    self._results,
                    cpus,
                ),
                daemon=True,
            )
            for i in range(procs)
        ]

    def __enter__(self) -> ClientPool:
        for process in self._processes:
            process.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        for process in self._processes:
            process.join(5)
            if process.is_alive():
                process.kill()
                process.join(5)

    def go(self, level: int) -> None:
        self._go.value = level

    def counter(self, slot: int) -> int:
        return sum(self._counters[i * SLOTS + slot] for i in range(self.procs))

    def _drain(self) -> None:
        while True:
            try:
                kind, index, payload = self._results.get_nowait()
            except queue_module.Empty:
                break
            if kind == "error":
                raise WorkerFailed(f"client process {index} failed:\n{payload}")
            self._done[index] = payload
        for index, process in enumerate(self._processes):
            if process.exitcode not in (None, 0) and index not in self._done:
                raise WorkerFailed(f"client process {index} died with exit code {process.exitcode}")

    def wait(
        self,
        stage: int,
        *,
        indices: Iterable[int] | None = None,
        timeout: float | None = None,
        tick: Callable[[], None] | None = None,
    ) -> None:
        """Block until the workers reached `stage` (or returned); `tick` runs ~4 times a second."""
        wanted = list(range(self.procs)) if indices is None else list(indices)
        deadline = None if timeout is None else time.monotonic() + timeout
        last_tick = 0.0
        while True:
            self._drain()
            if all(self._stage[i] >= stage or i in self._done for i in wanted):
                return
            now = time.monotonic()
            if deadline is not None and now > deadline:
                raise WorkerFailed(f"client processes did not reach stage {stage} in {timeout}s")
            if tick is not None and now - last_tick >= 0.25:
                last_tick = now
                tick()
            time.sleep(POLL)

    def results(self, timeout: float = 60.0) -> list[dict[str, Any]]:
        """Every worker's result dict, in index order."""
        deadline = time.monotonic() + timeout
        while len(self._done) < self.procs:
            self._drain()
            if time.monotonic() > deadline:
                raise WorkerFailed("client processes did not return their results")
            time.sleep(POLL)
        return [self._done[i] for i in range(self.procs)]


def client_usage(results: list[dict[str, Any]], client_cpus: int) -> dict[str, Any]:
    """CPU the client processes used in their windows; `saturated` when they were the limit."""
    ratios, cpu_total = [], 0.0
    for result in results:
        window = result["_window"]
        wall = max(window["end"] - window["start"], 1e-9)
        cpu_total += window["cpu_seconds"]
        ratios.append(window["cpu_seconds"] / wall)
    busiest = max(ratios, default=0.0)
    per_cpu = sum(ratios) / max(client_cpus, 1)
    return {
        "cpu_seconds": round(cpu_total, 3),
        "busiest_proc_cpu_ratio": round(busiest, 3),
        "cpu_ratio_per_client_cpu": round(per_cpu, 3),
        "saturated": busiest >= SATURATED or per_cpu >= SATURATED,
    }


def overall_window(results: list[dict[str, Any]]) -> tuple[float, float]:
    """Earliest start and latest end across workers (one monotonic clock for all processes)."""
    starts = [r["_window"]["start"] for r in results]
    ends = [r["_window"]["end"] for r in results]
    return min(starts), max(ends)
