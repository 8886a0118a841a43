"""Resume: replay in order, the hand-over to live traffic, history limits (autojump_clock)."""

from __future__ import annotations

import trio
import trio.testing

from fitiq_rt.notifications import HistoryPage, MemoryHistory
from tests.fakes import FakeTransport, Harness


def _seqs(transport: FakeTransport) -> list[int]:
    return [f["seq"] for f in transport.sent if f["type"].startswith("meal_log.")]


async def _until_resumed(transport: FakeTransport) -> dict:
    while True:
        frame = await transport.next_frame()
        if frame["type"] == "resumed":
            return frame


async def _resume_once(harness: Harness, resume_from: int) -> tuple[FakeTransport, dict]:
    """Connect with last_seq=resume_from, read up to `resumed`, close."""
    async with trio.open_nursery() as nursery:
        _conn, transport = harness.launch(nursery, "u1", resume_from=resume_from)
        resumed = await _until_resumed(transport)
        transport.client_close()
    return transport, resumed


async def test_offline_user_gets_everything_then_resumed(autojump_clock: object) -> None:
    harness = Harness()
    for _ in range(5):
        harness.publish("u1")
    transport, resumed = await _resume_once(harness, 0)
    assert resumed == {"type": "resumed", "replayed": 5, "complete": True}
    assert _seqs(transport) == [1, 2, 3, 4, 5]
    assert transport.sent[0]["type"] == "welcome"
    assert transport.sent[0]["last_seq"] == 5


class GatedHistory(MemoryHistory):
    """A history whose replay read can be held open, so a test can publish in the middle."""

    def __init__(self, snapshot_before_gate: bool) -> None:
        super().__init__()
        self.snapshot_before_gate = snapshot_before_gate
        self.reading = trio.Event()
        self.release = trio.Event()

    async def since(self, user_id: str, after_seq: int, limit: int) -> HistoryPage:
        if self.snapshot_before_gate:
            page = await super().since(user_id, after_seq, limit)
            self.reading.set()
            await self.release.wait()
            return page
        self.reading.set()
        await self.release.wait()
        return await super().since(user_id, after_seq, limit)


async def _publish_during_replay(snapshot_before_gate: bool) -> list[int]:
    history = GatedHistory(snapshot_before_gate)
    harness = Harness(history=history)
    for _ in range(3):
        harness.publish("u1")
    async with trio.open_nursery() as nursery:
        _conn, transport = harness.launch(nursery, "u1", resume_from=1)
        await history.reading.wait()  # the writer is inside the replay's read
        harness.publish("u1")  # 4 and 5 are published while the replay runs
        harness.publish("u1")
        history.release.set()
        await _until_resumed(transport)
        harness.publish("u1")  # 6 is plain live traffic
        while len(_seqs(transport)) < 5:
            await transport.next_frame()
        await trio.testing.wait_all_tasks_blocked()
        transport.client_close()
    return _seqs(transport)


async def test_publish_during_replay_snapshot_taken_before(autojump_clock: object) -> None:
    assert await _publish_during_replay(snapshot_before_gate=True) == [2, 3, 4, 5, 6]


async def test_publish_during_replay_snapshot_taken_after(autojump_clock: object) -> None:
    assert await _publish_during_replay(snapshot_before_gate=False) == [2, 3, 4, 5, 6]


async def test_history_limit_prunes_and_resume_says_incomplete(autojump_clock: object) -> None:
    harness = Harness(history_limit=3)
    for _ in range(5):
        harness.publish("u1")
    transport, resumed = await _resume_once(harness, 0)
    assert _seqs(transport) == [3, 4, 5]
    assert resumed == {"type": "resumed", "replayed": 3, "complete": False}


async def test_resume_inside_the_window_is_complete(autojump_clock: object) -> None:
    harness = Harness(history_limit=3)
    for _ in range(5):
        harness.publish("u1")
    async with trio.open_nursery() as nursery:
        _conn, transport = await harness.start(nursery, "u1")
        transport.client_send({"type": "resume", "last_seq": 2})
        resumed = await _until_resumed(transport)
        transport.client_close()
    assert _seqs(transport) == [3, 4, 5]
    assert resumed["complete"] is True


async def test_last_seq_from_another_life_of_the_store_replays_from_one(
    autojump_clock: object,
) -> None:
    harness = Harness()
    for _ in range(2):
        harness.publish("u1")
    transport, resumed = await _resume_once(harness, 40)
    assert _seqs(transport) == [1, 2]
    assert resumed == {"type": "resumed", "replayed": 2, "complete": False}


async def test_nothing_is_sent_twice_on_one_connection(autojump_clock: object) -> None:
    harness = Harness()
    async with trio.open_nursery() as nursery:
        _conn, transport = await harness.start(nursery, "u1")
        for _ in range(3):
            harness.publish("u1")
        while len(_seqs(transport)) < 3:
            await transport.next_frame()
        transport.client_send({"type": "resume", "last_seq": 0})  # asks again for 1..3
        resumed = await _until_resumed(transport)
        harness.publish("u1")
        await transport.next_frame()
        transport.client_close()
    assert _seqs(transport) == [1, 2, 3, 4]
    assert resumed["replayed"] == 0


async def test_a_gap_in_live_traffic_is_filled_from_history(autojump_clock: object) -> None:
    """Across nodes, seq 3 may arrive before seq 2 reached this node: the writer fetches 2."""
    harness = Harness()
    async with trio.open_nursery() as nursery:
        _conn, transport = await harness.start(nursery, "u1")
        harness.publish("u1")
        await transport.next_frame()
        harness.publish("u1", fan_out=False)  # stored, but its fan-out has not arrived yet
        harness.publish("u1")
        while len(_seqs(transport)) < 3:
            await transport.next_frame()
        harness.registry.deliver("u1", harness.history._by_user["u1"][1])  # late arrival of 2
        await trio.testing.wait_all_tasks_blocked()
        transport.client_close()
    assert _seqs(transport) == [1, 2, 3]


class SlowLatest(MemoryHistory):
    """The welcome's latest-seq read takes time, as a database read does."""

    def __init__(self) -> None:
        super().__init__()
        self.reading = trio.Event()
        self.release = trio.Event()

    async def latest_seq(self, user_id: str) -> int:
        latest = await super().latest_seq(user_id)  # read, then the answer takes a while
        self.reading.set()
        await self.release.wait()
        return latest


async def test_live_traffic_during_the_handshake_queues_behind_the_replay(
    autojump_clock: object,
) -> None:
    """Registered, welcome not yet sent, a notification arrives: it must not pass the replay."""
    history = SlowLatest()
    harness = Harness(history=history)
    for _ in range(3):
        harness.publish("u1")
    async with trio.open_nursery() as nursery:
        _conn, transport = harness.launch(nursery, "u1", resume_from=1)
        await history.reading.wait()
        harness.publish("u1")  # seq 4, fanned out to the registered, not yet welcomed socket
        history.release.set()
        await _until_resumed(transport)
        while len(_seqs(transport)) < 3:
            await transport.next_frame()
        transport.client_close()
    assert _seqs(transport) == [2, 3, 4]


async def test_a_mid_session_resume_jumps_ahead_of_queued_live_traffic(
    autojump_clock: object,
) -> None:
    """Stored 1..3 before the socket; live 4 and 5 queue behind a stalled send; resume(0)
    must still produce 1..5 in order, each once."""
    harness = Harness()
    for _ in range(3):
        harness.publish("u1")
    async with trio.open_nursery() as nursery:
        _conn, transport = await harness.start(nursery, "u1")  # welcome says last_seq 3
        transport.client_send({"type": "ping"})
        await trio.testing.wait_all_tasks_blocked()
        transport.stop_reading()  # the writer hangs on its next send
        transport.client_send({"type": "ping"})  # the pong the writer is stuck sending
        await trio.testing.wait_all_tasks_blocked()
        harness.publish("u1")  # 4 and 5 queue behind it
        harness.publish("u1")
        transport.client_send({"type": "resume", "last_seq": 0})
        await trio.testing.wait_all_tasks_blocked()
        transport.resume_reading()
        resumed = await _until_resumed(transport)
        await trio.testing.wait_all_tasks_blocked()
        transport.client_close()
    assert _seqs(transport) == [1, 2, 3, 4, 5]
    assert resumed == {"type": "resumed", "replayed": 5, "complete": True}


async def test_the_undelivered_gauge_counts_queued_until_a_replay(autojump_clock: object) -> None:
    harness = Harness()

    def gauge() -> float | None:
        return harness.metrics.registry.get_sample_value("fitiq_notifications_queued_undelivered")

    for user in ("u1", "u1", "u2"):
        harness.metrics.note_queued(user)  # what the Notifier does for a user with no socket
    assert gauge() == 3
    harness.publish("u1")
    await _resume_once(harness, 0)
    assert gauge() == 1  # u1 caught up; u2 still waits
