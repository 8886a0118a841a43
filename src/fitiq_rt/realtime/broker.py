"""Fan-out: how a stored notification reaches the sockets that should get it.

`LocalBroker` hands it straight to this process's registry (one node, the default). The Redis
broker implements the same interface across nodes.
"""

from __future__ import annotations

from typing import Protocol

import trio

from ..notification import Notification
from .registry import Registry


class Broker(Protocol):
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Long-lived task (subscriptions, reconnects); returns or is cancelled at shutdown."""
        ...

    async def publish(self, note: Notification) -> int:
        """Fan out; returns how many sockets (local) or nodes (Redis) took it. 0 means queued."""
        ...


class LocalBroker:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()

    async def publish(self, note: Notification) -> int:
        return self.registry.deliver(note.user_id, note)
