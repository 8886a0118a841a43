"""The faults, one after another on a schedule, each recorded as the window it lasted.

Every fault is something an operator sees in production: a node SIGKILLed and restarted (same
data directory, same port), Redis killed and restarted, the database unreachable for a few
seconds, a node frozen (SIGSTOP: a long GC pause, a VM migration) and thawed, and devices
restarted on the other node with the last seq they saw.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import psycopg
import trio

from .cluster import Cluster
from .services import CuttableProxy, RedisProcess
from .traffic import Listener


@attrs.frozen
class Scheduled:
    """A fault to start `at` seconds after the traffic starts."""

    at: float
    kind: str  # node_kill | redis_kill | pg_cut | node_freeze | client_restart
    seconds: float = 0.0  # how long the fault lasts (down, cut or frozen)
    node: int = 0  # node_kill, node_freeze: which node


@attrs.define
class Window:
    """When a fault actually began and ended (wall clock, as the server stamps are)."""

    kind: str
    start: float
    end: float
    detail: dict[str, Any] = attrs.field(factory=dict)

    @property
    def name(self) -> str:
        return f"{self.kind}@{self.detail['at']:g}s"


@attrs.define
class Faults:
    """What the faults act on."""

    cluster: Cluster
    redis: RedisProcess
    proxy: CuttableProxy
    database_url: str  # direct, not through the proxy: to see what is mid-processing
    listeners: list[Listener]
    windows: list[Window] = attrs.field(factory=list)
    current: str | None = None

    async def run(self, schedule: list[Scheduled], started: float) -> None:
        """`started`: trio.current_time() when the traffic began."""
        for fault in sorted(schedule, key=lambda f: f.at):
            await trio.sleep_until(started + fault.at)
            self.current = fault.kind
            window = Window(fault.kind, time.time(), 0.0, {"at": fault.at})
            await self._actions()[fault.kind](fault, window)
            window.end = time.time()
            self.windows.append(window)
            self.current = None

    def _actions(self) -> dict[str, Callable[[Scheduled, Window], Awaitable[None]]]:
        return {
            "node_kill": self._node_kill,
            "redis_kill": self._redis_kill,
            "pg_cut": self._pg_cut,
            "node_freeze": self._node_freeze,
            "client_restart": self._client_restart,
        }

    async def _node_kill(self, fault: Scheduled, window: Window) -> None:
        node = self.cluster.nodes[fault.node]
        window.detail.update(node=node.name, claimed=await self._claimed())
        node.kill()
        await trio.sleep(fault.seconds)
        await trio.to_thread.run_sync(node.start)  # same directory and port: same node name

    async def _redis_kill(self, fault: Scheduled, window: Window) -> None:
        self.redis.kill()
        await trio.sleep(fault.seconds)
        await trio.to_thread.run_sync(self.redis.start)

    async def _pg_cut(self, fault: Scheduled, window: Window) -> None:
        """Cut while a meal log is mid-processing (the case that used to stay `processing`)."""
        with trio.move_on_after(3.0):
            while not await self._claimed():
                await trio.sleep(0.02)
        window.detail["claimed"] = await self._claimed()
        window.start = time.time()
        self.proxy.cut()
        await trio.sleep(fault.seconds)
        self.proxy.restore()

    async def _node_freeze(self, fault: Scheduled, window: Window) -> None:
        node = self.cluster.nodes[fault.node]
        window.detail.update(node=node.name, claimed=await self._claimed())
        node.freeze()
        await trio.sleep(fault.seconds)
        node.thaw()

    async def _client_restart(self, fault: Scheduled, window: Window) -> None:
        """Every other device closes and comes back on the other node with its last seq."""
        moved = self.listeners[::2]
        for listener in moved:
            listener.restart((listener.preferred + 1) % len(self.cluster.nodes))
        window.detail["clients"] = len(moved)

    async def _claimed(self) -> int:
        """How many meal logs are `processing` right now (0 when the query fails)."""
        return await trio.to_thread.run_sync(count_processing, self.database_url)


def count_processing(database_url: str) -> int:
    try:
        with psycopg.connect(database_url, connect_timeout=3) as conn:
            row = conn.execute(
                "SELECT count(*) FROM meal_logs WHERE status = 'processing'"
            ).fetchone()
            return int(row[0]) if row else 0
    except psycopg.Error:
        return 0
