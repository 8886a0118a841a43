"""Streaming analysis of fitiq_rt's JSON logs: the operator's one command for the seed's bug.

The production failure this project replaces logged "WebSocket connected" and, 57 s later,
"User not connected, skipping notification" with no disconnect in between. With the events of
CONTRACT.md §5 that shows up as a ``notification.queued`` for a user whose ``ws.connected`` has no
``ws.disconnected`` yet. :func:`analyze` reads logs once, line by line, and finds that and its
relatives (connections the server lost, disconnects with no connect, meal logs never finished),
each with the ``file:line`` references that prove it, plus the seed's "Success Metrics".

Memory is bounded by users and open connections, never by lines:

- open connections, per-user counters and in-flight meal logs are dicts keyed by live things;
- percentiles come from :class:`LogHistogram`, a fixed log-spaced bucket histogram (see there);
- connections over time come from :class:`ConcurrencySeries`, adaptive buckets with a fixed cap;
- at most ``max_anomalies_per_kind`` anomalies of each kind are kept (all are counted);
- "recently closed" connection ids, used to tell a duplicate ``ws.disconnected`` from one with
  no connect, are kept for the last ``recent_closed_limit`` closes only.
"""

from __future__ import annotations

import gzip
import heapq
import zlib
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from .. import events as ev
from .aggregates import ConcurrencySeries, LabelCounter, LogHistogram
from .kinds import (
    DISCONNECT_WITHOUT_CONNECT,
    DUPLICATE_DISCONNECT,
    QUEUED_WHILE_CONNECTED,
    SEVERITY_ERROR,
    SEVERITY_NOTE,
    SEVERITY_ORDER,
    SEVERITY_WARNING,
    UNCLOSED_CONNECTION,
    UNFINISHED_MEAL_LOG,
    WS_UPGRADE_FAILED,
)
from .model import (
    Anomaly,
    ConnectionStats,
    DeliveryStats,
    HttpStats,
    LineRef,
    MealLogStats,
    ParseStats,
    Report,
)
from .reading import STDIN, LogReadError, check_inputs, open_input, parse_timestamp
from .success import success_metrics

#: Seconds between a ``notification.queued`` and the socket's own ``ws.disconnected`` within
#: which the two are treated as one close in progress, not as the seed's bug: the session removes
#: the socket from the registry and logs ``ws.disconnected`` in one synchronous step, but lines
#: written by other tasks (and other nodes' clocks) can still land on either side of it.
DEFAULT_CLOSE_RACE_GRACE = 2.0

_MAX_EVENT_NAMES = 512  # distinct event names counted individually; the rest go to "(other)"


def _ident(obj: dict[str, Any], key: str) -> str | None:
    """An id field as a string (ints are tolerated); None when absent or not an id."""
    value = obj.get(key)
    if type(value) is str:
        return value
    if type(value) is int:
        return str(value)
    return None


def _number(value: object) -> float | None:
    if type(value) is float or type(value) is int:
        return float(value)
    return None


def _gap(later: float | None, earlier: float | None) -> str:
    if later is None or earlier is None:
        return ""
    return f" ({later - earlier:.1f} s earlier)"


class _Suspect:
    """A notification queued while the log shows the user with open sockets: confirmed as the
    seed's bug once one of those sockets is seen open more than the grace period later."""

    __slots__ = ("epoch", "meal_log_id", "pending", "ref", "seq", "user_id")

    def __init__(
        self, ref: LineRef, epoch: float | None, user_id: str, seq: object, meal: object, n: int
    ) -> None:
        self.ref = ref
        self.epoch = epoch
        self.user_id = user_id
        self.seq = seq
        self.meal_log_id = meal
        self.pending = n  # open sockets not yet resolved; 0 and unconfirmed → a close race


class _OpenConn:
    __slots__ = ("epoch", "ref", "suspects", "user_id")

    def __init__(self, user_id: str, ref: LineRef, epoch: float | None) -> None:
        self.user_id = user_id
        self.ref = ref
        self.epoch = epoch
        self.suspects: list[_Suspect] = []


class _PendingMeal:
    __slots__ = ("ref", "stopped", "user_id")

    def __init__(self, user_id: str | None, ref: LineRef) -> None:
        self.user_id = user_id
        self.ref = ref
        self.stopped: LineRef | None = None  # first server.stopped while it was unfinished


Handler = Callable[[dict[str, Any], int], None]


class Analyzer:
    """One pass over log lines; call :meth:`read` per input, then :meth:`finish` once."""

    def __init__(
        self,
        *,
        top_n: int = 10,
        max_anomalies_per_kind: int = 1000,
        close_race_grace: float = DEFAULT_CLOSE_RACE_GRACE,
        recent_closed_limit: int = 65536,
        series_points: int = 1024,
        watch_user: str | None = None,
        watch_limit: int = 200_000,
    ) -> None:
        self.top_n = top_n
        self.max_anomalies_per_kind = max_anomalies_per_kind
        self.grace = close_race_grace
        self.recent_closed_limit = recent_closed_limit
        self.watch_user = watch_user
        self.watch_limit = watch_limit
        self.watched: list[tuple[LineRef, dict[str, Any]]] = []
        self.watch_truncated = False

        self._sources: list[str] = []
        self._source = ""
        self._input_index = -1
        self._lines = self._events = self._malformed = self._foreign = self._blank = 0
        self._incomplete = 0
        self._damaged: list[str] = []
        self._event_names: dict[str, int] = {}
        self._first_ts: str | None = None
        self._last_ts: str | None = None

        self._covered = False  # a server.started was seen: connection starts are in the log
        self._open: dict[str, _OpenConn] = {}
        self._user_open: dict[str, set[str]] = {}
        self._recent_closed: dict[str, LineRef] = {}
        self._user_sessions: dict[str, int] = {}
        self._sessions = self._closed = self._unmatched = self._lost = self._stale = 0
        self._peak = 0
        self._peak_at: str | None = None
        self._peak_reported: int | None = None
        self._durations = LogHistogram(base=1e-3)
        self._reasons = LabelCounter()
        self._rejections = LabelCounter()
        self._series = ConcurrencySeries(series_points)

        self._delivered = self._queued = self._queued_connected = 0
        self._queued_no_socket = self._queued_race = 0
        self._replayed = self._resumes = self._incomplete_resumes = 0
        self._latency = LogHistogram(base=1e-3)

        self._meals: dict[str, _PendingMeal] = {}
        self._created = self._processed = self._failed = self._meal_unmatched = 0
        self._processing = LogHistogram(base=1e-3)

        self._http = self._ws_upgrades = self._ws_upgrade_failures = 0

        self._anomalies: list[Anomaly] = []
        self._anomaly_counts: dict[str, int] = {}
        self._anomalies_truncated = False

        self._handlers: dict[str, Handler] = {
            ev.SERVER_STARTED: self._on_server_started,
            ev.SERVER_STOPPED: self._on_server_stopped,
            ev.WS_CONNECTED: self._on_connected,
            ev.WS_DISCONNECTED: self._on_disconnected,
            ev.WS_REJECTED: self._on_rejected,
            ev.WS_STALE: self._on_stale,
            ev.WS_RESUMED: self._on_resumed,
            ev.NOTIFICATION_DELIVERED: self._on_delivered,
            ev.NOTIFICATION_QUEUED: self._on_queued,
            ev.MEAL_LOG_CREATED: self._on_meal_created,
            ev.MEAL_LOG_PROCESSED: self._on_meal_processed,
            ev.MEAL_LOG_FAILED: self._on_meal_failed,
            ev.HTTP_REQUEST: self._on_http,
        }
        # ws.ping_received / ws.pong_sent have no handler: after the parse they cost one dict
        # miss. Debug-level chatter is most of a busy log, so that is the cheap early filter.

    # ---- reading ---------------------------------------------------------------------------

    def read(self, path: str) -> None:
        """Consume one input (a file, a ``.gz`` file, or ``-`` for stdin) to its end."""
        name = "<stdin>" if path == STDIN else path
        stream = open_input(path)
        self._input_index += 1
        self._source = name
        self._sources.append(name)
        try:
            self._consume(stream)
        except (EOFError, zlib.error, gzip.BadGzipFile):
            self._damaged.append(name)  # everything before the damage was analysed
        except OSError as exc:
            raise LogReadError(f"{name}: {exc.strerror or exc}") from exc
        finally:
            if path != STDIN:
                stream.close()

    def read_lines(self, lines: Iterable[bytes], name: str) -> None:
        """Consume an in-memory input (tests, embedding)."""
        self._input_index += 1
        self._source = name
        self._sources.append(name)
        self._consume(lines)

    def _consume(self, lines: Iterable[bytes]) -> None:
        # The hot loop: locals only, one orjson parse, one dict lookup per event.
        loads = orjson.loads
        decode_error = orjson.JSONDecodeError
        handler_for = self._handlers.get
        names = self._event_names
        watch = self.watch_user
        lineno = malformed = foreign = blank = events = 0
        first_ts: str | None = self._first_ts
        last_ts: str | None = self._last_ts
        try:
            for line in lines:
                lineno += 1
                try:
                    obj = loads(line)
                except decode_error:
                    if line.strip():
                        malformed += 1
                    else:
                        blank += 1
                    continue
                if type(obj) is not dict:
                    foreign += 1
                    continue
                event = obj.get("event")
                ts = obj.get("timestamp")
                if type(event) is not str or type(ts) is not str:
                    foreign += 1
                    continue
                events += 1
                if first_ts is None:
                    first_ts = ts
                last_ts = ts
                count = names.get(event)
                if count is not None:
                    names[event] = count + 1
                else:
                    self._new_event_name(event)
                handler = handler_for(event)
                if handler is not None:
                    handler(obj, lineno)
                if watch is not None:
                    self._watch(obj, event, lineno)
        finally:
            self._lines += lineno
            self._malformed += malformed
            self._foreign += foreign
            self._blank += blank
            self._events += events
            self._first_ts = first_ts
            self._last_ts = last_ts

    def _new_event_name(self, event: str) -> None:
        names = self._event_names
        key = event if len(names) < _MAX_EVENT_NAMES else "(other)"
        names[key] = names.get(key, 0) + 1

    def _watch(self, obj: dict[str, Any], event: str, lineno: int) -> None:
        if obj.get("user_id") != self.watch_user and not event.startswith(ev.SERVER_PREFIX):
            return
        if len(self.watched) >= self.watch_limit:
            self.watch_truncated = True
            return
        self.watched.append((self._ref(lineno), obj))

    def _ref(self, lineno: int) -> LineRef:
        return LineRef(self._input_index, lineno, self._source)

    # ---- anomalies ---------------------------------------------------------------------------

    def _anomaly(
        self,
        kind: str,
        severity: str,
        message: str,
        refs: Iterable[LineRef],
        user_id: str | None = None,
        connection_id: str | None = None,
    ) -> None:
        count = self._anomaly_counts.get(kind, 0) + 1
        self._anomaly_counts[kind] = count
        if count > self.max_anomalies_per_kind and (
            self.watch_user is None or user_id != self.watch_user
        ):
            self._anomalies_truncated = True
            return
        self._anomalies.append(
            Anomaly(kind, severity, message, tuple(sorted(refs)), user_id, connection_id)
        )

    def _confirm(self, suspect: _Suspect, cid: str, conn: _OpenConn, proof: str) -> None:
        """Report a queued notification as the seed's bug: the socket was open, per the log."""
        if suspect.pending < 0:
            return  # already confirmed through another socket
        suspect.pending = -1
        self._queued_connected += 1
        self._anomaly(
            QUEUED_WHILE_CONNECTED,
            SEVERITY_ERROR,
            f"notification seq={suspect.seq} (meal_log {suspect.meal_log_id}) was queued as "
            f"'user not connected' at {suspect.ref}, but connection {cid} opened at "
            f"{conn.ref}{_gap(suspect.epoch, conn.epoch)} was still open: {proof}",
            (conn.ref, suspect.ref),
            suspect.user_id,
            cid,
        )

    def _lose_open_connections(self, ref: LineRef | None, why: str, severity: str) -> None:
        """Every open connection ends here without its ws.disconnected."""
        for cid, conn in self._open.items():
            for suspect in conn.suspects:
                self._confirm(suspect, cid, conn, f"no ws.disconnected before {why}")
            refs = (conn.ref,) if ref is None else (conn.ref, ref)
            self._anomaly(
                UNCLOSED_CONNECTION,
                severity,
                f"connection {cid} of user {conn.user_id} opened at {conn.ref} has no "
                f"ws.disconnected before {why}",
                refs,
                conn.user_id,
                cid,
            )
            if ref is not None:
                self._lost += 1
                self._remember_closed(cid, ref)
        self._open.clear()
        self._user_open.clear()

    def _remember_closed(self, cid: str, ref: LineRef) -> None:
        closed = self._recent_closed
        closed[cid] = ref
        if len(closed) > self.recent_closed_limit:
            del closed[next(iter(closed))]  # dicts keep insertion order: drop the oldest

    def _level_changed(self, ts: object, epoch: float | None) -> None:
        level = len(self._open)
        if level > self._peak:
            self._peak = level
            self._peak_at = ts if type(ts) is str else None
        if epoch is not None:
            self._series.record(epoch, level)

    # ---- handlers: server lifecycle ------------------------------------------------------------

    def _on_server_started(self, obj: dict[str, Any], lineno: int) -> None:
        ref = self._ref(lineno)
        if self._open:
            self._lose_open_connections(
                ref,
                f"the server restarted (server.started at {ref}, no server.stopped)",
                SEVERITY_ERROR,
            )
        ts = obj.get("timestamp")
        self._level_changed(ts, parse_timestamp(ts))  # also starts the chart at the start
        self._covered = True

    def _on_server_stopped(self, obj: dict[str, Any], lineno: int) -> None:
        ref = self._ref(lineno)
        self._lose_open_connections(ref, f"server.stopped at {ref}", SEVERITY_ERROR)
        ts = obj.get("timestamp")
        self._level_changed(ts, parse_timestamp(ts))
        for meal in self._meals.values():
            if meal.stopped is None:
                meal.stopped = ref

    # ---- handlers: connections -----------------------------------------------------------------

    def _on_connected(self, obj: dict[str, Any], lineno: int) -> None:
        cid = _ident(obj, "connection_id")
        if cid is None:
            self._incomplete += 1
            return
        uid = _ident(obj, "user_id") or "(unknown)"
        ref = self._ref(lineno)
        ts = obj.get("timestamp")
        self._sessions += 1
        self._user_sessions[uid] = self._user_sessions.get(uid, 0) + 1
        previous = self._open.get(cid)
        if previous is not None:
            self._reuse(cid, previous, ref)
        epoch = parse_timestamp(ts)
        self._open[cid] = _OpenConn(uid, ref, epoch)
        self._user_open.setdefault(uid, set()).add(cid)
        total = obj.get("total_connections")
        if type(total) is int and (self._peak_reported is None or total > self._peak_reported):
            self._peak_reported = total
        self._level_changed(ts, epoch)

    def _reuse(self, cid: str, previous: _OpenConn, ref: LineRef) -> None:
        """A second ws.connected with an open connection's id: the first one was lost."""
        for suspect in previous.suspects:
            self._confirm(
                suspect, cid, previous, f"no ws.disconnected before its id reappeared at {ref}"
            )
        self._lost += 1
        self._anomaly(
            UNCLOSED_CONNECTION,
            SEVERITY_ERROR,
            f"connection {cid} opened at {previous.ref} has no ws.disconnected before the same "
            f"connection_id connected again at {ref}",
            (previous.ref, ref),
            previous.user_id,
            cid,
        )
        del self._open[cid]
        self._drop_user_conn(previous.user_id, cid)

    def _drop_user_conn(self, uid: str, cid: str) -> None:
        cids = self._user_open.get(uid)
        if cids is not None:
            cids.discard(cid)
            if not cids:
                del self._user_open[uid]

    def _on_disconnected(self, obj: dict[str, Any], lineno: int) -> None:
        cid = _ident(obj, "connection_id")
        if cid is None:
            self._incomplete += 1
            return
        ref = self._ref(lineno)
        ts = obj.get("timestamp")
        conn = self._open.pop(cid, None)
        if conn is None:
            self._disconnect_without_open(obj, cid, ref)
            return
        epoch = parse_timestamp(ts)
        self._closed += 1
        self._reasons.add(obj.get("reason"))
        duration = _number(obj.get("duration_seconds"))
        if duration is None and epoch is not None and conn.epoch is not None:
            duration = epoch - conn.epoch
        if duration is not None:
            self._durations.add(duration)
        self._resolve_suspects(cid, conn, epoch, ref)
        self._drop_user_conn(conn.user_id, cid)
        self._remember_closed(cid, ref)
        self._level_changed(ts, epoch)

    def _resolve_suspects(
        self, cid: str, conn: _OpenConn, epoch: float | None, ref: LineRef
    ) -> None:
        for suspect in conn.suspects:
            if suspect.pending < 0:
                continue
            if epoch is None or suspect.epoch is None or epoch - suspect.epoch > self.grace:
                self._confirm(suspect, cid, conn, f"its ws.disconnected came only at {ref}")
                continue
            suspect.pending -= 1
            if suspect.pending == 0:
                self._queued_race += 1  # every socket was closing: the registry was right

    def _disconnect_without_open(self, obj: dict[str, Any], cid: str, ref: LineRef) -> None:
        uid = _ident(obj, "user_id")
        earlier = self._recent_closed.get(cid)
        if earlier is not None:
            self._anomaly(
                DUPLICATE_DISCONNECT,
                SEVERITY_ERROR,
                f"connection {cid} already ended at {earlier}; a second ws.disconnected at {ref}",
                (earlier, ref),
                uid,
                cid,
            )
            return
        self._unmatched += 1
        self._reasons.add(obj.get("reason"))
        duration = _number(obj.get("duration_seconds"))
        if duration is not None:
            self._durations.add(duration)
        if self._covered:
            self._anomaly(
                DISCONNECT_WITHOUT_CONNECT,
                SEVERITY_ERROR,
                f"ws.disconnected for connection {cid} at {ref} has no ws.connected, although "
                "the log covers every connection since server.started",
                (ref,),
                uid,
                cid,
            )
        else:
            self._anomaly(
                DISCONNECT_WITHOUT_CONNECT,
                SEVERITY_NOTE,
                f"ws.disconnected for connection {cid} at {ref} has no ws.connected; the log "
                "does not start with server.started, so it probably opened before the log",
                (ref,),
                uid,
                cid,
            )

    def _on_rejected(self, obj: dict[str, Any], lineno: int) -> None:
        self._rejections.add(obj.get("reason"))

    def _on_stale(self, obj: dict[str, Any], lineno: int) -> None:
        self._stale += 1

    def _on_resumed(self, obj: dict[str, Any], lineno: int) -> None:
        self._resumes += 1
        replayed = obj.get("replayed")
        if type(replayed) is int:
            self._replayed += replayed
        if obj.get("complete") is False:
            self._incomplete_resumes += 1

    # ---- handlers: notifications ---------------------------------------------------------------

    def _on_delivered(self, obj: dict[str, Any], lineno: int) -> None:
        self._delivered += 1
        latency = _number(obj.get("latency_ms"))
        if latency is not None:
            self._latency.add(latency)

    def _on_queued(self, obj: dict[str, Any], lineno: int) -> None:
        self._queued += 1
        uid = _ident(obj, "user_id")
        cids = self._user_open.get(uid) if uid is not None else None
        if not cids or uid is None:
            self._queued_no_socket += 1
            return
        ref = self._ref(lineno)
        epoch = parse_timestamp(obj.get("timestamp"))
        suspect = _Suspect(ref, epoch, uid, obj.get("seq"), obj.get("meal_log_id"), len(cids))
        for cid in list(cids):
            conn = self._open[cid]
            self._prune_suspects(cid, conn, epoch, ref)
            conn.suspects.append(suspect)

    def _prune_suspects(self, cid: str, conn: _OpenConn, epoch: float | None, ref: LineRef) -> None:
        """Confirm suspects this socket has outlived by more than the grace period.

        Keeps each socket's list to the notifications of the last ``grace`` seconds, so a socket
        that stays open through thousands of wrongly queued notifications costs no memory.
        """
        keep: list[_Suspect] = []
        for suspect in conn.suspects:
            if suspect.pending < 0:
                continue
            if epoch is None or suspect.epoch is None or epoch - suspect.epoch > self.grace:
                self._confirm(suspect, cid, conn, f"it was still open at {ref}")
            else:
                keep.append(suspect)
        conn.suspects = keep

    # ---- handlers: meal logs -------------------------------------------------------------------

    def _on_meal_created(self, obj: dict[str, Any], lineno: int) -> None:
        mid = _ident(obj, "meal_log_id")
        if mid is None:
            self._incomplete += 1
            return
        self._created += 1
        self._meals[mid] = _PendingMeal(_ident(obj, "user_id"), self._ref(lineno))

    def _on_meal_processed(self, obj: dict[str, Any], lineno: int) -> None:
        if self._meal_done(obj):
            self._processed += 1
            duration = _number(obj.get("duration_ms"))
            if duration is not None:
                self._processing.add(duration)

    def _on_meal_failed(self, obj: dict[str, Any], lineno: int) -> None:
        if self._meal_done(obj):
            self._failed += 1

    def _meal_done(self, obj: dict[str, Any]) -> bool:
        mid = _ident(obj, "meal_log_id")
        if mid is None:
            self._incomplete += 1
            return False
        if self._meals.pop(mid, None) is None:
            self._meal_unmatched += 1
        return True

    # ---- handlers: access log ------------------------------------------------------------------

    def _on_http(self, obj: dict[str, Any], lineno: int) -> None:
        self._http += 1
        path = obj.get("path")
        if type(path) is not str or not path.startswith("/ws"):
            return
        status = obj.get("status")
        if status == 101:
            self._ws_upgrades += 1
            return
        if (type(status) is int and 400 <= status < 500) or status == 503:
            return  # a refusal the contract defines (401, 429, 503, ...)
        self._ws_upgrade_failures += 1
        ref = self._ref(lineno)
        self._anomaly(
            WS_UPGRADE_FAILED,
            SEVERITY_WARNING,
            f"{obj.get('method', 'GET')} {path} answered {status!r} at {ref}: a WebSocket "
            "upgrade must answer 101 or refuse with 4xx/503 (the seed saw '000 0B')",
            (ref,),
            _ident(obj, "user_id"),
        )

    # ---- the end ---------------------------------------------------------------------------

    def finish(self) -> Report:
        """Close the books at the end of the log and build the :class:`Report`."""
        still_open = len(self._open)
        end_epoch = parse_timestamp(self._last_ts)
        if end_epoch is not None and self._series.origin is not None:
            self._series.record(end_epoch, still_open)  # the chart spans the whole log
        self._lose_open_connections(
            None, "the end of the log (no server.stopped)", SEVERITY_WARNING
        )
        for mid, meal in self._meals.items():
            self._unfinished(mid, meal)
        unfinished = len(self._meals)
        self._meals.clear()

        connections = self._connection_stats(still_open)
        delivery = DeliveryStats(
            delivered=self._delivered,
            queued=self._queued,
            queued_while_connected=self._queued_connected,
            queued_no_socket=self._queued_no_socket,
            queued_in_close_race=self._queued_race,
            replayed=self._replayed,
            resumes=self._resumes,
            incomplete_resumes=self._incomplete_resumes,
            latency_ms=self._latency.summary(),
        )
        anomalies = tuple(sorted(self._anomalies, key=_anomaly_order))
        return Report(
            sources=tuple(self._sources),
            first_timestamp=self._first_ts,
            last_timestamp=self._last_ts,
            parse=self._parse_stats(),
            connections=connections,
            delivery=delivery,
            meal_logs=MealLogStats(
                created=self._created,
                processed=self._processed,
                failed=self._failed,
                unfinished=unfinished,
                unmatched=self._meal_unmatched,
                processing_ms=self._processing.summary(),
            ),
            http=HttpStats(self._http, self._ws_upgrades, self._ws_upgrade_failures),
            metrics=success_metrics(connections, delivery, anomalies),
            anomalies=anomalies,
            anomaly_counts=dict(sorted(self._anomaly_counts.items())),
            anomalies_truncated=self._anomalies_truncated,
        )

    def _unfinished(self, mid: str, meal: _PendingMeal) -> None:
        refs = (meal.ref,) if meal.stopped is None else (meal.ref, meal.stopped)
        after = (
            f"; the server stopped at {meal.stopped} with it in flight (handed back?)"
            if meal.stopped is not None
            else ""
        )
        self._anomaly(
            UNFINISHED_MEAL_LOG,
            SEVERITY_WARNING,
            f"meal log {mid} created at {meal.ref} was neither processed nor failed before the "
            f"end of the log{after}",
            refs,
            meal.user_id,
        )

    def _parse_stats(self) -> ParseStats:
        names = dict(sorted(self._event_names.items(), key=lambda kv: (-kv[1], kv[0])))
        return ParseStats(
            lines=self._lines,
            events=self._events,
            malformed=self._malformed,
            foreign=self._foreign,
            blank=self._blank,
            incomplete=self._incomplete,
            damaged_inputs=tuple(self._damaged),
            events_by_name=names,
        )

    def _connection_stats(self, still_open: int) -> ConnectionStats:
        top = heapq.nsmallest(
            self.top_n, self._user_sessions.items(), key=lambda kv: (-kv[1], kv[0])
        )
        return ConnectionStats(
            sessions=self._sessions,
            closed=self._closed,
            unmatched_disconnects=self._unmatched,
            lost=self._lost,
            still_open=still_open,
            users=len(self._user_sessions),
            durations=self._durations.summary(),
            disconnect_reasons=self._reasons.sorted(),
            rejections=self._rejections.sorted(),
            stale=self._stale,
            peak_concurrent=self._peak,
            peak_concurrent_at=self._peak_at,
            peak_reported_by_server=self._peak_reported,
            top_users=tuple(top),
            series_bucket_seconds=self._series.width,
            series=self._series.points(),
        )


def _anomaly_order(anomaly: Anomaly) -> tuple[tuple[int, int], int, str]:
    first = anomaly.refs[0]  # every anomaly has at least one line reference
    return ((first.input_index, first.line), SEVERITY_ORDER.get(anomaly.severity, 9), anomaly.kind)


def analyze(paths: Iterable[str], **options: Any) -> Report:
    """Analyze inputs in order as one continuous log (e.g. rotated ``x.2.gz x.1.gz x``).

    Raises :class:`LogReadError` before reading anything if an input cannot be opened.
    ``options`` go to :class:`Analyzer`.
    """
    paths = list(paths)
    check_inputs(paths)
    analyzer = Analyzer(**options)
    for path in paths:
        analyzer.read(path)
    return analyzer.finish()
