"""Every way a session ends removes exactly its own registry entry and logs one disconnect."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import structlog
import trio
import trio.testing

from fitiq_rt.meals.store import StoreUnavailable
from fitiq_rt.notifications.history import MemoryHistory
from fitiq_rt.realtime.closing import SERVER_SHUTDOWN
from fitiq_rt.realtime.connection import Connection
from tests.fakes import FakeTransport, Harness


def _pairs(logs: list[dict[str, Any]]) -> dict[str, list[str]]:
    events: dict[str, list[str]] = {}
    for entry in logs:
        if entry["event"] in ("ws.connected", "ws.disconnected"):
            events.setdefault(entry["connection_id"], []).append(entry["event"])
    return events


def _client_close(conn: Connection, transport: FakeTransport, harness: Harness) -> None:
    transport.client_close(1000)


def _binary(conn: Connection, transport: FakeTransport, harness: Harness) -> None:
    transport.client_send(b"\x00\x01")


def _shutdown(conn: Connection, transport: FakeTransport, harness: Harness) -> None:
    harness.registry.close_all(SERVER_SHUTDOWN)


def _slow(conn: Connection, transport: FakeTransport, harness: Harness) -> None:
    for _ in range(harness.send_queue + 2):  # one may go straight to the waiting writer
        harness.publish(conn.user_id)


EXITS: list[tuple[str, Callable[..., None], str, int | None]] = [
    ("client close", _client_close, "client_closed", 1000),
    ("binary frame", _binary, "protocol_error", 1003),
    ("server shutdown", _shutdown, "server_shutdown", 1001),
    ("slow consumer", _slow, "slow_consumer", 4029),
]


@pytest.mark.parametrize(("name", "action", "reason", "code"), EXITS, ids=[e[0] for e in EXITS])
async def test_exit_path_removes_the_entry_and_logs_one_disconnect(
    autojump_clock: object,
    name: str,
    action: Callable[..., None],
    reason: str,
    code: int,
) -> None:
    harness = Harness(send_queue=8)
    with structlog.testing.capture_logs() as logs:
        async with trio.open_nursery() as nursery:
            conn = harness.open("u1")
            transport = FakeTransport()
            done = trio.Event()

            async def run() -> None:
                await harness.run(conn, transport)
                done.set()

            nursery.start_soon(run)
            await transport.next_frame()
            action(conn, transport, harness)
            await done.wait()
    assert harness.registry.total == 0
    assert conn.end_reason == reason
    assert conn.end_code == code
    assert transport.close_code == code  # for a client close: the echo of its own code
    disconnects = [e for e in logs if e["event"] == "ws.disconnected"]
    assert len(disconnects) == 1
    assert disconnects[0]["reason"] == reason
    assert disconnects[0]["code"] == code
    assert disconnects[0]["connection_id"] == conn.connection_id
    assert _pairs(logs) == {conn.connection_id: ["ws.connected", "ws.disconnected"]}


async def test_an_exception_in_a_task_ends_with_reason_error(autojump_clock: object) -> None:
    harness = Harness()
    with structlog.testing.capture_logs() as logs:
        conn = harness.open("u1")
        transport = FakeTransport(fail_send_after=1)  # the welcome goes out, the pong fails
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lambda: harness.run(conn, transport))
            await transport.next_frame()
            transport.client_send({"type": "ping"})
    assert harness.registry.total == 0
    assert conn.end_reason == "error"
    assert transport.close_code == 1011
    assert [e["reason"] for e in logs if e["event"] == "ws.disconnected"] == ["error"]
    assert any(e["event"] == "ws.session_error" for e in logs)


class DownHistory(MemoryHistory):
    """The history while the database is cut: every read fails as the stores fail."""

    async def latest_seq(self, user_id: str) -> int:
        raise StoreUnavailable("couldn't get a connection after 3.00 sec")


async def test_a_database_outage_ends_with_1011_and_a_warning_not_an_error(
    autojump_clock: object,
) -> None:
    harness = Harness(history=DownHistory())
    with structlog.testing.capture_logs() as logs:
        conn = harness.open("u1")
        transport = FakeTransport()
        await harness.run(conn, transport)
    assert harness.registry.total == 0
    assert conn.end_reason == "error"
    assert transport.close_code == 1011
    assert [e["reason"] for e in logs if e["event"] == "ws.disconnected"] == ["error"]
    outage = [e for e in logs if e["event"] == "ws.store_unavailable"]
    assert [e["log_level"] for e in outage] == ["warning"]
    assert [e for e in logs if e["log_level"] == "error"] == []


async def test_external_cancellation_still_cleans_up_and_logs(autojump_clock: object) -> None:
    harness = Harness()
    with structlog.testing.capture_logs() as logs:
        conn = harness.open("u1")
        transport = FakeTransport()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lambda: harness.run(conn, transport))
            await transport.next_frame()
            nursery.cancel_scope.cancel()
    assert harness.registry.total == 0
    assert conn.end_reason == "server_shutdown"
    assert transport.close_code == 1001  # the fake's close never waits; the real one is cut
    assert _pairs(logs) == {conn.connection_id: ["ws.connected", "ws.disconnected"]}


async def test_overlapping_reconnect_keeps_the_new_socket(autojump_clock: object) -> None:
    """The seed's likeliest bug: A's cleanup runs after B registered; B must survive it."""
    harness = Harness()
    async with trio.open_nursery() as nursery:
        conn_a, transport_a = await harness.start(nursery, "u1")
        conn_b, transport_b = await harness.start(nursery, "u1")
        assert harness.registry.count_for_user("u1") == 2
        transport_a.client_close(1006)  # the phone's old socket dies after the new one opened
        await transport_a.closed.wait() if transport_a.close_code else None
        await trio.testing.wait_all_tasks_blocked()
        assert harness.registry.connections_of("u1") == [conn_b]
        note = harness.publish("u1")
        frame = await transport_b.next_frame()
        assert frame["seq"] == note.seq
        assert frame["type"] == "meal_log.completed"
        transport_b.client_close()
    assert conn_a.end_reason == "client_closed"
    assert harness.registry.total == 0


async def test_removing_a_stale_connection_object_never_removes_another(
    autojump_clock: object,
) -> None:
    harness = Harness()
    old = harness.open("u1", connection_id="same-id")
    new = harness.open("u1", connection_id="same-id")
    harness.registry.add(new)
    assert harness.registry.remove(old) is False
    assert harness.registry.connections_of("u1") == [new]


async def test_slow_consumer_does_not_block_the_publisher_or_other_sockets(
    autojump_clock: object,
) -> None:
    harness = Harness(send_queue=4)
    async with trio.open_nursery() as nursery:
        slow_conn, slow = await harness.start(nursery, "u1")
        fast_conn, fast = await harness.start(nursery, "u1")
        slow.stop_reading()
        notes = []
        for _ in range(10):
            before = trio.current_time()
            notes.append(harness.publish("u1"))
            assert trio.current_time() == before  # publishing never waited
            await trio.testing.wait_all_tasks_blocked()  # the fast socket's writer keeps up
        assert slow_conn.end_reason == "slow_consumer"
        assert fast_conn.end_reason is None
        received = []
        while len(received) < len(notes):
            frame = await fast.next_frame()
            if frame["type"] == "meal_log.completed":
                received.append(frame["seq"])
        fast.client_close()
    assert slow.close_code == 4029
    assert received == [n.seq for n in notes]


async def test_a_send_stalled_for_the_write_timeout_ends_the_socket_as_slow(
    autojump_clock: object,
) -> None:
    harness = Harness()
    async with trio.open_nursery() as nursery:
        conn, transport = await harness.start(nursery, "u1")
        transport.stop_reading()
        transport.client_send({"type": "ping"})  # its pong is the send that stalls
        start = trio.current_time()
        await transport.closed.wait()
    assert conn.end_reason == "slow_consumer"
    assert transport.close_code == 4029
    assert transport.closed_at is not None
    assert (
        transport.closed_at - start == 5.0
    )  # the fake's write timeout, FITIQ_WRITE_TIMEOUT's default


async def test_replies_queued_before_a_close_are_sent_before_the_close_frame(
    autojump_clock: object,
) -> None:
    harness = Harness(max_messages_per_second=20.0)  # burst 40
    async with trio.open_nursery() as nursery:
        conn, transport = await harness.start(nursery, "u1")
        for _ in range(41):  # all at one instant: the 41st is over the burst
            transport.client_send({"type": "ping"})
        await transport.closed.wait()
    assert conn.end_reason == "policy_violation"
    assert [f["type"] for f in transport.sent[1:]] == ["pong"] * 40  # none cut off by the 1008
    assert (transport.close_code, transport.close_reason) == (1008, "too many messages")
