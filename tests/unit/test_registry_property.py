"""Property test: random interleavings of connect / close / idle / error / deliver.

After every interleaving the registry is empty, each delivery reached exactly the sockets that
were open at that moment, and every ws.connected pairs with exactly one ws.disconnected.
"""

from __future__ import annotations

from typing import Any

import structlog
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fitiq_rt.realtime.connection import Connection
from tests.fakes import FakeTransport, Harness

USERS = ("ana", "ben", "cho")
IDLE = 90.0

op = st.one_of(
    st.tuples(st.just("connect"), st.sampled_from(USERS)),
    st.tuples(st.just("close"), st.integers(0, 20)),
    st.tuples(st.just("idle"), st.integers(0, 20)),
    st.tuples(st.just("error"), st.integers(0, 20)),
    st.tuples(st.just("deliver"), st.sampled_from(USERS)),
)


class Model:
    def __init__(self, harness: Harness, nursery: trio.Nursery) -> None:
        self.harness = harness
        self.nursery = nursery
        self.open: list[tuple[Connection, FakeTransport]] = []
        self.expected: dict[str, list[int]] = {}  # connection id -> seqs it must receive
        self.transports: dict[str, FakeTransport] = {}

    async def connect(self, user: str) -> None:
        conn, transport = await self.harness.start(self.nursery, user)
        self.open.append((conn, transport))
        self.expected[conn.connection_id] = []
        self.transports[conn.connection_id] = transport

    def pick(self, index: int) -> tuple[Connection, FakeTransport] | None:
        return self.open.pop(index % len(self.open)) if self.open else None

    async def close(self, index: int) -> None:
        if picked := self.pick(index):
            picked[1].client_close(1000)

    async def error(self, index: int) -> None:
        if picked := self.pick(index):
            picked[1].client_send(b"binary is a protocol error")

    async def idle(self, index: int) -> None:
        """Everyone but one socket speaks just before the deadline; that one goes silent."""
        picked = self.pick(index)
        if picked is None:
            return
        await trio.sleep(IDLE - 1)
        for _, transport in self.open:
            transport.client_send({"type": "pong"})
        await trio.testing.wait_all_tasks_blocked()
        await trio.sleep(2)  # the silent one is past its deadline now, the others not yet
        for _, transport in self.open:
            transport.client_send({"type": "pong"})
        assert picked[0].end_reason == "idle_timeout"

    async def deliver(self, user: str) -> None:
        open_for_user = [c for c, _ in self.open if c.user_id == user]
        note = self.harness.publish(user)
        reached = self.harness.registry.connections_of(user)
        assert sorted(c.connection_id for c in reached) == sorted(
            c.connection_id for c in open_for_user
        )
        for conn in open_for_user:
            self.expected[conn.connection_id].append(note.seq)


def _run_interleaving(ops: list[tuple[str, Any]]) -> None:
    async def main() -> None:
        harness = Harness(ping_interval=30, idle_timeout=IDLE)
        async with trio.open_nursery() as nursery:
            model = Model(harness, nursery)
            for name, arg in ops:
                await getattr(model, name)(arg)
                await trio.testing.wait_all_tasks_blocked()
            received_before_close = {
                cid: [f["seq"] for f in t.frames("meal_log.completed")]
                for cid, t in model.transports.items()
            }
            for _, transport in model.open:
                transport.client_close(1000)
        assert harness.registry.total == 0
        assert harness.registry.users() == []
        for cid, seqs in model.expected.items():
            assert received_before_close[cid] == seqs, cid

    clock = trio.testing.MockClock(autojump_threshold=0)
    with structlog.testing.capture_logs() as logs:
        trio.run(main, clock=clock)
    pairs: dict[str, list[str]] = {}
    for entry in logs:
        if entry["event"] in ("ws.connected", "ws.disconnected"):
            pairs.setdefault(entry["connection_id"], []).append(entry["event"])
    assert all(events == ["ws.connected", "ws.disconnected"] for events in pairs.values())


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(op, min_size=1, max_size=25))
def test_random_interleavings_keep_the_registry_exact(ops: list[tuple[str, Any]]) -> None:
    _run_interleaving(ops)
