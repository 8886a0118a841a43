"""An in-memory WebSocket transport and session harness, for tests under `autojump_clock`.

The session code under test is the production code; only the socket is replaced, so timeouts
can be proven at exact virtual times.
"""

from __future__ import annotations

import math
import uuid
from typing import Any

import orjson
import trio

from fitiq_rt.auth import TokenVerifier, mint_token
from fitiq_rt.notification import Notification
from fitiq_rt.observability.metrics import Metrics
from fitiq_rt.realtime.connection import Connection
from fitiq_rt.realtime.history import MemoryHistory
from fitiq_rt.realtime.registry import Registry
from fitiq_rt.realtime.session import SessionConfig, SessionDeps, run_session
from fitiq_rt.realtime.transport import PeerClosed, SendTimeout

WALL_START = 1_800_000_000.0  # the sessions' wall clock: this plus the virtual time
TEST_SECRET = "a-test-secret-that-is-at-least-32-bytes-long"


class _Closed:
    def __init__(self, code: int) -> None:
        self.code = code


class FakeTransport:
    """Both ends of a socket: the session uses accept/receive/send/close, the test the rest."""

    def __init__(self, fail_send_after: int | None = None, write_timeout: float = 5.0) -> None:
        self._inbound_send, self._inbound = trio.open_memory_channel[Any](math.inf)
        self._outbound_send, self.outbound = trio.open_memory_channel[str](math.inf)
        self.accepted = False
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.closed_at: float | None = None
        self._write_timeout = write_timeout
        self.flushes = 0
        self.closed = trio.Event()
        self.sent: list[dict[str, Any]] = []
        self._fail_send_after = fail_send_after
        self._sends_allowed: trio.Event | None = None

    # --- the session's side -------------------------------------------------------------
    async def accept(self) -> None:
        self.accepted = True

    async def receive(self) -> str | bytes | object | None:
        item = await self._inbound.receive()
        if isinstance(item, _Closed):
            raise PeerClosed(item.code)
        return item

    async def send(self, text: str) -> None:
        if self._sends_allowed is not None:
            with trio.move_on_after(self._write_timeout):  # a client that stopped reading
                await self._sends_allowed.wait()
            if self._sends_allowed is not None:
                raise SendTimeout()
        if self._fail_send_after is not None and len(self.sent) >= self._fail_send_after:
            raise RuntimeError("injected send failure")
        self.sent.append(orjson.loads(text))
        self._outbound_send.send_nowait(text)

    async def flush(self) -> None:
        self.flushes += 1

    async def close(self, code: int, reason: str) -> None:
        self.close_code = code
        self.close_reason = reason
        self.closed_at = trio.current_time()
        self.closed.set()

    # --- the client's side --------------------------------------------------------------
    def client_send(self, message: str | bytes | dict[str, Any]) -> None:
        if isinstance(message, dict):
            message = orjson.dumps(message).decode()
        self._inbound_send.send_nowait(message)

    def client_close(self, code: int = 1000) -> None:
        self._inbound_send.send_nowait(_Closed(code))

    def stop_reading(self) -> None:
        """Make the session's sends hang, like a client whose TCP window is full."""
        self._sends_allowed = trio.Event()

    def resume_reading(self) -> None:
        if self._sends_allowed is not None:
            self._sends_allowed.set()
            self._sends_allowed = None

    async def next_frame(self) -> dict[str, Any]:
        with trio.fail_after(24 * 3600):  # a virtual day: a hung test fails instead of hanging
            return orjson.loads(await self.outbound.receive())

    def frames(self, kind: str | None = None) -> list[dict[str, Any]]:
        return [f for f in self.sent if kind is None or f["type"] == kind]


class Harness:
    """A registry, history and metrics shared by the sessions a test starts."""

    def __init__(
        self,
        *,
        ping_interval: float = 30.0,
        idle_timeout: float = 90.0,
        send_queue: int = 256,
        max_messages_per_second: float = 20.0,
        history_limit: int = 1000,
        close_timeout: float = 5.0,
        token_warning: float = 60.0,
        history: MemoryHistory | None = None,
    ) -> None:
        self.registry = Registry()
        self.verifier = TokenVerifier(secret=TEST_SECRET)
        self.history = history or MemoryHistory(keep=history_limit)
        self.metrics = Metrics()
        self.send_queue = send_queue
        self.deps = SessionDeps(
            config=SessionConfig(
                ping_interval=ping_interval,
                idle_timeout=idle_timeout,
                max_messages_per_second=max_messages_per_second,
                history_limit=history_limit,
                close_timeout=close_timeout,
                token_warning=token_warning,
            ),
            registry=self.registry,
            history=self.history,
            metrics=self.metrics,
            wall_clock=self.wall_clock,
            verify_token=self.verifier.verify,
        )
        self._seq: dict[str, int] = {}

    @staticmethod
    def wall_clock() -> float:
        return WALL_START + trio.current_time()

    def token(self, user_id: str, expires_in: float) -> str:
        """A token whose exp is `expires_in` seconds from now on the sessions' wall clock."""
        return mint_token(TEST_SECRET, user_id, extra={"exp": self.wall_clock() + expires_in})

    def open(self, user_id: str, connection_id: str | None = None) -> Connection:
        return Connection.open(
            connection_id=connection_id or uuid.uuid4().hex,
            user_id=user_id,
            client_ip="127.0.0.1",
            queue_size=self.send_queue,
            wall_now=WALL_START,
        )

    async def run(
        self,
        conn: Connection,
        transport: FakeTransport,
        *,
        token_ttl: float = 10 * 24 * 3600,
        resume_from: int | None = None,
    ) -> None:
        expires_at = WALL_START + trio.current_time() + token_ttl
        self.registry.add(conn)  # what the handshake's Registry.try_add does
        await run_session(
            conn, transport, self.deps, expires_at=expires_at, resume_from=resume_from
        )

    def launch(
        self, nursery: trio.Nursery, user_id: str, **kwargs: Any
    ) -> tuple[Connection, FakeTransport]:
        """Start a session in the nursery without waiting for anything."""
        conn = self.open(user_id)
        transport = FakeTransport()
        nursery.start_soon(lambda: self.run(conn, transport, **kwargs))
        return conn, transport

    async def start(
        self, nursery: trio.Nursery, user_id: str, **kwargs: Any
    ) -> tuple[Connection, FakeTransport]:
        """Start a session and wait for its welcome frame."""
        conn, transport = self.launch(nursery, user_id, **kwargs)
        welcome = await transport.next_frame()
        assert welcome["type"] == "welcome"
        return conn, transport

    def publish(
        self, user_id: str, kind: str = "meal_log.completed", *, fan_out: bool = True
    ) -> Notification:
        """Store a notification with the next seq and fan it out, like the Notifier does."""
        seq = self._seq.get(user_id, 0) + 1
        self._seq[user_id] = seq
        note = Notification(
            user_id=user_id,
            seq=seq,
            type=kind,
            event_id=uuid.uuid4().hex,
            created_at="2027-01-15T08:00:00.000Z",
            data={"id": f"meal-{seq}", "user_id": user_id},
        )
        self.history.append(note)
        if fan_out:
            self.registry.deliver(user_id, note)
        return note
