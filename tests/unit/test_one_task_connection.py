"""Quart-Trio requests run in one task (`OneTaskHTTPConnection`), over a real socket pair.

A real QuartTrio app behind `HandoffConnection`, a raw HTTP/1.1 client; autojump_clock runs the
time, so the body and response timeouts are checked at exact virtual times.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing
from quart import request
from quart_trio import QuartTrio

from fitiq_rt.rest.one_task import OneTaskHTTPConnection
from tests.handoff_pair import Client, handoff_pair

BODY_TIMEOUT = 10.0
MAX_BODY = 64


def post(path: str, body: bytes, *, declared: int | None = None) -> bytes:
    length = len(body) if declared is None else declared
    head = f"POST /{path} HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n"
    return head.encode() + body


def chunked_post(path: str, body: bytes) -> bytes:
    head = f"POST /{path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    return head.encode() + f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"


def make_app(finished: list[str]) -> QuartTrio:
    app = QuartTrio(__name__)
    app.asgi_http_class = OneTaskHTTPConnection
    app.config["BODY_TIMEOUT"] = BODY_TIMEOUT
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY

    @app.post("/echo")
    async def echo() -> str:
        return f"got {(await request.get_data()).decode()}"

    @app.post("/slow")
    async def slow() -> str:
        body = (await request.get_data()).decode()
        await trio.sleep(5)
        finished.append(body)
        return "done"

    return app


class TaskCounter(trio.abc.Instrument):
    """Counts the tasks spawned while it is installed."""

    def __init__(self) -> None:
        self.spawned = 0

    def task_spawned(self, task: trio.lowlevel.Task) -> None:
        self.spawned += 1


@pytest.fixture
def finished() -> list[str]:
    """The bodies whose slow handler ran to its end."""
    return []


async def spawned_for(client: Client, message: bytes, marker: bytes) -> int:
    """Tasks spawned to answer `message`, on a connection past its first request (which also
    starts the connection's writer and keep-alive tasks)."""
    await client.stream.send_all(post("echo", b"warm"))
    await client.until(b"got warm")
    await trio.testing.wait_all_tasks_blocked()
    counter = TaskCounter()
    trio.lowlevel.add_instrument(counter)
    try:
        await client.stream.send_all(message)
        await client.until(marker)
        await trio.testing.wait_all_tasks_blocked()
    finally:
        trio.lowlevel.remove_instrument(counter)
    return counter.spawned


async def test_a_sized_body_is_read_and_handled_in_the_request_task(
    autojump_clock: object, finished: list[str]
) -> None:
    async with handoff_pair(make_app(finished)) as (client, _, _):
        # Hypercorn's app task only; Quart-Trio's own path adds a nursery with two more
        assert await spawned_for(client, post("echo", b"eggs"), b"got eggs") == 1


async def test_a_chunked_body_takes_quart_trios_two_task_path(
    autojump_clock: object, finished: list[str]
) -> None:
    async with handoff_pair(make_app(finished)) as (client, _, _):
        assert await spawned_for(client, chunked_post("echo", b"toast"), b"got toast") == 3


async def test_a_body_declared_over_the_limit_is_a_413(
    autojump_clock: object, finished: list[str]
) -> None:
    async with handoff_pair(make_app(finished)) as (client, _, _):
        await client.stream.send_all(post("echo", b"", declared=MAX_BODY + 1))
        await client.until(b"413")


async def test_a_handler_runs_to_its_end_when_its_client_goes_away(
    autojump_clock: object, finished: list[str]
) -> None:
    async with handoff_pair(make_app(finished)) as (client, _, _):
        await client.stream.send_all(post("slow", b"2 eggs"))
        await trio.sleep(1)
        await client.stream.aclose()  # gone before the answer
        await trio.sleep(10)
    assert finished == ["2 eggs"]


async def test_a_body_slower_than_body_timeout_is_a_408_at_exactly_that_time(
    autojump_clock: object, finished: list[str]
) -> None:
    async with handoff_pair(make_app(finished)) as (client, _, _):
        await client.stream.send_all(post("slow", b"2 e", declared=6))  # the rest never comes
        assert await client.until(b"408") == BODY_TIMEOUT
    assert finished == []


async def test_a_client_gone_before_its_body_arrived_runs_no_handler(
    autojump_clock: object, finished: list[str]
) -> None:
    async with handoff_pair(make_app(finished)) as (client, _, _):
        await client.stream.send_all(post("slow", b"2 e", declared=6))
        await trio.sleep(1)
        await client.stream.aclose()
        await trio.sleep(BODY_TIMEOUT + 10)
    assert finished == []
