"""Every interval and deadline of a session, at exact virtual times (autojump_clock)."""

from __future__ import annotations

import trio
import trio.testing

from tests.fakes import Harness


async def test_server_pings_leave_at_exactly_k_times_the_interval(autojump_clock: object) -> None:
    harness = Harness(ping_interval=30, idle_timeout=90)
    ping_times: list[float] = []
    async with trio.open_nursery() as nursery:
        conn, transport = await harness.start(nursery, "u1")
        started = conn.started
        while len(ping_times) < 5:
            frame = await transport.next_frame()
            if frame["type"] == "ping":
                ping_times.append(trio.current_time() - started)
                transport.client_send({"type": "pong"})
        transport.client_close()
    assert ping_times == [30.0, 60.0, 90.0, 120.0, 150.0]


async def test_client_pinging_every_30s_stays_registered_for_24_virtual_hours(
    autojump_clock: object,
) -> None:
    harness = Harness(ping_interval=30, idle_timeout=90)
    async with trio.open_nursery() as nursery:
        conn, transport = await harness.start(nursery, "u1")
        start = trio.current_time()
        pongs = 0
        while trio.current_time() - start < 24 * 3600:
            await trio.sleep(30)
            transport.client_send({"type": "ping"})
            await trio.testing.wait_all_tasks_blocked()
            assert harness.registry.count_for_user("u1") == 1
        pongs = len(transport.frames("pong"))
        assert conn.end_reason is None
        assert harness.registry.connections_of("u1") == [conn]
        transport.client_close()
    assert pongs == 24 * 3600 // 30
    assert len(transport.frames("ping")) == 24 * 3600 // 30


async def test_silent_client_is_closed_at_exactly_the_idle_timeout(autojump_clock: object) -> None:
    harness = Harness(ping_interval=30, idle_timeout=90)
    async with trio.open_nursery() as nursery:
        conn, transport = await harness.start(nursery, "u1")
        await transport.closed.wait()
    assert transport.closed_at is not None
    assert transport.closed_at - conn.started == 90.0
    assert transport.close_code == 4008
    assert conn.end_reason == "idle_timeout"
    assert harness.registry.total == 0


async def test_any_frame_pushes_the_idle_deadline(autojump_clock: object) -> None:
    harness = Harness(ping_interval=30, idle_timeout=90)
    async with trio.open_nursery() as nursery:
        conn, transport = await harness.start(nursery, "u1")
        await trio.sleep(80)
        transport.client_send("not json at all")  # even a bad frame proves the client is there
        await transport.closed.wait()
    assert transport.closed_at is not None
    assert transport.closed_at - conn.started == 170.0
    assert transport.close_code == 4008


async def test_token_expiring_mid_connection_closes_at_exp_with_4001(
    autojump_clock: object,
) -> None:
    harness = Harness(ping_interval=30, idle_timeout=90)
    async with trio.open_nursery() as nursery:
        conn, transport = harness.launch(nursery, "u1", token_ttl=125.0)

        async def keep_alive() -> None:
            while not transport.closed.is_set():
                await trio.sleep(10)
                transport.client_send({"type": "ping"})

        nursery.start_soon(keep_alive)
        await transport.closed.wait()
    assert transport.closed_at is not None
    assert transport.closed_at - conn.started == 125.0
    assert transport.close_code == 4001
    assert conn.end_reason == "token_expired"


async def test_an_already_expired_token_closes_at_once(autojump_clock: object) -> None:
    harness = Harness()
    async with trio.open_nursery() as nursery:
        conn, transport = harness.launch(nursery, "u1", token_ttl=-5.0)
        await transport.closed.wait()
    assert transport.closed_at == conn.started
    assert transport.close_code == 4001


async def test_rate_limit_allows_a_burst_of_twice_the_rate_then_closes_1008(
    autojump_clock: object,
) -> None:
    harness = Harness(max_messages_per_second=5)
    async with trio.open_nursery() as nursery:
        conn, transport = await harness.start(nursery, "u1")
        for _ in range(10):  # the burst: 2 x 5 frames at one instant
            transport.client_send({"type": "pong"})
        await trio.testing.wait_all_tasks_blocked()
        assert conn.end_reason is None
        await trio.sleep(1.0)  # refills 5 tokens
        for _ in range(5):
            transport.client_send({"type": "pong"})
        await trio.testing.wait_all_tasks_blocked()
        assert conn.end_reason is None
        transport.client_send({"type": "pong"})
        await transport.closed.wait()
    assert transport.close_code == 1008
    assert conn.end_reason == "policy_violation"
