"""The value types of a log report: frozen facts the analyzer produces and renderers read.

Nothing here reads logs or formats text, so a renderer (or a script embedding the analyzer) can
depend on these alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .reading import parse_timestamp


@dataclass(frozen=True, slots=True, order=True)
class LineRef:
    """Where an event is: ``source:line`` (1-based); orders by input position, then line."""

    input_index: int
    line: int
    source: str = field(compare=False)

    def __str__(self) -> str:
        return f"{self.source}:{self.line}"


@dataclass(frozen=True, slots=True)
class Anomaly:
    """Something the log proves went wrong, with the lines that prove it."""

    kind: str
    severity: str
    message: str
    refs: tuple[LineRef, ...]
    user_id: str | None = None
    connection_id: str | None = None


@dataclass(frozen=True, slots=True)
class Percentiles:
    """Summary of a distribution; the quantiles carry the histogram's ≤1 % relative error."""

    count: int
    min: float | None
    p50: float | None
    p90: float | None
    p99: float | None
    max: float | None
    mean: float | None
    buckets: tuple[tuple[float, float, int], ...]  # (low, high, count), non-empty buckets only


@dataclass(frozen=True, slots=True)
class SeriesPoint:
    """One bucket of the concurrency time series: its start (epoch s), peak and closing level."""

    start: float
    peak: int
    level: int


@dataclass(frozen=True, slots=True)
class ParseStats:
    """What the reader saw; bad lines are counted and skipped, never fatal."""

    lines: int
    events: int
    malformed: int  # not JSON, or truncated JSON
    foreign: int  # valid JSON but not an object with string "event" and "timestamp"
    blank: int
    incomplete: int  # known event missing the id it needs (e.g. ws.connected without connection_id)
    damaged_inputs: tuple[str, ...]  # truncated or corrupt gzip streams (read up to the damage)
    events_by_name: dict[str, int]


@dataclass(frozen=True, slots=True)
class ConnectionStats:
    """Sessions and their lifecycle, from ws.connected / ws.disconnected ordering."""

    sessions: int  # ws.connected events
    closed: int  # ws.disconnected matched to a ws.connected
    unmatched_disconnects: int  # ws.disconnected whose ws.connected is not in the log
    lost: int  # open at server.stopped / a restart, or connection_id reused while open
    still_open: int  # open when the log ends (no server.stopped after them)
    users: int
    durations: Percentiles  # seconds
    disconnect_reasons: dict[str, int]
    rejections: dict[str, int]
    stale: int
    peak_concurrent: int
    peak_concurrent_at: str | None
    peak_reported_by_server: int | None  # max total_connections field of ws.connected
    top_users: tuple[tuple[str, int], ...]
    series_bucket_seconds: float
    series: tuple[SeriesPoint, ...]


@dataclass(frozen=True, slots=True)
class DeliveryStats:
    """Notifications: delivered live, queued (and why), replayed on resume."""

    delivered: int
    queued: int
    queued_while_connected: int  # the seed's signature (confirmed, close races excluded)
    queued_no_socket: int  # the contract's normal path: stored for resume
    queued_in_close_race: int  # queued while the only open sockets were closing (grace window)
    replayed: int
    resumes: int
    incomplete_resumes: int
    latency_ms: Percentiles


@dataclass(frozen=True, slots=True)
class MealLogStats:
    """Meal logs created and how they ended."""

    created: int
    processed: int
    failed: int
    unfinished: int
    unmatched: int  # processed/failed whose meal_log.created is not in the log
    processing_ms: Percentiles


@dataclass(frozen=True, slots=True)
class HttpStats:
    """Access-log totals, and WebSocket upgrades (the seed saw "000 0B" instead of 101)."""

    requests: int
    ws_upgrades: int
    ws_upgrade_failures: int


@dataclass(frozen=True, slots=True)
class Metric:
    """One row of the seed's "Success Metrics" table, computed from the log."""

    key: str
    name: str
    value: str
    number: float | None
    target: str
    ok: bool | None  # None: the log has no data for it


@dataclass(frozen=True, slots=True)
class Report:
    """Everything one pass over the logs found."""

    sources: tuple[str, ...]
    first_timestamp: str | None
    last_timestamp: str | None
    parse: ParseStats
    connections: ConnectionStats
    delivery: DeliveryStats
    meal_logs: MealLogStats
    http: HttpStats
    metrics: tuple[Metric, ...]
    anomalies: tuple[Anomaly, ...]  # sorted by first line reference
    anomaly_counts: dict[str, int]  # every anomaly, including those over the per-kind cap
    anomalies_truncated: bool

    def anomalies_of(self, kind: str) -> list[Anomaly]:
        """The kept anomalies of one kind, in log order."""
        return [a for a in self.anomalies if a.kind == kind]

    def span_seconds(self) -> float | None:
        """Seconds from the first to the last event; None when either timestamp is unusable."""
        first = parse_timestamp(self.first_timestamp)
        last = parse_timestamp(self.last_timestamp)
        return None if first is None or last is None else last - first
