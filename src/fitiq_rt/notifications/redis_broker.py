"""Fan-out across nodes on Redis pub/sub, with coredis (anyio-based, so it runs under trio).

Each node subscribes to `fitiq:user:{user_id}` only while it holds a socket of that user, and
hands what arrives to its local sockets. Redis pub/sub is fire-and-forget, so it is never the
source of truth: every notification is already in the store, each socket knows the last seq it
covered (`Connection.sent_top`), and the session's writer skips seqs it sent and fills gaps from
the store. That makes every recovery path here a cheap "deliver the user's newest notification
again" — duplicates and reordering are harmless, a missed notification is not.

Faults and what covers them:
- a node subscribes after a socket connected: once SUBSCRIBE is acknowledged, the user is caught
  up from the store (anything published before the subscription was committed before it);
- Redis down or restarting: `broker.disconnected`, reconnect with capped exponential backoff and
  jitter, resubscribe every local user, catch every local socket up from the store, then publish
  again what this node could not publish meanwhile (other nodes' sockets catch up through it),
  and log `broker.reconnected`;
- while Redis is down a node still delivers to its own sockets directly.

The coredis client lives inside `run()`: anyio cancel scopes must be exited by the task that
entered them, so the client is opened and closed by that one long-lived task.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import coredis
import orjson
import trio
from coredis.retry import NoRetryPolicy

from .. import events
from ..backoff import Backoff
from ..logconfig import get_logger
from .broker import LocalSockets
from .value import Notification

#: Hands the given users' sockets that are behind the store their newest notification; returns
#: how many sockets it reached (realtime.positions.catch_up, bound to the registry and store).
CatchUp = Callable[[Iterable[str]], Awaitable[int]]

log = get_logger("fitiq_rt.broker")

CHANNEL_PREFIX = "fitiq:user:"
SUBSCRIBE_BATCH = 500  # channels per SUBSCRIBE command


def channel_for(user_id: str) -> str:
    return CHANNEL_PREFIX + user_id


class RedisBroker:
    """The Broker interface over Redis; one instance per node."""

    def __init__(
        self,
        url: str,
        sockets: LocalSockets,
        catch_up: CatchUp,
        *,
        backoff_initial: float = 0.1,
        backoff_max: float = 5.0,
        command_timeout: float = 2.0,
        keepalive_seconds: float = 5.0,
    ) -> None:
        self.url = url
        self.sockets = sockets
        self.catch_up = catch_up
        self.node_id = uuid.uuid4().hex
        self.reconnect = Backoff(initial=backoff_initial, cap=backoff_max)
        self._rng = random.Random()
        self.command_timeout = command_timeout
        self.keepalive_seconds = keepalive_seconds
        self._client: coredis.Redis[bytes] | None = None
        self._subscribed: set[str] = set()
        # Users whose local socket count went 0 <-> 1 since the last sync: a set rather than a
        # queue of commands, so a connect/disconnect storm coalesces and memory stays bounded
        # while Redis is down.
        self._dirty: set[str] = set()
        self._wake = trio.Event()
        # Newest notification per user that could not be published; sent again on reconnect.
        self._unpublished: dict[str, Notification] = {}
        self._ever_connected = False
        self._session_was_up = False
        self._down_since: float | None = None
        sockets.on_first_connection = self._user_changed
        sockets.on_last_disconnection = self._user_changed

    @property
    def state(self) -> str:
        """Either "ok" (connected and subscribed) or "down"; /healthz shows it."""
        return "ok" if self._client is not None else "down"

    def _user_changed(self, user_id: str) -> None:
        """Registry hook (synchronous): the subscription task settles it at its next turn."""
        self._dirty.add(user_id)
        self._wake.set()

    # ------------------------------------------------------------------ connection lifecycle

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Stay connected until cancelled; reports started after the first attempt either way."""
        started = False

        def mark_started() -> None:
            nonlocal started
            if not started:
                started = True
                task_status.started()

        failures = 0
        while True:
            self._session_was_up = False
            try:
                await self._session(mark_started)
            except Exception as error:
                self._went_down(error, failures)
            mark_started()
            failures = 1 if self._session_was_up else failures + 1
            await trio.sleep(self._backoff(failures))

    def _backoff(self, failures: int) -> float:
        """Capped exponential backoff with jitter, so restarted Redis is not stampeded."""
        return self.reconnect.delay(max(0, failures - 1), self._rng)

    def _went_down(self, error: BaseException, failures: int) -> None:
        """Log the fall once (and failed retries sparingly); remember when it happened."""
        reason = _describe(error)
        if self._session_was_up:
            log.warning(
                events.BROKER_DISCONNECTED, error=reason, local_users=self.sockets.total_users
            )
        elif failures % 10 == 0:
            log.warning(events.BROKER_CONNECT_FAILED, error=reason, attempts=failures + 1)
        if self._down_since is None:
            self._down_since = trio.current_time()

    async def _session(self, mark_started: Callable[[], None]) -> None:
        """One connection's life: subscribe, catch up, then relay messages until it breaks."""
        client = coredis.Redis.from_url(
            self.url,
            stream_timeout=self.command_timeout,
            connect_timeout=self.command_timeout,
            retry_policy=NoRetryPolicy(),
        )
        try:
            async with (
                client,
                client.pubsub(
                    retry_policy=NoRetryPolicy(),  # reconnecting is ours: logged, then caught up
                    ignore_subscribe_messages=True,
                    subscription_timeout=self.command_timeout,
                    max_idle_seconds=self.keepalive_seconds,
                ) as pubsub,
            ):
                await client.ping()
                self._dirty.clear()
                users = self.sockets.users()
                await self._subscribe(pubsub, users)
                self._client = client
                self._session_was_up = True
                self._came_up(len(users))
                mark_started()
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._sync_subscriptions, pubsub, nursery)
                    nursery.start_soon(self._recover, users)
                    await self._relay(pubsub)
        finally:
            self._client = None
            self._subscribed = set()

    def _came_up(self, users: int) -> None:
        if self._ever_connected:
            down = trio.current_time() - (self._down_since or trio.current_time())
            log.info(events.BROKER_RECONNECTED, users=users, down_seconds=round(down, 3))
        else:
            log.info(events.BROKER_CONNECTED, users=users, node_id=self.node_id)
        self._ever_connected = True
        self._down_since = None

    # ------------------------------------------------------------------ subscriptions

    async def _subscribe(self, pubsub: Any, users: list[str]) -> None:
        batch = [channel_for(user) for user in users]
        for start in range(0, len(batch), SUBSCRIBE_BATCH):
            await pubsub.subscribe(*batch[start : start + SUBSCRIBE_BATCH])
        self._subscribed.update(users)

    async def _sync_subscriptions(self, pubsub: Any, nursery: trio.Nursery) -> None:
        """Follow the registry: subscribe on a first local socket, unsubscribe on the last."""
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            dirty, self._dirty = self._dirty, set()
            wanted = {user for user in dirty if self.sockets.count_for_user(user)}
            added = sorted(wanted - self._subscribed)
            dropped = sorted((dirty - wanted) & self._subscribed)
            if added:
                await self._subscribe(pubsub, added)
                # Acknowledged: whatever was published before is in the store now.
                nursery.start_soon(self._catch_up, added)
            if dropped:
                await pubsub.unsubscribe(*(channel_for(user) for user in dropped))
                self._subscribed.difference_update(dropped)

    # ------------------------------------------------------------------ catching up

    async def _recover(self, users: list[str]) -> None:
        """After (re)connecting: catch local sockets up, then publish what could not be sent."""
        await self._catch_up(users)
        await self._republish()

    async def _catch_up(self, users: Iterable[str]) -> None:
        """Hand sockets behind the store the user's newest notification (realtime/positions.py)."""
        try:
            delivered = await self.catch_up(users)
        except Exception as error:  # a catch-up that gave up: the position check covers it
            log.warning(events.BROKER_CATCH_UP_FAILED, error=_describe(error))
            return
        if delivered:
            log.info(events.BROKER_CAUGHT_UP, sockets=delivered)

    async def _republish(self) -> None:
        """Publish again, per user, the newest notification that failed to go out."""
        for user_id, note in list(self._unpublished.items()):
            if await self._publish_remote(note) is None:
                return  # down again; the next reconnect tries once more
            if self._unpublished.get(user_id) is note:
                del self._unpublished[user_id]

    # ------------------------------------------------------------------ messages

    async def _relay(self, pubsub: Any) -> None:
        while True:
            message = await pubsub.get_message()
            if message is not None and message["type"] == "message":
                self._deliver_message(message["data"])

    def _deliver_message(self, raw: bytes | str) -> None:
        try:
            payload = orjson.loads(raw)
            if payload["node"] == self.node_id:
                return  # published here: already delivered to the local sockets
            note = Notification(
                user_id=payload["user_id"],
                seq=int(payload["seq"]),
                type=payload["type"],
                event_id=payload["event_id"],
                created_at=payload["created_at"],
                data=payload["data"],
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            log.warning(events.BROKER_BAD_MESSAGE, error=_describe(error))
            return
        self.sockets.deliver(note.user_id, note)

    def _encode(self, note: Notification) -> bytes:
        return orjson.dumps(
            {
                "node": self.node_id,
                "user_id": note.user_id,
                "seq": note.seq,
                "type": note.type,
                "event_id": note.event_id,
                "created_at": note.created_at,
                "data": note.data,
            }
        )

    async def publish(self, note: Notification) -> int:
        """Deliver locally, then to the other nodes; >0 means some node or socket took it.

        The PUBLISH receiver count is the number of subscribed nodes (this one included when it
        holds a socket of the user). When Redis cannot be reached the notification is stored
        anyway: the local count is returned and the note is published again on reconnect.
        """
        local = self.sockets.deliver(note.user_id, note)
        nodes = await self._publish_remote(note)
        if nodes is None:
            previous = self._unpublished.get(note.user_id)
            if previous is None or previous.seq < note.seq:
                self._unpublished[note.user_id] = note
            return local
        return max(nodes, local)

    async def _publish_remote(self, note: Notification) -> int | None:
        """PUBLISH the note; None when Redis is down or the command failed (logged)."""
        client = self._client
        if client is None:
            return None
        try:
            return int(await client.publish(channel_for(note.user_id), self._encode(note)))
        except Exception as error:
            log.warning(
                events.BROKER_PUBLISH_FAILED,
                user_id=note.user_id,
                seq=note.seq,
                error=_describe(error),
            )
            return None


def _describe(error: BaseException) -> str:
    """One readable line for an error, flattening the exception groups anyio/trio raise."""
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    text = str(error) or type(error).__name__
    return f"{type(error).__name__}: {text}"[:300]
