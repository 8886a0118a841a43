"""Publishing: store the outcome with its per-user seq, then fan it out. Never "skipped".

Publishing for one user is serialised by a per-user lock so notifications leave in seq order; a
user with no open socket gets the notification stored and logged `notification.queued`, and the
device receives it on resume; with push on, it is also handed (without waiting) to the push queue.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol

import trio

from .logconfig import get_logger
from .meals.model import MealLog
from .meals.store import Outcome, Store
from .notification import Notification
from .observability.metrics import Metrics
from .realtime.broker import Broker

log = get_logger("fitiq_rt.notifications")


class PushQueue(Protocol):
    def offer(self, note: Notification) -> bool:
        """Queue a push without waiting (push/service.py)."""
        ...


class _UserLocks:
    """One trio.Lock per user, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[trio.Lock, int]] = {}

    async def __call__(self, user_id: str) -> trio.Lock:
        lock, users = self._locks.get(user_id, (None, 0))
        if lock is None:
            lock = trio.Lock()
        self._locks[user_id] = (lock, users + 1)
        await lock.acquire()
        return lock

    def release(self, user_id: str, lock: trio.Lock) -> None:
        lock.release()
        _, users = self._locks[user_id]
        if users <= 1:
            del self._locks[user_id]
        else:
            self._locks[user_id] = (lock, users - 1)


class Notifier:
    def __init__(
        self,
        store: Store,
        broker: Broker,
        metrics: Metrics,
        history_limit: int,
        push: PushQueue | None = None,
        *,
        publish_timeout: float = 5.0,
    ) -> None:
        self.store = store
        # A stuck broker must not hold the user's lock; the position check and resume cover it.
        self.publish_timeout = publish_timeout
        self.broker = broker
        self.metrics = metrics
        self.history_limit = history_limit
        self.push = push
        self._locks = _UserLocks()

    async def finish(self, meal: MealLog, outcome: Outcome) -> tuple[MealLog, Notification]:
        """Persist the outcome and its notification atomically, then deliver it."""
        lock = await self._locks(meal.user_id)
        try:
            finished, note = await self.store.finish_meal_log(meal.id, outcome, self.history_limit)
            reached = 0
            # Stored means it must be fanned out too, even while shutdown cancels the worker.
            with trio.CancelScope(shield=True, deadline=trio.current_time() + self.publish_timeout):
                reached = await self.broker.publish(note)
        finally:
            self._locks.release(meal.user_id, lock)
        self._account(finished, note, reached)
        return finished, note

    def _account(self, meal: MealLog, note: Notification, reached: int) -> None:
        if reached:
            latency_ms = _ms_since(meal.created_at)
            self.metrics.notifications.labels("delivered").inc()
            self.metrics.notification_latency_ms.observe(latency_ms)
            log.info(
                "notification.delivered",
                user_id=note.user_id,
                seq=note.seq,
                connections=reached,
                meal_log_id=meal.id,
                latency_ms=round(latency_ms, 3),
            )
        else:
            self.metrics.notifications.labels("queued").inc()
            self.metrics.note_queued(note.user_id)
            log.info("notification.queued", user_id=note.user_id, seq=note.seq, meal_log_id=meal.id)
            if self.push is not None:  # only the node that stored it pushes: one push per note
                self.push.offer(note)


def _ms_since(stamp: str) -> float:
    created = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return max(0.0, (datetime.now(UTC) - created).total_seconds() * 1000)
