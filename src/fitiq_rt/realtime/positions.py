"""Catching open sockets up with the store: the fan-out is never the only way a seq arrives.

A notification is committed before it is published, but the publish can still be lost: the node
that committed it dies before publishing, or the broker is down and the other nodes never hear
of it. Each socket knows the newest seq it covered (`Connection.sent_top`), so comparing that with
the store's newest seq per user finds every such gap, and handing the socket the user's newest
notification is enough to close it: the writer sends what lies between from the store, in
order, and skips what it already sent.

`PositionCheck` does this every `interval` for every local socket with one query per pass, which
gives the guarantee the README states: while the store answers, every stored notification
reaches every open socket of its user within `interval + POSITION_GRACE` seconds (plus the read
that fills the gap), whichever node stored it and whatever happened to its publish. The Redis
broker uses the same steps after it reconnects.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

import trio

from .. import events
from ..backoff import Backoff
from ..logconfig import get_logger
from ..notifications import NotificationHistory
from ..observability.metrics import Metrics
from .connection import Connection
from .registry import Registry

log = get_logger("fitiq_rt.positions")

# Seconds a socket found behind is given before it is caught up: a publish in flight when the
# store was read (milliseconds, normally) lands meanwhile, so only a real gap costs a read.
POSITION_GRACE = 1.0
# Sockets a pass names one by one (`ws.position_behind`); past that, only the pass's summary
# line counts them, so a node that lost thousands of publishes does not flood its log.
BEHIND_LINES = 20
# A catch-up that meets a store outage tries again after 0.5 s, doubling to 5 s.
CATCH_UP_RETRY = Backoff(initial=0.5, cap=5.0, jitter=0.0)


def behind(registry: Registry, latest: Mapping[str, int]) -> dict[str, int]:
    """The users (with their newest seq) that have a live local socket short of that seq."""
    return {
        user_id: seq
        for user_id, seq in latest.items()
        if any(_short_of(conn, seq) for conn in registry.connections_of(user_id))
    }


def _short_of(conn: Connection, seq: int) -> bool:
    # A socket not yet welcomed counts too (its top is 0 until then): an item for it queues
    # behind the welcome, and the writer skips what the welcome's last_seq covered.
    return conn.live and conn.sent_top < seq


async def latest_for_local_users(
    registry: Registry, store: NotificationHistory, users: Iterable[str]
) -> dict[str, int]:
    """The store's newest seq for each of `users` that still has a local socket: one query."""
    local = [user_id for user_id in users if registry.count_for_user(user_id)]
    return await store.latest_seqs(local) if local else {}


async def catch_up(registry: Registry, store: NotificationHistory, users: Iterable[str]) -> int:
    """Hand every local socket of `users` that is behind the store the user's newest
    notification (the Redis broker does it after it reconnects); the sockets reached."""
    latest = await latest_for_local_users(registry, store, users)
    return await hand_newest(registry, store, behind(registry, latest))


async def catch_up_until_done(
    registry: Registry,
    store: NotificationHistory,
    users: Iterable[str],
    *,
    retry: Backoff = CATCH_UP_RETRY,
) -> int:
    """`catch_up`, tried again with capped backoff while the store fails.

    After a Redis outage that overlapped a database one, the sockets are caught up as soon as
    the store answers, not at the next position check. The caller's scope bounds the retries
    (the broker's connection to Redis: a new one catches up again anyway).
    """
    wanted = list(users)
    attempt = 0
    while True:
        try:
            return await catch_up(registry, store, wanted)
        except Exception as error:
            delay = retry.base(attempt)
            log.warning(events.BROKER_CATCH_UP_FAILED, error=str(error)[:300], retry_in=delay)
        await trio.sleep(delay)
        attempt += 1


async def hand_newest(
    registry: Registry, store: NotificationHistory, targets: Mapping[str, int]
) -> int:
    """Give each user's sockets the notification with the given seq; returns the sockets reached.

    One item per socket whatever it missed: the writer fills the gap before it. Queueing every
    missed notification instead could overflow a socket's queue after a long outage.
    """
    reached = 0
    for user_id, seq in targets.items():
        page = await store.since(user_id, seq - 1, 1)
        if page.items:
            reached += registry.deliver(user_id, page.items[-1])
    return reached


class PositionCheck:
    """Every `interval`, find the local sockets behind the store and catch them up."""

    def __init__(
        self,
        registry: Registry,
        store: NotificationHistory,
        metrics: Metrics,
        interval: float,
        grace: float = POSITION_GRACE,
    ) -> None:
        self.registry = registry
        self.store = store
        self.metrics = metrics
        self.interval = interval
        self.grace = grace

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            await trio.sleep(self.interval)
            try:
                await self.check()
            except Exception as error:  # the store is down: the next pass tries again
                log.warning(events.POSITION_CHECK_FAILED, error=str(error)[:300])

    async def check(self) -> int:
        """One pass; returns how many sockets were found behind and caught up."""
        started = time.perf_counter()
        latest = await latest_for_local_users(self.registry, self.store, self.registry.users())
        suspects = behind(self.registry, latest)
        self.metrics.position_check_seconds.observe(time.perf_counter() - started)
        if not suspects:
            return 0
        await trio.sleep(self.grace)
        lagging = behind(self.registry, suspects)
        sockets = 0
        for user_id, seq in lagging.items():
            for conn in self.registry.connections_of(user_id):
                if _short_of(conn, seq):
                    sockets += 1
                    if sockets <= BEHIND_LINES:
                        log.info(
                            events.WS_POSITION_BEHIND,
                            user_id=user_id,
                            connection_id=conn.connection_id,
                            sent_seq=conn.sent_top,
                            stored_seq=seq,
                        )
        await hand_newest(self.registry, self.store, lagging)
        self.metrics.position_catch_ups.inc(sockets)
        if sockets:
            log.info(events.POSITION_CHECK_CAUGHT_UP, sockets=sockets, users=len(lagging))
        return sockets
