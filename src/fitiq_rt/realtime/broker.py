"""Fan-out: how a stored notification reaches the sockets that should get it.

`LocalBroker` hands it straight to this process's registry (one node, the default). The Redis
broker implements the same interface across nodes.
"""

from __future__ import annotations

from typing import Protocol

import trio

from ..notification import Notification
from .history import LatestSeqCache
from .registry import Registry


class Broker(Protocol):
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Long-lived task (subscriptions, reconnects); returns or is cancelled at shutdown."""
        ...

    async def publish(self, note: Notification) -> int:
        """Fan out; returns how many sockets (local) or nodes (Redis) took it. 0 means queued."""
        ...


class LocalBroker:
    """One node: the publisher is the only writer of seqs, so it also keeps the seq cache."""

    def __init__(self, registry: Registry, seq_cache: LatestSeqCache | None = None) -> None:
        self.registry = registry
        self.seq_cache = seq_cache

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()

    async def publish(self, note: Notification) -> int:
        if self.seq_cache is not None:
            self.seq_cache.raise_to(note.user_id, note.seq)  # before delivery: see CachedHistory
        return self.registry.deliver(note.user_id, note)
