"""The reference client: the protocol's executable spec for iOS engineers, benchmarks and tests.

What it does, in the order a mobile client should:
1. connect with the token in the query (and `last_seq` once it has seen one);
2. wait for `welcome`: only then is the socket live (stop polling here, not at TCP connect);
3. answer every server `ping` with `pong`, and send its own `ping` every `ping_interval`;
4. hand notifications to the caller in seq order, exactly once (skip seq <= last seen);
5. on `token_expiring`, fetch a fresh token and send `refresh` on the live socket, so it is not
   closed 4001 at the old token's exp;
6. on any close or network error, reconnect with capped exponential backoff and jitter, resuming
   from the last seq it saw; on 4001 or a 401, fetch a fresh token first.
"""

from __future__ import annotations

import random
import shlex
import subprocess
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol
from urllib.parse import urlencode

import attrs
import orjson
import trio
from trio_websocket import ConnectionClosed, ConnectionRejected, HandshakeError, open_websocket_url

from . import events
from .backoff import Backoff
from .logconfig import get_logger
from .realtime.closing import TOKEN_EXPIRED

log = get_logger("fitiq_rt.client")

RETRYABLE_REJECTIONS = {408, 429, 500, 502, 503, 504}


def describe(error: BaseException) -> str:
    """A failure as one readable line: some (a refused connect in a group) print as ''."""
    if isinstance(error, BaseExceptionGroup) and error.exceptions:
        return describe(error.exceptions[0])
    text = str(error) or repr(error)
    return f"{type(error).__name__}: {text}"[:200]


class Socket(Protocol):
    async def get_message(self) -> str | bytes: ...

    async def send_message(self, message: str | bytes) -> None: ...


Connector = Callable[[str], AbstractAsyncContextManager[Socket]]
TokenSource = Callable[[], Awaitable[str]]
NotificationHandler = Callable[[dict[str, Any]], Awaitable[None]]


class ClientStopped(Exception):
    """The client cannot go on (e.g. the token is refused and no fresh one can be had)."""


def _default_connector(url: str) -> AbstractAsyncContextManager[Socket]:
    return open_websocket_url(url, connect_timeout=10, disconnect_timeout=2)


def command_token(command: str, timeout: float = 10.0) -> TokenSource:
    """A token source that runs `command` (e.g. `fitiq-rt token alice --ttl 3600`) each time a
    fresh token is wanted and reads the token from its stdout. A command that fails stops the
    client only when it has no token at all; otherwise the old token is kept (and refused
    later, which ends in a clear ClientStopped)."""
    argv = shlex.split(command)
    last: str | None = None

    async def source() -> str:
        nonlocal last
        try:
            with trio.fail_after(timeout):
                done = await trio.run_process(argv, capture_stdout=True, capture_stderr=True)
            token = done.stdout.decode().strip()
            if not token:
                raise ValueError("it printed no token")
        except (OSError, subprocess.CalledProcessError, ValueError, trio.TooSlowError) as error:
            if last is None:
                raise ClientStopped(f"the token command failed: {describe(error)}") from None
            log.warning(events.CLIENT_TOKEN_COMMAND_FAILED, error=describe(error))
            return last
        last = token
        return token

    return source


def static_token(token: str) -> TokenSource:
    async def source() -> str:
        return token

    return source


@attrs.define
class ReferenceClient:
    url: str  # ws://host:port/ws/meal-logs
    token_source: TokenSource
    last_seq: int | None = None  # None: start from the welcome's last_seq (no replay)
    backoff: Backoff = Backoff()
    rng: random.Random = attrs.field(factory=random.Random)
    connect: Connector = _default_connector
    connections: int = 0
    welcome: dict[str, Any] | None = None
    refreshes: int = 0  # `refreshed` answers received
    _replaying: bool = False
    _token: str = ""  # the token the current socket lives on

    def _url(self, token: str) -> str:
        query: dict[str, Any] = {"token": token}
        if self.last_seq is not None:
            query["last_seq"] = self.last_seq
        return f"{self.url}?{urlencode(query)}"

    async def run(self, on_notification: NotificationHandler) -> None:
        """Stay connected forever (until cancelled), delivering each seq once, in order."""
        attempt = 0
        self._token = await self.token_source()
        while True:
            welcomed_before = self.connections
            failure: BaseException | None = None
            try:
                async with self.connect(self._url(self._token)) as socket:
                    await self._session(socket, on_notification)
            except ConnectionRejected as rejected:
                if rejected.status_code == 401:
                    self._token = await self._fresh_token(self._token)
                elif rejected.status_code not in RETRYABLE_REJECTIONS:
                    raise ClientStopped(
                        f"the server refused the socket: {rejected.status_code}"
                    ) from None
            except ConnectionClosed as closed:
                code = closed.reason.code if closed.reason else None
                if code == TOKEN_EXPIRED.code:
                    self._token = await self._fresh_token(self._token)
            except (OSError, HandshakeError, trio.BrokenResourceError) as error:
                failure = error
            if self.connections > welcomed_before:
                attempt = 0  # a session that reached welcome was healthy: start the ladder again
            delay = self.backoff.delay(attempt, self.rng)
            if failure is not None:
                log.warning(
                    events.CLIENT_CONNECT_FAILED, error=describe(failure), retry_in=round(delay, 2)
                )
            attempt += 1
            await trio.sleep(delay)

    async def _fresh_token(self, old: str) -> str:
        token = await self.token_source()
        if token == old:
            raise ClientStopped("the token was refused and the token source has no fresh one")
        return token

    async def _session(self, socket: Socket, on_notification: NotificationHandler) -> None:
        """One connection: welcome, then frames until it closes (or a gap forces a reconnect)."""
        welcome = orjson.loads(await socket.get_message())
        if welcome.get("type") != "welcome":
            raise ConnectionClosed(None)
        self.welcome = welcome
        self.connections += 1
        log.info(
            events.CLIENT_CONNECTED,
            connection_id=welcome.get("connection_id"),
            last_seq=welcome.get("last_seq"),
        )
        server_latest = int(welcome["last_seq"])
        if self.last_seq is None:
            self.last_seq = server_latest
            self._replaying = False
        else:
            if self.last_seq > server_latest:
                self.last_seq = 0  # the store was reset: the server replays from 1
            self._replaying = True  # we asked for a replay: ack once, at `resumed`
        ended: Exception | None = None
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._ping_every, socket, float(welcome["ping_interval"]))
            try:
                await self._read(socket, on_notification)
            except (ConnectionClosed, OSError, trio.BrokenResourceError) as error:
                ended = error  # re-raised outside the nursery, so callers see it unwrapped
            nursery.cancel_scope.cancel()
        if ended is not None:
            raise ended

    async def _ping_every(self, socket: Socket, interval: float) -> None:
        while True:
            await trio.sleep(interval)
            try:
                await socket.send_message('{"type":"ping"}')
            except (ConnectionClosed, OSError, trio.BrokenResourceError):
                return  # the reader sees the close too, and reports it

    async def _read(self, socket: Socket, on_notification: NotificationHandler) -> None:
        while True:
            frame = orjson.loads(await socket.get_message())
            kind = frame.get("type")
            if kind == "ping":
                await socket.send_message('{"type":"pong"}')
            elif kind == "resumed":
                self._replaying = False
                await self._ack(socket)
            elif kind == "token_expiring":
                await self._refresh(socket)
            elif kind == "refreshed":
                self.refreshes += 1
                log.info(events.CLIENT_TOKEN_REFRESHED, expires_at=frame.get("expires_at"))
            elif kind == "error":
                log.warning(events.CLIENT_SERVER_ERROR, code=frame.get("code"))
            elif "seq" in frame and kind != "ack":
                if await self._accept(socket, frame, on_notification) is False:
                    return  # a gap: reconnect and let the resume fill it

    async def _refresh(self, socket: Socket) -> None:
        """Move the live socket to a fresh token; without one, 4001 and a reconnect follow."""
        token = await self.token_source()
        if token == self._token:
            log.info(events.CLIENT_TOKEN_EXPIRING, refreshed=False)
            return
        self._token = token
        await socket.send_message(orjson.dumps({"type": "refresh", "token": token}).decode())

    async def _accept(
        self, socket: Socket, frame: dict[str, Any], on_notification: NotificationHandler
    ) -> bool:
        seq = int(frame["seq"])
        last = self.last_seq or 0
        if seq <= last:
            return True  # already handed over (a replay overlapping what we saw)
        if seq > last + 1:
            log.warning(events.CLIENT_GAP, last_seq=last, seq=seq)
            return False
        await on_notification(frame)
        self.last_seq = seq
        if not self._replaying:  # one ack per replay, not one per frame: stay under the rate cap
            await self._ack(socket)
        return True

    async def _ack(self, socket: Socket) -> None:
        await socket.send_message(orjson.dumps({"type": "ack", "seq": self.last_seq or 0}).decode())
