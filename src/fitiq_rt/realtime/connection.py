"""One live WebSocket connection's state: its outbound queue, counters and why it ended.

The registry holds these; the session's tasks update them. `end()` is synchronous and idempotent:
the first rule wins, so the disconnect log always names what really ended the socket.
"""

from __future__ import annotations

import math

import attrs
import trio

from ..clock import rfc3339_from_epoch
from .closing import SLOW_CONSUMER, CloseRule


class _FlushOutput:
    def __repr__(self) -> str:
        return "FLUSH_OUTPUT"


#: Queued by the reader after a protocol ping: the writer, the only task that sends, sends the
#: pong the WebSocket library has already queued.
FLUSH_OUTPUT = _FlushOutput()


@attrs.frozen
class ReplayRequest:
    """Queued by the reader so the writer (the only task that sends) runs the replay in order."""

    last_seq: int


@attrs.define
class PendingResume:
    """A mid-session resume, queued in order with the other replies.

    Its replayed notifications may jump ahead of live ones already queued (those are newer than
    some of what the replay sends, and are then skipped as covered), but its `resumed` answer
    keeps its place among the replies, so replies still come in the order of the requests.
    """

    last_seq: int
    outcome: tuple[int, bool] | None = None  # (replayed, complete) once the replay has run


@attrs.define(eq=False, slots=True)
class Connection:
    connection_id: str
    user_id: str
    client_ip: str | None
    send_channel: trio.MemorySendChannel[object]
    receive_channel: trio.MemoryReceiveChannel[object]
    started: float  # trio clock
    connected_at_wall: float  # epoch seconds, for people reading the debug endpoint
    last_seen: float = 0.0  # trio clock
    messages_in: int = 0
    messages_out: int = 0
    # Seqs this connection has covered form the range (sent_base, sent_top].
    sent_base: int = 0
    sent_top: int = 0
    scopes: list[trio.CancelScope] = attrs.field(factory=list)  # the reader's and the timers'
    end_reason: str | None = None
    end_code: int | None = None
    end_text: str = ""  # the close frame's reason text
    ended_at: float = 0.0  # trio clock
    discard_queue: bool = False  # a slow consumer's queue is not worth draining
    pending_resumes: list[PendingResume] = attrs.field(factory=list)  # not yet answered
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
        send, receive = trio.open_memory_channel[object](queue_size)
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

    def offer(self, item: object) -> bool:
        """Queue an outbound item without waiting; a full queue ends the socket as slow."""
        if self.end_reason is not None:
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
        if self.end_reason is not None:
            return
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
        if self.end_reason is not None:
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
