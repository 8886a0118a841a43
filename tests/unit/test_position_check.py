"""The position check at exact virtual times: a stored notification whose publish was lost
reaches every open socket of its user within the interval plus the grace, once and in order."""

from __future__ import annotations

import pytest
import structlog
import trio

from fitiq_rt.realtime.positions import POSITION_GRACE, PositionCheck, catch_up_until_done
from tests.fakes import FakeTransport, Harness

INTERVAL = 10.0


def seqs(transport: FakeTransport) -> list[int]:
    return [frame["seq"] for frame in transport.frames("meal_log.completed")]


async def next_notification(transport: FakeTransport) -> tuple[int, float]:
    while True:
        frame = await transport.next_frame()
        if frame["type"] == "meal_log.completed":
            return frame["seq"], trio.current_time()


def catch_ups(harness: Harness) -> float | None:
    return harness.metrics.registry.get_sample_value("fitiq_position_catch_ups_total")


def position_check(harness: Harness) -> PositionCheck:
    return PositionCheck(harness.registry, harness.history, harness.metrics, interval=INTERVAL)


async def test_a_lost_publish_reaches_every_socket_of_the_user_within_interval_plus_grace(
    autojump_clock: object, nursery: trio.Nursery
) -> None:
    harness = Harness()
    _, phone = await harness.start(nursery, "u1")
    _, tablet = await harness.start(nursery, "u1")
    _, other = await harness.start(nursery, "u2")
    harness.publish("u1")
    harness.publish("u2")
    assert (await next_notification(phone))[0] == 1
    assert (await next_notification(tablet))[0] == 1
    harness.publish("u1", fan_out=False)  # stored, then the node that stored it died
    harness.publish("u1", fan_out=False)
    start = trio.current_time()
    await nursery.start(position_check(harness).run)
    for transport in (phone, tablet):
        assert await next_notification(transport) == (2, start + INTERVAL + POSITION_GRACE)
        assert await next_notification(transport) == (3, start + INTERVAL + POSITION_GRACE)
    await trio.sleep(3 * INTERVAL)  # later passes find nothing to do
    assert seqs(phone) == seqs(tablet) == [1, 2, 3]
    assert seqs(other) == [1]
    assert catch_ups(harness) == 2


async def test_a_publish_in_flight_at_the_check_is_not_sent_twice(
    autojump_clock: object, nursery: trio.Nursery
) -> None:
    harness = Harness()
    _, phone = await harness.start(nursery, "u1")
    start = trio.current_time()
    await nursery.start(position_check(harness).run)
    await trio.sleep(INTERVAL - 0.1)
    note = harness.publish("u1", fan_out=False)  # committed; its publish lands in 0.5 s
    await trio.sleep(0.6)
    harness.registry.deliver("u1", note)
    assert await next_notification(phone) == (1, start + INTERVAL + 0.5)
    await trio.sleep(2 * INTERVAL)
    assert seqs(phone) == [1]
    assert catch_ups(harness) == 0


async def test_a_store_outage_skips_a_pass_and_the_next_one_catches_up(
    autojump_clock: object, nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness = Harness()
    _, phone = await harness.start(nursery, "u1")
    harness.publish("u1", fan_out=False)
    start = trio.current_time()
    failing = True
    latest_seqs = harness.history.latest_seqs

    async def flaky(user_ids: list[str]) -> dict[str, int]:
        if failing:
            raise ConnectionError("the database is restarting")
        return await latest_seqs(user_ids)

    monkeypatch.setattr(harness.history, "latest_seqs", flaky)
    await nursery.start(position_check(harness).run)
    await trio.sleep(INTERVAL + 1)
    failing = False
    assert await next_notification(phone) == (1, start + 2 * INTERVAL + POSITION_GRACE)


async def test_a_catch_up_that_meets_a_store_outage_is_retried_until_the_store_answers(
    autojump_clock: object, nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the Redis broker runs after it reconnects: 0.5 s, then 1 s between tries."""
    harness = Harness()
    _, phone = await harness.start(nursery, "u1")
    harness.publish("u1", fan_out=False)
    failures = 2
    latest_seqs = harness.history.latest_seqs

    async def flaky(user_ids: list[str]) -> dict[str, int]:
        nonlocal failures
        if failures:
            failures -= 1
            raise ConnectionError("the database is restarting")
        return await latest_seqs(user_ids)

    monkeypatch.setattr(harness.history, "latest_seqs", flaky)
    start = trio.current_time()
    reached = await catch_up_until_done(harness.registry, harness.history, ["u1"])
    assert (reached, trio.current_time() - start) == (1, 1.5)
    assert await next_notification(phone) == (1, start + 1.5)


async def test_a_pass_names_at_most_twenty_sockets_and_counts_them_all(
    autojump_clock: object, nursery: trio.Nursery
) -> None:
    harness = Harness()
    phones = [(await harness.start(nursery, f"u{i}"))[1] for i in range(25)]
    for i in range(25):
        harness.publish(f"u{i}", fan_out=False)
    with structlog.testing.capture_logs() as logs:
        found = await position_check(harness).check()
    assert found == 25
    assert sum(e["event"] == "ws.position_behind" for e in logs) == 20
    summary = [e for e in logs if e["event"] == "position_check.caught_up"]
    assert [(e["sockets"], e["users"]) for e in summary] == [(25, 25)]
    for phone in phones:
        assert (await next_notification(phone))[0] == 1
