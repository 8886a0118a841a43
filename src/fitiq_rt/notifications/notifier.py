"""Publishing: a notification is stored (with its per-user seq), then fanned out. Never "skipped".

What stores it is the caller's (the dispatcher commits a meal log's outcome and its
notification in one transaction); this module only orders and delivers. Publishing for one
user is serialised by a per-user lock so notifications leave in seq order; a
user with no open socket gets the notification stored and logged `notification.queued`, and the
device receives it on resume; with push on, it is also handed (without waiting) to the push queue.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Protocol

import trio

from .. import events
from ..logconfig import get_logger
from ..observability.metrics import Metrics
from .broker import Broker
from .value import Notification

#: Commits a notification (and whatever it reports) and returns it, seq assigned.
StoreNotification = Callable[[], Awaitable[Notification]]

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
        broker: Broker,
        metrics: Metrics,
        push: PushQueue | None = None,
        *,
        publish_timeout: float = 5.0,
    ) -> None:
        self.broker = broker
        self.metrics = metrics
        self.push = push
        # A stuck broker must not hold the user's lock; the position check and resume cover it.
        self.publish_timeout = publish_timeout
        self._locks = _UserLocks()

    async def publish_stored(self, user_id: str, store: StoreNotification) -> Notification:
        """Run `store` (it commits the notification), then deliver what it stored.

        Both happen under the user's lock, so the user's notifications leave in seq order.
        """
        lock = await self._locks(user_id)
        try:
            note = await store()
            reached = 0
            # Stored means it must be fanned out too, even while shutdown cancels the worker.
            with trio.CancelScope(shield=True, deadline=trio.current_time() + self.publish_timeout):
                reached = await self.broker.publish(note)
        finally:
            self._locks.release(user_id, lock)
        self._account(note, reached)
        return note

    def _account(self, note: Notification, reached: int) -> None:
        meal_log_id = note.meal_log_id
        if reached:
            latency_ms = _ms_since(str(note.data.get("created_at") or note.created_at))
            self.metrics.notifications.labels("delivered").inc()
            self.metrics.notification_latency_ms.observe(latency_ms)
            log.info(
                events.NOTIFICATION_DELIVERED,
                user_id=note.user_id,
                seq=note.seq,
                connections=reached,
                meal_log_id=meal_log_id,
                latency_ms=round(latency_ms, 3),
            )
        else:
            self.metrics.notifications.labels("queued").inc()
            self.metrics.note_queued(note.user_id)
            log.info(
                events.NOTIFICATION_QUEUED,
                user_id=note.user_id,
                seq=note.seq,
                meal_log_id=meal_log_id,
            )
            if self.push is not None:  # only the node that stored it pushes: one push per note
                self.push.offer(note)


def _ms_since(stamp: str) -> float:
    created = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return max(0.0, (datetime.now(UTC) - created).total_seconds() * 1000)
