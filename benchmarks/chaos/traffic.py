"""The traffic of a fault run: meal logs posted at a steady rate, and listening devices.

Posts carry an Idempotency-Key and are retried, on another node, after a 5xx, a timeout or a
broken connection, as a careful mobile client would: a retry can never create a second meal log.
Listeners are the reference client (`fitiq_rt.client.ReferenceClient`, what `fitiq-rt listen`
runs) behind the cluster's load balancer; besides what the client hands over (deduplicated and
ordered by the client), every frame each socket received is recorded, so the verdict can also
judge what the server sent on each connection.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs
import httpx
import orjson
import trio
import trio_websocket

from fitiq_rt.client import Backoff, ReferenceClient, static_token

from .cluster import WS_PATH, Cluster

POST_PATH = "/api/v1/meal-logs/natural"
FOODS = ("2 eggs", "1 banana", "a bowl of oatmeal", "200 g chicken breast", "1 apple", "toast")


@attrs.define
class Post:
    """One meal log a user means to log once, however many attempts it takes."""

    index: int
    user: str
    key: str
    first_attempt: float  # wall clock (time.time), comparable with the server's stamps
    attempts: int = 0
    accepted_at: float | None = None
    meal_id: str | None = None
    last_error: str | None = None
    status: int | None = None


class Poster:
    """`total` posts at `rate` per second, user after user, node after node."""

    def __init__(
        self,
        cluster: Cluster,
        users: list[tuple[str, str]],
        *,
        total: int,
        rate: float,
        request_timeout: float = 2.0,
        give_up_after: float = 60.0,
    ) -> None:
        self.cluster = cluster
        self.users = users
        self.total = total
        self.rate = rate
        self.request_timeout = request_timeout
        self.give_up_after = give_up_after
        self.posts: list[Post] = []
        self.done = trio.Event()

    @property
    def accepted(self) -> int:
        return sum(1 for post in self.posts if post.meal_id is not None)

    async def run(self) -> None:
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=32)
        async with (
            httpx.AsyncClient(timeout=self.request_timeout, limits=limits) as http,
            trio.open_nursery() as nursery,
        ):
            start = trio.current_time()
            for i in range(self.total):
                await trio.sleep_until(start + i / self.rate)
                user, token = self.users[i % len(self.users)]
                post = Post(i, user, f"chaos-{uuid.uuid4().hex}", time.time())
                self.posts.append(post)
                nursery.start_soon(self._deliver, http, post, token)
        self.done.set()

    async def _deliver(self, http: httpx.AsyncClient, post: Post, token: str) -> None:
        """Attempt until accepted (201, or 200 for a key already used), or give up."""
        headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": post.key}
        body = {"raw_input": FOODS[post.index % len(FOODS)], "meal_type": "lunch"}
        deadline = trio.current_time() + self.give_up_after
        while trio.current_time() < deadline:
            node = self.cluster.pick(post.index + post.attempts)
            post.attempts += 1
            try:
                response = await http.post(node.base_url + POST_PATH, json=body, headers=headers)
            except httpx.HTTPError as error:
                post.last_error = f"{node.name}: {type(error).__name__}"
            else:
                post.status = response.status_code
                if response.status_code in (200, 201):
                    post.meal_id = str(response.json()["id"])
                    post.accepted_at = time.time()
                    return
                post.last_error = f"{node.name}: HTTP {response.status_code}"
                if response.status_code < 500 and response.status_code != 429:
                    return  # refused for good: counted as not accepted
            await trio.sleep(0.2)


@attrs.define
class Frame:
    seq: int
    received_at: float


@attrs.define
class Connection:
    """One socket: which node, which last_seq it asked for, every seq frame it received."""

    node: str
    requested: int | None
    frames: list[Frame] = attrs.field(factory=list)


@attrs.define
class Delivery:
    """A notification as the client handed it over (once, in order)."""

    seq: int
    meal_id: str
    created_at: str
    finished_at: str
    received_at: float


class _RecordingSocket:
    def __init__(self, ws: trio_websocket.WebSocketConnection, record: Connection) -> None:
        self._ws = ws
        self._record = record

    async def get_message(self) -> str | bytes:
        message = await self._ws.get_message()
        frame = orjson.loads(message)
        kind = frame.get("type", "")
        if isinstance(kind, str) and kind.startswith("meal_log.") and "seq" in frame:
            self._record.frames.append(Frame(int(frame["seq"]), time.time()))
        return message

    async def send_message(self, message: str | bytes) -> None:
        await self._ws.send_message(message)


@attrs.define(eq=False)
class Listener:
    """One device of a user: a reference client that may be restarted on another node."""

    name: str
    user: str
    token: str
    preferred: int
    cluster: Cluster
    deliveries: list[Delivery] = attrs.field(factory=list)
    connections: list[Connection] = attrs.field(factory=list)
    restarts: int = 0
    client: ReferenceClient | None = None
    _scope: trio.CancelScope | None = None
    _restarting: bool = False

    @property
    def last_seq(self) -> int:
        return self.deliveries[-1].seq if self.deliveries else 0

    @asynccontextmanager
    async def _connect(self, url: str) -> AsyncIterator[_RecordingSocket]:
        node = self.cluster.pick(self.preferred)
        tail = url.split(WS_PATH, 1)[1]
        asked = parse_qs(urlsplit(url).query).get("last_seq")
        record = Connection(node.name, int(asked[0]) if asked else None)
        async with trio_websocket.open_websocket_url(
            node.ws_base + tail, connect_timeout=5, disconnect_timeout=2
        ) as ws:
            self.connections.append(record)
            yield _RecordingSocket(ws, record)

    async def _record(self, frame: dict[str, Any]) -> None:
        data = frame.get("data") or {}
        self.deliveries.append(
            Delivery(
                seq=int(frame["seq"]),
                meal_id=str(data.get("id")),
                created_at=str(data.get("created_at")),
                finished_at=str(data.get("updated_at")),
                received_at=time.time(),
            )
        )

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen until stopped; `restart` replaces the client without ending this task."""
        task_status.started()
        while True:
            self.client = ReferenceClient(
                self.cluster.nodes[0].ws_base,  # the connector picks the node
                static_token(self.token),
                last_seq=self.last_seq,  # 0 at first: everything from seq 1
                backoff=Backoff(initial=0.05, cap=0.5),
                connect=self._connect,
            )
            with trio.CancelScope() as scope:
                self._scope = scope
                await self.client.run(self._record)
            if not self._restarting:
                return
            self._restarting = False

    def restart(self, preferred: int) -> None:
        """Close the socket and start a new client on another node, resuming from last_seq
        (what an operator does with `fitiq-rt listen --last-seq N`)."""
        assert self._scope is not None
        self.preferred = preferred
        self.restarts += 1
        self._restarting = True
        self._scope.cancel()

    def stop(self) -> None:
        if self._scope is not None:
            self._scope.cancel()
