"""Fan-out: how a stored notification reaches the sockets that should get it.

`LocalBroker` hands it straight to this process's sockets (one node, the default). The Redis
broker implements the same interface across nodes. Both reach the sockets through
`LocalSockets`, which the realtime registry implements: this package knows notifications, not
WebSocket sessions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import trio

from .seq_cache import LatestSeqCache
from .value import Notification

UserHook = Callable[[str], None]


class LocalSockets(Protocol):
    """This process's open sockets, by user (realtime.registry.Registry)."""

    on_first_connection: UserHook | None  # a user got a first local socket
    on_last_disconnection: UserHook | None  # a user lost the last one

    @property
    def total_users(self) -> int: ...

    def users(self) -> list[str]: ...

    def count_for_user(self, user_id: str) -> int: ...

    def deliver(self, user_id: str, note: Notification) -> int:
        """Offer `note` to every local socket of the user without waiting; how many took it."""
        ...


class Broker(Protocol):
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Long-lived task (subscriptions, reconnects); returns or is cancelled at shutdown."""
        ...

    async def publish(self, note: Notification) -> int:
        """Fan out; returns how many sockets (local) or nodes (Redis) took it. 0 means queued."""
        ...


class LocalBroker:
    """One node: the publisher is the only writer of seqs, so it also keeps the seq cache."""

    def __init__(self, sockets: LocalSockets, seq_cache: LatestSeqCache | None = None) -> None:
        self.sockets = sockets
        self.seq_cache = seq_cache

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()

    async def publish(self, note: Notification) -> int:
        if self.seq_cache is not None:
            self.seq_cache.raise_to(note.user_id, note.seq)  # before delivery: see CachedHistory
        return self.sockets.deliver(note.user_id, note)
