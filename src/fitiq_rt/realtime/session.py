"""One WebSocket session: a nursery with a reader, a writer and a timer task.

The timer task is the pinger, the idle watchdog and the token-expiry timer at once.

The session runs over a small `Transport` so unit tests drive it with an in-memory fake under
`autojump_clock`. Whatever ends it (the client, a timeout, an error, shutdown), the `finally`
removes exactly this connection from the registry and logs exactly one `ws.disconnected`, with
the rule from `closing` that ended it; the writer then sends the close frame that rule names.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import attrs
import trio

from .. import events
from ..auth import AuthError, Identity
from ..logconfig import get_logger
from ..meals.store import StoreUnavailable
from ..notifications import Notification, NotificationHistory
from ..observability.metrics import Metrics
from .closing import (
    CLIENT_CLOSED,
    IDLE_TIMEOUT,
    INTERNAL_ERROR,
    POLICY_VIOLATION,
    SERVER_SHUTDOWN,
    SLOW_CONSUMER,
    TOKEN_EXPIRED,
    UNSUPPORTED_DATA,
)
from .connection import FLUSH_OUTPUT, Connection, FlushOutput, Resume
from .ordering import Coverage, LiveStep, Replay
from .protocol import (
    ClientAck,
    ClientPing,
    ClientRefresh,
    ClientResume,
    ErrorReply,
    error_frame,
    parse_client_message,
    ping_frame,
    pong_frame,
    refreshed_frame,
    resumed_frame,
    token_expiring_frame,
    welcome_frame,
)
from .registry import Registry
from .transport import (
    CONTROL_FRAME,
    PING_RECEIVED,
    PeerClosed,
    ProtocolFailure,
    SendTimeout,
    Transport,
)

log = get_logger("fitiq_rt.ws")


@attrs.frozen
class SessionConfig:
    ping_interval: float
    idle_timeout: float
    max_messages_per_second: float
    history_limit: int
    close_timeout: float  # also bounds sending what was queued when the close was decided
    token_warning: float = 60.0  # `token_expiring` this long before the socket's expiry


@attrs.frozen
class SessionDeps:
    config: SessionConfig
    registry: Registry
    history: NotificationHistory
    metrics: Metrics
    wall_clock: Callable[[], float]
    verify_token: Callable[[str], Identity]  # a refresh's token; raises AuthError


async def run_session(
    conn: Connection,
    transport: Transport,
    deps: SessionDeps,
    *,
    expires_at: float,
    resume_from: int | None = None,
) -> None:
    """Serve one registered socket until something ends it; never raises but for cancellation.

    The reader runs inline, the writer and the timer task beside it. Registry removal and the
    disconnect log happen as soon as the reader stops: from then on no notification is offered
    to this socket, while the writer finishes the queue and the closing handshake.
    """
    registry = deps.registry
    deps.metrics.ws_connects.inc()
    log.info(
        events.WS_CONNECTED,
        user_id=conn.user_id,
        connection_id=conn.connection_id,
        user_connections=registry.count_for_user(conn.user_id),
        total_connections=registry.total,
    )
    if resume_from is not None:
        # Queued with no await since the handshake registered the socket: a live notification
        # fanned out meanwhile queues behind the replay (the writer sends the welcome first).
        _queue_resume(conn, resume_from)
    config = deps.config
    conn.move_expiry(expires_at, deps.wall_clock())
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_writer, conn, transport, deps)
        nursery.start_soon(_timers, conn, config)
        try:
            # The reader and the timers each run in a scope `end()` cancels, and an error in
            # either ends the session, not the server (no wrapper coroutine: a frame less per
            # idle socket).
            with conn.task_scope():
                try:
                    await _reader(conn, transport, deps)
                except Exception as exc:
                    _record_error(conn, exc)
        finally:
            if conn.live:  # cancelled from outside: the server is going away
                conn.end(SERVER_SHUTDOWN)
            _log_out(conn, deps)


def _record_error(conn: Connection, exc: BaseException) -> None:
    """End the session with 1011; an error line only for a bug, not for a database outage (the
    welcome's or a replay's read during a cut), which the client rides out by resuming later."""
    if conn.live and isinstance(exc, StoreUnavailable):
        log.warning(
            events.WS_STORE_UNAVAILABLE,
            user_id=conn.user_id,
            connection_id=conn.connection_id,
            error=str(exc)[:300],
        )
    elif conn.live:
        log.error(
            events.WS_SESSION_ERROR,
            user_id=conn.user_id,
            connection_id=conn.connection_id,
            error=repr(exc)[:500],
            exc_info=exc,
        )
    conn.end(INTERNAL_ERROR)


def _log_out(conn: Connection, deps: SessionDeps) -> None:
    """Leave the registry (by connection id) and log the one `ws.disconnected`."""
    registry = deps.registry
    registry.remove(conn)
    conn.logged_out()
    conn.send_channel.close()
    duration = trio.current_time() - conn.started
    reason = conn.end_reason or "error"
    deps.metrics.ws_disconnects.labels(reason).inc()
    deps.metrics.ws_session_seconds.observe(duration)
    log.info(
        events.WS_DISCONNECTED,
        user_id=conn.user_id,
        connection_id=conn.connection_id,
        reason=reason,
        code=conn.end_code,
        duration_seconds=round(duration, 3),
        user_connections=registry.count_for_user(conn.user_id),
        total_connections=registry.total,
    )


async def _reader(conn: Connection, transport: Transport, deps: SessionDeps) -> None:
    """Receive every frame, always: pings are answered and the close is seen only by reading.

    Every frame (a ping or pong too) is activity and counts against the inbound rate; the
    transport enforces the size limit (1009) and RFC 6455 itself (1002, 1007).
    """
    config = deps.config
    rate = config.max_messages_per_second
    burst = 2.0 * rate
    tokens = burst
    refilled = trio.current_time()
    while True:
        try:
            message = await transport.receive()
        except PeerClosed as closed:
            conn.end(CLIENT_CLOSED, closed.code)
            return
        except ProtocolFailure as failure:
            conn.end(failure.rule, failure.code)
            return
        now = trio.current_time()
        conn.last_seen = now
        conn.messages_in += 1
        tokens = min(burst, tokens + (now - refilled) * rate)
        refilled = now
        if tokens < 1.0:
            conn.end(POLICY_VIOLATION)
            return
        tokens -= 1.0
        if message is CONTROL_FRAME:
            continue
        if message is PING_RECEIVED:
            conn.offer(FLUSH_OUTPUT)  # the writer sends the pong
            continue
        if not isinstance(message, str):
            conn.end(UNSUPPORTED_DATA)
            return
        _handle_message(conn, message, deps)


def _handle_message(conn: Connection, text: str, deps: SessionDeps) -> None:
    parsed = parse_client_message(text)
    if isinstance(parsed, ClientPing):
        log.debug(events.WS_PING_RECEIVED, user_id=conn.user_id, connection_id=conn.connection_id)
        if conn.offer(pong_frame()):
            log.debug(events.WS_PONG_SENT, user_id=conn.user_id, connection_id=conn.connection_id)
    elif isinstance(parsed, ClientResume):
        _queue_resume(conn, parsed.last_seq)
    elif isinstance(parsed, ClientRefresh):
        conn.offer(_refresh(conn, parsed.token, deps))
    elif isinstance(parsed, ErrorReply):
        conn.offer(error_frame(parsed))
    elif isinstance(parsed, ClientAck):
        pass  # acknowledgements need no answer; resume is driven by the client's last_seq
    # ClientPong: refreshing last_seen (done by the reader) is all it is for


def _queue_resume(conn: Connection, last_seq: int) -> None:
    resume = Resume(last_seq)
    conn.pending_resumes.append(resume)
    conn.offer(resume)


def _refresh(conn: Connection, token: str, deps: SessionDeps) -> str:
    """Move the socket's expiry to a fresh token's `exp`; the answer frame either way.

    A bad token, or one of another user, changes nothing: the socket keeps its old expiry.
    """
    try:
        identity = deps.verify_token(token)
    except AuthError as refused:
        return error_frame(ErrorReply("invalid_token", refused.message))
    if identity.user_id != conn.user_id:
        return error_frame(ErrorReply("token_user_mismatch", "the token belongs to another user"))
    conn.move_expiry(identity.expires_at, deps.wall_clock())
    log.info(
        events.WS_TOKEN_REFRESHED,
        user_id=conn.user_id,
        connection_id=conn.connection_id,
        expires_in_seconds=round(identity.expires_at - deps.wall_clock(), 3),
    )
    return refreshed_frame(identity.expires_at)


async def _writer(conn: Connection, transport: Transport, deps: SessionDeps) -> None:
    """The task that sends messages: the 101, the welcome, then frames in queue order; once the
    session has ended, what was already queued, then the close frame and the closing handshake.

    `end()` does not cancel it; a send that stalls is cut by the transport's write timeout.
    """
    try:
        await _write_frames(conn, transport, deps)
    except SendTimeout:
        conn.end(SLOW_CONSUMER)
    except PeerClosed as closed:  # the client vanished: what the reader would see too
        conn.end(CLIENT_CLOSED, closed.code)
    except Exception as exc:
        _record_error(conn, exc)
    finally:
        if conn.live:  # cancelled from outside: the server is going away
            conn.end(SERVER_SHUTDOWN)
        await transport.close(conn.end_code or SERVER_SHUTDOWN.code, conn.end_text)


async def _write_frames(conn: Connection, transport: Transport, deps: SessionDeps) -> None:
    config = deps.config
    drain_bound = config.close_timeout
    await transport.accept()
    latest = await deps.history.latest_seq(conn.user_id)  # read after registration: no gap
    conn.welcomed(latest)
    await transport.send(
        welcome_frame(
            conn.connection_id, conn.user_id, config.ping_interval, config.idle_timeout, latest
        )
    )
    conn.messages_out += 1
    async for item in conn.receive_channel:
        if not conn.live and (
            conn.discard_queue or trio.current_time() - conn.ended_at > drain_bound
        ):
            return
        match item:
            case str():
                await _send_frame(conn, transport, item)
            case Notification():
                for pending in conn.pending_resumes:  # replays jump ahead of queued live traffic
                    if pending.replay is None:
                        pending.replay = await _replay(conn, transport, deps, pending.last_seq)
                await _send_live(conn, transport, deps, item)
            case Resume():
                conn.pending_resumes.remove(item)
                if item.replay is None:
                    item.replay = await _replay(conn, transport, deps, item.last_seq)
                await _answer_resume(conn, transport, deps, item.last_seq, item.replay)
            case FlushOutput.FLUSH_OUTPUT:
                await transport.flush()


async def _send_frame(conn: Connection, transport: Transport, frame: str) -> None:
    await transport.send(frame)
    conn.messages_out += 1


async def _send_live(
    conn: Connection, transport: Transport, deps: SessionDeps, note: Notification
) -> None:
    """Send a live notification once: skip what this socket covered, fill a gap from history."""
    stored = None
    if conn.coverage.live(note.seq) is LiveStep.FILL_GAP:
        stored = await deps.history.since(conn.user_id, conn.sent_top, deps.config.history_limit)
    for out in conn.coverage.send_live(note, stored):
        await _send_frame(conn, transport, out.frame)


async def _replay(
    conn: Connection, transport: Transport, deps: SessionDeps, requested: int
) -> Replay:
    """Send every stored seq above `requested` that this socket has not covered, in order."""
    limit = deps.config.history_limit
    page = await deps.history.since(conn.user_id, requested, limit)
    if Coverage.restarts(requested, page):  # the client remembers another life of the store
        page = await deps.history.since(conn.user_id, 0, limit)
    replay = conn.coverage.replay(requested, page)
    for note in replay.notes:
        await _send_frame(conn, transport, note.frame)
    deps.metrics.notifications_replayed.inc(len(replay.notes))
    deps.metrics.note_caught_up(conn.user_id)
    return replay


async def _answer_resume(
    conn: Connection, transport: Transport, deps: SessionDeps, requested: int, replay: Replay
) -> None:
    await _send_frame(conn, transport, resumed_frame(len(replay.notes), replay.complete))
    log.info(
        events.WS_RESUMED,
        user_id=conn.user_id,
        connection_id=conn.connection_id,
        last_seq=requested,
        replayed=len(replay.notes),
        complete=replay.complete,
    )


async def _timers(conn: Connection, config: SessionConfig) -> None:
    """The pinger, the idle watchdog and the token timer in one task (one wake-up per event).

    Pings leave at exactly k * interval after the session started; a socket silent for
    idle_timeout is closed 4008 (`ws.stale` first); `token_expiring` goes out once,
    token_warning seconds before the expiry (at once if the token is shorter than that), and a
    socket never outlives its token (4001). A refresh moves the expiry and wakes this task.
    One task instead of three keeps an idle socket's memory and scheduling cost down.
    """
    interval, idle_timeout = config.ping_interval, config.idle_timeout
    with conn.task_scope():
        try:
            beat = 1
            while True:
                now = trio.current_time()
                if now >= conn.token_deadline:
                    conn.end(TOKEN_EXPIRED)
                    return
                warn_at = math.inf if conn.warned else conn.token_deadline - config.token_warning
                if now >= warn_at:
                    conn.warned = True
                    conn.offer(token_expiring_frame(conn.expires_at))
                    continue
                idle_deadline = conn.last_seen + idle_timeout
                if now >= idle_deadline:
                    log.info(
                        events.WS_STALE,
                        user_id=conn.user_id,
                        connection_id=conn.connection_id,
                        idle_seconds=round(now - conn.last_seen, 3),
                    )
                    conn.end(IDLE_TIMEOUT)
                    return
                next_ping = conn.started + beat * interval
                if now >= next_ping:
                    conn.offer(ping_frame())
                    beat += 1
                    continue
                # A bare scope around sleep_forever: sleep_until's own frame and scope would
                # stay allocated for as long as an idle socket waits.
                wake = min(next_ping, idle_deadline, conn.token_deadline, warn_at)
                with trio.CancelScope(deadline=wake) as conn.timer_sleep:
                    await trio.sleep_forever()
                conn.timer_sleep = None
        except Exception as exc:
            _record_error(conn, exc)
