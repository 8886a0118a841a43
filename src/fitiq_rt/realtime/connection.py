"""One live WebSocket connection's state: its life, its outbound queue, counters and why it ended.

The registry holds these; the session's tasks update them. A connection goes OPENING (registered,
welcome not sent) → OPEN (welcome sent) → CLOSING (`end()` decided why) → CLOSED (out of the
registry, `ws.disconnected` logged), and only forward: each step is a method that checks it.
`end()` is synchronous and idempotent: the first rule wins, so the disconnect log always names
what really ended the socket.
"""

from __future__ import annotations

import enum
import math

import attrs
import trio

from ..clock import rfc3339_from_epoch
from ..notification import Notification
from .closing import SLOW_CONSUMER, CloseRule
from .ordering import Coverage, Replay


class ConnState(enum.Enum):
    OPENING = "opening"  # registered; the writer has not sent the welcome yet
    OPEN = "open"  # welcomed: what it has covered is known
    CLOSING = "closing"  # `end()` decided why; the writer drains and closes
    CLOSED = "closed"  # out of the registry, `ws.disconnected` logged


class FlushOutput(enum.Enum):
    """Queued by the reader after a protocol ping: the writer, the only task that sends, sends
    the pong the WebSocket library has already queued."""

    FLUSH_OUTPUT = "flush_output"


FLUSH_OUTPUT = FlushOutput.FLUSH_OUTPUT


@attrs.define(eq=False)
class Resume:
    """A resume from `last_seq`, asked at the handshake or mid-session, queued in order.

    Its replay may jump ahead of live notifications queued before it (those are newer than some
    of what it sends, and are then skipped as covered), but its `resumed` answer keeps its place
    among the replies, so replies still come in the order of the requests.
    """

    last_seq: int
    replay: Replay | None = None  # once it has run


#: What the writer's queue holds: a ready frame, a live notification, a resume, or a flush.
Outbound = str | Notification | Resume | FlushOutput


@attrs.define(eq=False, slots=True)
class Connection:
    connection_id: str
    user_id: str
    client_ip: str | None
    send_channel: trio.MemorySendChannel[Outbound]
    receive_channel: trio.MemoryReceiveChannel[Outbound]
    started: float  # trio clock
    connected_at_wall: float  # epoch seconds, for people reading the debug endpoint
    last_seen: float = 0.0  # trio clock
    messages_in: int = 0
    messages_out: int = 0
    state: ConnState = ConnState.OPENING
    coverage: Coverage = attrs.field(factory=Coverage)  # the seqs it has sent or was told of
    scopes: list[trio.CancelScope] = attrs.field(factory=list)  # the reader's and the timers'
    end_reason: str | None = None
    end_code: int | None = None
    end_text: str = ""  # the close frame's reason text
    ended_at: float = 0.0  # trio clock
    discard_queue: bool = False  # a slow consumer's queue is not worth draining
    pending_resumes: list[Resume] = attrs.field(factory=list)  # not yet answered
    # The token: its exp (epoch seconds, for frames), the same moment on the trio clock (the
    # 4001 deadline), whether `token_expiring` went out for it, and the timer task's sleep,
    # which a refresh cuts short so the new deadlines take effect at once.
    expires_at: float = 0.0
    token_deadline: float = math.inf
    warned: bool = False
    timer_sleep: trio.CancelScope | None = None

    @classmethod
    def open(
        cls,
        connection_id: str,
        user_id: str,
        client_ip: str | None,
        queue_size: int,
        wall_now: float,
    ) -> Connection:
        send, receive = trio.open_memory_channel[Outbound](queue_size)
        now = trio.current_time()
        return cls(
            connection_id=connection_id,
            user_id=user_id,
            client_ip=client_ip,
            send_channel=send,
            receive_channel=receive,
            started=now,
            connected_at_wall=wall_now,
            last_seen=now,
        )

    @property
    def live(self) -> bool:
        """Still taking outbound items: OPENING or OPEN."""
        return self.state is ConnState.OPENING or self.state is ConnState.OPEN

    @property
    def sent_top(self) -> int:
        """The newest seq this socket has covered (0 until the welcome)."""
        return self.coverage.top

    def welcomed(self, latest: int) -> None:
        """The welcome is going out with `last_seq = latest`: OPENING → OPEN."""
        if self.state is ConnState.OPENING:
            self.state = ConnState.OPEN
            self.coverage.welcome(latest)

    def logged_out(self) -> None:
        """Out of the registry, `ws.disconnected` written: the last step."""
        if self.state is not ConnState.CLOSING:
            raise RuntimeError(f"a {self.state.value} connection cannot log out; end() first")
        self.state = ConnState.CLOSED

    def offer(self, item: Outbound) -> bool:
        """Queue an outbound item without waiting; a full queue ends the socket as slow."""
        if not self.live:
            return False
        try:
            self.send_channel.send_nowait(item)
        except trio.WouldBlock:
            self.end(SLOW_CONSUMER)
            return False
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            return False
        return True

    def end(self, rule: CloseRule, code: int | None = None) -> None:
        """Record why the socket ends (first caller wins), stop the reader and the timers.

        The writer is not cancelled: it sends what is already queued (bounded by the close
        timeout; a slow consumer's queue is dropped), then the close frame, so replies decided
        before the close are not cut off mid-burst. `code` overrides the rule's (a client's own).
        """
        if not self.live:
            return
        self.state = ConnState.CLOSING
        self.end_reason = rule.reason
        self.end_code = rule.code if code is None else code
        self.end_text = rule.text
        self.ended_at = trio.current_time()
        self.discard_queue = rule is SLOW_CONSUMER
        for scope in self.scopes:
            scope.cancel()
        self.send_channel.close()  # the writer's loop ends once the queue is drained

    def move_expiry(self, expires_at: float, wall_now: float) -> None:
        """Live until `expires_at` (epoch seconds): at connect, and again on each refresh.

        The 4001 deadline and the `token_expiring` warning follow it; the timer task wakes now
        to take the new deadlines.
        """
        self.expires_at = expires_at
        self.token_deadline = trio.current_time() + (expires_at - wall_now)
        self.warned = False
        if self.timer_sleep is not None:
            self.timer_sleep.cancel()

    def task_scope(self) -> trio.CancelScope:
        """A cancel scope for the reader or the timers; `end()` cancels them."""
        scope = trio.CancelScope()
        if not self.live:
            scope.cancel()
        self.scopes.append(scope)
        return scope

    @property
    def queued(self) -> int:
        return self.send_channel.statistics().current_buffer_used

    def snapshot(self, now: float, ping_interval: float) -> dict[str, object]:
        """The debug endpoint's view of this connection (CONTRACT.md §3)."""
        idle = max(0.0, now - self.last_seen)
        return {
            "user_id": self.user_id,
            "connection_id": self.connection_id,
            "connected_at": rfc3339_from_epoch(self.connected_at_wall),
            "last_seen": rfc3339_from_epoch(
                self.connected_at_wall + (self.last_seen - self.started)
            ),
            "age_seconds": round(max(0.0, now - self.started), 3),
            "idle_seconds": round(idle, 3),
            "state": "idle" if idle > ping_interval else "active",
            "messages_in": self.messages_in,
            "messages_out": self.messages_out,
            "queued": self.queued,
        }
