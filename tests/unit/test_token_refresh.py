"""A socket's token at exact virtual times: the warning, a refresh moving the expiry, and 4001.

The sessions' wall clock is WALL_START plus the virtual time, and tokens are minted on it, so a
token's `exp` and the session's deadlines line up to the second.
"""

from __future__ import annotations

from typing import Any

import trio
import trio.testing

from fitiq_rt.auth import mint_token
from fitiq_rt.clock import rfc3339_from_epoch
from tests.fakes import TEST_SECRET, WALL_START, FakeTransport, Harness


async def next_of(transport: FakeTransport, kind: str) -> tuple[dict[str, Any], float]:
    """The next frame of this type (pings and the rest skipped), and when it was sent."""
    while True:
        frame = await transport.next_frame()
        if frame["type"] == kind:
            return frame, trio.current_time()


def quiet_harness() -> Harness:
    """Heartbeats and the idle timeout far out of the way: only the token's timers act."""
    return Harness(token_warning=60, ping_interval=5000, idle_timeout=10000)


def at(conn_started: float, offset: float) -> str:
    return rfc3339_from_epoch(WALL_START + conn_started + offset)


async def test_token_expiring_goes_out_once_a_warning_before_exp_then_4001_at_exp(
    autojump_clock: object, nursery: trio.Nursery
) -> None:
    harness = quiet_harness()
    conn, transport = await harness.start(nursery, "u1", token_ttl=300)
    warning, sent = await next_of(transport, "token_expiring")
    assert sent - conn.started == 240.0
    assert warning == {"type": "token_expiring", "expires_at": at(conn.started, 300)}
    await transport.closed.wait()
    assert (transport.close_code, transport.closed_at - conn.started) == (4001, 300.0)
    assert len(transport.frames("token_expiring")) == 1


async def test_a_token_shorter_than_the_warning_is_warned_about_at_once(
    autojump_clock: object, nursery: trio.Nursery
) -> None:
    harness = quiet_harness()
    conn, transport = await harness.start(nursery, "u1", token_ttl=30)
    _, sent = await next_of(transport, "token_expiring")
    assert sent == conn.started
    await transport.closed.wait()
    assert (transport.close_code, transport.closed_at - conn.started) == (4001, 30.0)


async def test_a_refresh_moves_the_expiry_and_the_warning_to_the_new_token(
    autojump_clock: object, nursery: trio.Nursery
) -> None:
    harness = quiet_harness()
    conn, transport = await harness.start(nursery, "u1", token_ttl=300)
    await next_of(transport, "token_expiring")  # at 240
    await trio.sleep(10)
    transport.client_send({"type": "refresh", "token": harness.token("u1", expires_in=600)})
    refreshed, when = await next_of(transport, "refreshed")
    assert when - conn.started == 250.0
    assert refreshed == {"type": "refreshed", "expires_at": at(conn.started, 850)}
    warning, sent = await next_of(transport, "token_expiring")  # one for the new expiry
    assert sent - conn.started == 790.0
    assert warning["expires_at"] == at(conn.started, 850)
    await transport.closed.wait()
    assert (transport.close_code, transport.closed_at - conn.started) == (4001, 850.0)
    assert len(transport.frames("token_expiring")) == 2


async def test_a_refresh_that_cannot_be_used_changes_nothing(
    autojump_clock: object, nursery: trio.Nursery
) -> None:
    harness = quiet_harness()
    conn, transport = await harness.start(nursery, "u1", token_ttl=300)
    refusals = {
        "token_user_mismatch": harness.token("u2", expires_in=3600),
        "invalid_token": "not-a-jwt",
    }
    expired = mint_token(TEST_SECRET, "u1", extra={"exp": 1_000_000_000})  # long gone
    forged = mint_token("another-secret-that-is-also-32-bytes-long!", "u1", ttl=3600)
    for code, token in [*refusals.items(), ("invalid_token", expired), ("invalid_token", forged)]:
        transport.client_send({"type": "refresh", "token": token})
        error, _ = await next_of(transport, "error")
        assert error["code"] == code, token
        assert error["message"]
    transport.client_send({"type": "refresh"})
    assert (await next_of(transport, "error"))[0]["code"] == "invalid_message"
    await transport.closed.wait()
    assert (transport.close_code, transport.closed_at - conn.started) == (4001, 300.0)
    assert transport.frames("refreshed") == []


async def test_a_refresh_to_a_sooner_exp_takes_effect_at_once(
    autojump_clock: object, nursery: trio.Nursery
) -> None:
    """The socket never outlives the token it holds now, even one shorter than the last."""
    harness = quiet_harness()
    conn, transport = await harness.start(nursery, "u1", token_ttl=3600)
    await trio.sleep(100)
    transport.client_send({"type": "refresh", "token": harness.token("u1", expires_in=50)})
    await next_of(transport, "refreshed")
    _, warned = await next_of(transport, "token_expiring")  # 50 s left < the 60 s warning
    assert warned - conn.started == 100.0
    await transport.closed.wait()
    assert (transport.close_code, transport.closed_at - conn.started) == (4001, 150.0)
