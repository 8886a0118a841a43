"""Opt-in timing of store calls: how long each waited for a thread and how long it ran.

Why: every store call crosses into a worker thread, so one call that waits on the disk makes the
calls queued behind it wait too, and a latency tail can be queueing or execution. At log level
debug each call writes one `store.call` line (kind, queue_ms, run_ms, resume_ms, batch: the
writes committed together, and `at`, the system monotonic clock, so a benchmark can keep the
calls inside its measured window);
`python -m benchmarks e2e --store-trace` summarises them per kind. At any other level a call
costs three `perf_counter` reads and one bool check.
"""

from __future__ import annotations

import logging
import time

from .. import events
from ..logconfig import get_logger

log = get_logger("fitiq_rt.store")


class CallTimer:
    """The three moments of one store call: queued (event loop), started and ended (thread)."""

    __slots__ = ("batch", "ended", "kind", "queued", "started")

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.batch = 1  # writes committed in the same transaction (SQLite's group commit)
        self.queued = time.perf_counter()
        self.started = self.queued
        self.ended = self.queued

    def start(self) -> None:
        """Called in the worker thread as the call begins (after any limiter and pool wait)."""
        self.started = time.perf_counter()

    def stop(self) -> None:
        self.ended = time.perf_counter()

    def report(self) -> None:
        """Back on the event loop: one debug line, when debug is on."""
        if not log.is_enabled_for(logging.DEBUG):
            return
        back = time.perf_counter()
        log.debug(
            events.STORE_CALL,
            kind=self.kind,
            queue_ms=round((self.started - self.queued) * 1000, 3),
            run_ms=round((self.ended - self.started) * 1000, 3),
            resume_ms=round((back - self.ended) * 1000, 3),
            batch=self.batch,
            at=round(time.monotonic(), 4),
        )
