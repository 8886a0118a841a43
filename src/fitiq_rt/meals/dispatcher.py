"""The dispatcher: a bounded queue of meal-log ids served by N workers.

Nothing is lost: the queue holds only ids of rows already stored, so a full queue, a store
outage or a crash leaves the row unfinished (pending, or `processing` under this node's claim),
and the recovery pass queues it again: at start, after an overflow, every `recovery_interval`,
and, after the store failed a worker, every second until the store answers. A result that cannot
be saved is retried in place first (for `finish_retry_timeout`), so a meal log processed during a
short outage finishes about when the outage ends. A processor error or timeout marks the meal log
failed with a readable error and the worker lives on.

Where no other node can take a meal log (SQLite), the claim only tells readers `processing`: a
meal log handed over with its row is processed at once and marked only if that outlasts
`claim_delay`, so a fast one is two writes (insert, result), not three.
"""

from __future__ import annotations

import time

import trio

from .. import events
from ..backoff import Backoff
from ..logconfig import get_logger
from ..notifications import Notification, Notifier
from ..observability.metrics import Metrics
from .model import ZERO_TOTALS, MealLog
from .processor import NothingRecognized, Processor
from .store import Outcome, Store, StoreUnavailable

log = get_logger("fitiq_rt.dispatcher")

# A failed save is retried after 0.1 s, doubling to 1 s: a store back from an outage is found
# within a second. The cap is also the sweep's pace while the store is down.
SAVE_RETRY = Backoff(initial=0.1, cap=1.0, jitter=0.0)
MAX_RETRY_DELAY = SAVE_RETRY.cap


class Dispatcher:
    def __init__(
        self,
        store: Store,
        processor: Processor,
        notifier: Notifier,
        metrics: Metrics,
        *,
        workers: int = 4,
        queue_size: int = 1024,
        processing_timeout: float = 30.0,
        recovery_interval: float = 30.0,
        finish_retry_timeout: float = 30.0,
        claim_delay: float = 0.05,
        history_limit: int = 1000,
    ) -> None:
        self.store = store
        self.processor = processor
        self.notifier = notifier
        self.metrics = metrics
        self.workers = workers
        self.processing_timeout = processing_timeout
        self.recovery_interval = recovery_interval
        self.finish_retry_timeout = finish_retry_timeout
        self.claim_delay = claim_delay
        self.history_limit = history_limit
        # A queued meal log: its id, and its row when the caller had it (the POST, the sweep).
        self._send, self._receive = trio.open_memory_channel[tuple[str, MealLog | None]](queue_size)
        self._inflight: set[str] = set()
        self._recover_now = trio.Event()
        self._store_failed = False  # a worker met an outage: recover soon, not in an interval

    def submit(self, meal_log_id: str, meal: MealLog | None = None) -> bool:
        """Queue a stored pending meal log without waiting; False means the sweep will get it."""
        if meal_log_id in self._inflight:
            return True
        try:
            self._send.send_nowait((meal_log_id, meal))
        except trio.WouldBlock:
            self._recover_now.set()
            return False
        self._inflight.add(meal_log_id)
        return True

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Recover unfinished meal logs, then serve the queue until cancelled."""
        async with trio.open_nursery() as nursery:
            for _ in range(self.workers):
                nursery.start_soon(self._worker)
            recovered = await self._recover()
            task_status.started()
            nursery.start_soon(self._recovery_loop, recovered)

    async def _recovery_loop(self, recovered: bool) -> None:
        wait = self.recovery_interval if recovered else MAX_RETRY_DELAY
        while True:
            with trio.move_on_after(wait):
                await self._recover_now.wait()
            self._recover_now = trio.Event()
            if self._store_failed:  # at most one pass a second however many workers failed
                self._store_failed = False
                await trio.sleep(MAX_RETRY_DELAY)
            # While the store is down, look again every second: what it kept unfinished is
            # taken up as soon as it answers, not a whole interval later.
            wait = self.recovery_interval if await self._recover() else MAX_RETRY_DELAY

    async def _recover(self) -> bool:
        """Queue every unfinished meal log not already in flight; False if the store failed."""
        try:
            unfinished = await self.store.unfinished_meal_logs()
        except Exception as error:
            log.warning(events.DISPATCHER_RECOVERY_FAILED, error=str(error)[:300])
            return False
        queued = 0
        for meal in unfinished:
            if meal.id in self._inflight:
                continue
            self._inflight.add(meal.id)
            await self._send.send((meal.id, meal))
            queued += 1
        if queued:
            log.info(events.DISPATCHER_RECOVERED, meal_logs=queued)
        return True

    async def _worker(self) -> None:
        async for meal_log_id, known in self._receive:
            try:
                await self._process(meal_log_id, known)
            except Exception as error:  # the row stays unfinished; the recovery pass retries it
                log.error(events.DISPATCHER_ERROR, meal_log_id=meal_log_id, error=str(error)[:300])
                if isinstance(error, StoreUnavailable):
                    self._store_failed = True
                    self._recover_now.set()
            finally:
                self._inflight.discard(meal_log_id)

    async def _process(self, meal_log_id: str, known: MealLog | None) -> None:
        lazy = known is not None and self.claim_delay > 0 and not self.store.claims_are_shared
        meal = known if lazy else await self.store.mark_processing(meal_log_id)
        if meal is None:
            return  # finished meanwhile, or claimed by another node
        started = time.perf_counter()
        if lazy:
            outcome = await self._run_marking_if_slow(meal)
        else:
            outcome = await self._run_processor(meal)
        duration_ms = (time.perf_counter() - started) * 1000
        self.metrics.processing_ms.observe(duration_ms)
        await self._save(meal, outcome)
        self.metrics.meal_logs.labels(outcome.status).inc()
        if outcome.status == "completed":
            log.info(
                events.MEAL_LOG_PROCESSED,
                meal_log_id=meal.id,
                user_id=meal.user_id,
                duration_ms=round(duration_ms, 3),
            )
        else:
            log.warning(
                events.MEAL_LOG_FAILED,
                meal_log_id=meal.id,
                user_id=meal.user_id,
                error=outcome.error,
            )

    async def _save(self, meal: MealLog, outcome: Outcome) -> None:
        """Store the outcome (and publish it), retrying while the store is unreachable.

        The processor's work is not thrown away for an outage of a few seconds. Past
        `finish_retry_timeout` the error goes up, the row stays claimed by this node, and the
        recovery pass retakes it. A retry after a save that did commit finds the row finished
        and raises LookupError: the position check then delivers the stored notification.
        """
        deadline = trio.current_time() + self.finish_retry_timeout
        attempt = 1
        while True:
            delay = SAVE_RETRY.base(attempt - 1)
            try:
                await self.notifier.publish_stored(
                    meal.user_id, lambda: self._finish(meal, outcome)
                )
                return
            except StoreUnavailable as error:
                if trio.current_time() + delay > deadline:
                    raise
                log.warning(
                    events.DISPATCHER_SAVE_RETRY,
                    meal_log_id=meal.id,
                    attempt=attempt,
                    retry_in=delay,
                    error=str(error)[:300],
                )
            await trio.sleep(delay)
            attempt += 1

    async def _finish(self, meal: MealLog, outcome: Outcome) -> Notification:
        """The outcome and its notification, committed in one transaction."""
        _, note = await self.store.finish_meal_log(meal.id, outcome, self.history_limit)
        return note

    async def _run_marking_if_slow(self, meal: MealLog) -> Outcome:
        """The processor's outcome; the row says `processing` once it has run `claim_delay`."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._mark_after_delay, meal.id)
            outcome = await self._run_processor(meal)
            nursery.cancel_scope.cancel()  # a mark already being written completes first
        return outcome

    async def _mark_after_delay(self, meal_log_id: str) -> None:
        await trio.sleep(self.claim_delay)
        try:
            await self.store.mark_processing(meal_log_id)
        except Exception as error:  # only what readers see: the work goes on and saves its result
            log.warning(events.DISPATCHER_ERROR, meal_log_id=meal_log_id, error=str(error)[:300])

    async def _run_processor(self, meal: MealLog) -> Outcome:
        try:
            with trio.fail_after(self.processing_timeout):
                processed = await self.processor.process(meal)
        except trio.TooSlowError:
            return _failed(f"processing timed out after {self.processing_timeout:g} s")
        except NothingRecognized as error:
            return _failed(str(error))
        except Exception as error:
            return _failed(f"processor error: {type(error).__name__}: {str(error)[:200]}")
        return Outcome(
            status="completed", items=processed.items, totals=processed.totals, error=None
        )


def _failed(message: str) -> Outcome:
    return Outcome(
        status="failed",
        items=(),
        totals=dict(ZERO_TOTALS),
        error=message,
    )
