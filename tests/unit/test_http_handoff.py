"""The handed-over REST connection: its keep-alive timer at exact virtual times, and its writes.

A real socket pair carries real HTTP/1.1 between a raw client and `HandoffConnection` (Hypercorn's
h11 protocol, our timer and write buffer) serving a small ASGI app; autojump_clock runs the time.
"""

from __future__ import annotations

from typing import Any

import trio

from tests.handoff_pair import KEEP_ALIVE, Client, handoff_pair

REQUEST = b"GET /%s HTTP/1.1\r\nHost: x\r\n\r\n"


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """`/slow` answers after 12 s, `/stream` sends two chunks 1 s apart, anything else at once."""
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/slow":
        await trio.sleep(12)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    if path == "/stream":
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        await trio.sleep(1)
        await send({"type": "http.response.body", "body": b"second"})
        return
    await send({"type": "http.response.body", "body": path.encode()})


async def get(client: Client, path: str) -> None:
    await client.stream.send_all(REQUEST % path.encode())


async def test_an_idle_connection_closes_exactly_keep_alive_seconds_after_its_last_response(
    autojump_clock: object,
) -> None:
    async with handoff_pair(app) as (client, _, _):
        await get(client, "one")
        assert await client.until(b"/one") == 0.0
        await trio.sleep(3)
        await get(client, "two")  # a request in the idle period moves the deadline
        assert await client.until(b"/two") == 3.0
        assert await client.closed_at() == 3.0 + KEEP_ALIVE


async def test_a_slow_response_is_not_cut_by_the_timer_and_restarts_it(
    autojump_clock: object,
) -> None:
    async with handoff_pair(app) as (client, _, _):
        await get(client, "slow")
        assert await client.until(b"/slow") == 12.0
        assert await client.closed_at() == 12.0 + KEEP_ALIVE


async def test_a_connection_that_never_sends_closes_at_the_timeout(autojump_clock: object) -> None:
    async with handoff_pair(app) as (client, _, _):
        assert await client.closed_at() == KEEP_ALIVE


async def test_terminate_closes_an_idle_connection_at_once(autojump_clock: object) -> None:
    async with handoff_pair(app) as (client, _, context):
        await get(client, "one")
        await client.until(b"/one")
        await trio.sleep(1)
        await context.terminated.set()
        assert await client.closed_at() == 1.0


async def test_terminate_lets_a_busy_connection_finish_its_response(autojump_clock: object) -> None:
    async with handoff_pair(app) as (client, _, context):
        await get(client, "slow")
        await trio.sleep(2)
        await context.terminated.set()
        assert await client.until(b"/slow") == 12.0
        assert await client.closed_at() == 12.0


async def test_a_small_response_is_one_write(autojump_clock: object) -> None:
    async with handoff_pair(app) as (client, server_stream, _):
        for index in range(3):
            await get(client, f"r{index}")
            await client.until(f"/r{index}".encode())
        assert server_stream.writes == 3


async def test_a_streamed_body_is_written_as_it_comes(autojump_clock: object) -> None:
    async with handoff_pair(app) as (client, _, _):
        await get(client, "stream")
        assert await client.until(b"first") == 0.0  # not held until the response ends
        assert await client.until(b"second") == 1.0
        assert await client.closed_at() == 1.0 + KEEP_ALIVE


async def test_pipelined_requests_are_answered_in_order(autojump_clock: object) -> None:
    async with handoff_pair(app) as (client, _, _):
        await client.stream.send_all(REQUEST % b"slow" + REQUEST % b"fast")
        assert await client.until(b"/fast") == 12.0  # the second waits for the first's answer
        assert client.buffer.index(b"/slow") < client.buffer.index(b"/fast")
