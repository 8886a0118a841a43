"""Push on two real `fitiq-rt serve` nodes (PostgreSQL + a private Redis): each queued
notification is pushed once, by the node that stored it, and none is pushed while some socket
of the user, on either node, received it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio

from benchmarks.chaos.services import RedisProcess
from tests.apns_standin import ApnsStandIn, make_keys, push_env, running_standin
from tests.cluster import (
    open_socket,
    post_meal,
    two_nodes,
    unique_user,
)
from tests.servers import SubprocessServer, token_for

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

DEVICE = "d4" * 32
SETTLE = 1.0  # seconds a second push, which must not come, is given to come anyway


@pytest.fixture
async def standin_and_nodes(
    tmp_path: Path, database: str, redis_server: RedisProcess
) -> AsyncIterator[tuple[ApnsStandIn, list[SubprocessServer]]]:
    keys = make_keys(tmp_path)
    async with running_standin(keys, tmp_path / "apns") as standin:
        env = {
            "FITIQ_DATABASE_URL": database,
            "FITIQ_REDIS_URL": redis_server.url,
            "SSL_CERT_FILE": str(keys.ca_file),
            **push_env(keys, standin),
        }
        async with two_nodes(tmp_path, **env) as started:
            yield standin, started
        assert standin.problems == []


def events(nodes: list[SubprocessServer], name: str) -> list[dict[str, object]]:
    return [event for node in nodes for event in node.events(name)]


async def test_two_nodes_send_one_push_per_queued_notification_and_none_when_received(
    standin_and_nodes: tuple[ApnsStandIn, list[SubprocessServer]], nursery: trio.Nursery
) -> None:
    standin, nodes = standin_and_nodes
    user = unique_user("ana")
    async with httpx.AsyncClient(timeout=10) as http:
        registered = await http.put(
            nodes[0].url(f"/api/v1/devices/{DEVICE}"),
            json={"platform": "ios"},
            headers={"Authorization": f"Bearer {token_for(user)}"},
        )
        assert registered.status_code == 201
        for i in range(6):
            await post_meal(http, nodes[i % 2], user, f"{i + 1} eggs")
        await standin.wait_for(6)
        await trio.sleep(SETTLE)
        assert sorted(r.body["seq"] for r in standin.received) == [1, 2, 3, 4, 5, 6]
        sent = events(nodes, "push.sent")
        queued = events(nodes, "notification.queued")
        assert len(sent) == len(queued) == 6
        for node in nodes:  # each node pushed exactly what it stored
            mine = sorted(e["seq"] for e in node.events("notification.queued"))
            assert sorted(e["seq"] for e in node.events("push.sent")) == mine
            assert mine  # both nodes stored some (the posts alternate)

        await open_socket(nursery, nodes[1], user, "b")  # a socket on the other node only
        await post_meal(http, nodes[0], user, "an apple")
        with trio.fail_after(15):
            while not events(nodes, "notification.delivered"):
                await trio.sleep(0.02)
        await trio.sleep(SETTLE)
    assert len(standin.received) == 6  # received through Redis by node b: no push
    assert [e["seq"] for e in events(nodes, "notification.delivered")] == [7]
    # Every line of both nodes (at debug level, libraries' records included): no device token in
    # full (the access log's PUT included), no provider token.
    secrets = {DEVICE} | {r.provider_token for r in standin.received}
    for node in nodes:
        assert node.lines and not [line for line in node.lines if any(s in line for s in secrets)]
