"""Prometheus metrics (CONTRACT.md §3): one registry per app, so tests can run several apps.

Metrics are per process; with several nodes, scrape every node and sum (see README).
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_SESSION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 900, 1800, 3600, 4 * 3600, 24 * 3600)
_MS_BUCKETS = (0.5, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.ws_connections = Gauge(
            "fitiq_ws_connections", "Open WebSocket connections in this process", registry=r
        )
        self.ws_connects = Counter(
            "fitiq_ws_connects", "WebSocket connections accepted", registry=r
        )
        self.ws_disconnects = Counter(
            "fitiq_ws_disconnects", "WebSocket connections ended, by reason", ["reason"], registry=r
        )
        self.ws_rejects = Counter(
            "fitiq_ws_rejections", "WebSocket handshakes refused, by reason", ["reason"], registry=r
        )
        self.ws_session_seconds = Histogram(
            "fitiq_ws_session_duration_seconds",
            "How long WebSocket sessions lasted",
            buckets=_SESSION_BUCKETS,
            registry=r,
        )
        self.notifications = Counter(
            "fitiq_notifications",
            "Notifications published, by outcome (delivered | queued)",
            ["outcome"],
            registry=r,
        )
        self.notifications_replayed = Counter(
            "fitiq_notifications_replayed", "Notifications sent again on resume", registry=r
        )
        self.notification_latency_ms = Histogram(
            "fitiq_notification_latency_ms",
            "Meal log created -> notification handed to the user's sockets (ms)",
            buckets=_MS_BUCKETS,
            registry=r,
        )
        self.meal_logs = Counter(
            "fitiq_meal_logs", "Meal logs by final or initial status", ["status"], registry=r
        )
        self.processing_ms = Histogram(
            "fitiq_meal_log_processing_ms",
            "Processor time per meal log (ms)",
            buckets=_MS_BUCKETS,
            registry=r,
        )
        self.queued_undelivered = Gauge(
            "fitiq_notifications_queued_undelivered",
            "Notifications queued (no open socket) and not yet replayed to any of the user's "
            "sockets, as seen by this process",
            registry=r,
        )
        self._undelivered: dict[str, int] = {}  # user -> queued since the user's last replay
        self.queued_undelivered.set_function(lambda: sum(self._undelivered.values()))
        self.position_check_seconds = Histogram(
            "fitiq_position_check_seconds",
            "One position check pass: the newest seqs of every local user read and compared",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
            registry=r,
        )
        self.position_catch_ups = Counter(
            "fitiq_position_catch_ups",
            "Sockets the position check found behind the store and caught up",
            registry=r,
        )
        self.push = Counter(
            "fitiq_push",
            "APNs pushes per device, by outcome (sent | failed | removed; dropped: queue full)",
            ["outcome"],
            registry=r,
        )
        self.http_requests = Counter(
            "fitiq_http_requests", "HTTP requests by status class", ["status"], registry=r
        )

    def note_queued(self, user_id: str) -> None:
        self._undelivered[user_id] = self._undelivered.get(user_id, 0) + 1

    def note_caught_up(self, user_id: str) -> None:
        """A replay reached one of the user's sockets: nothing stored is undelivered now."""
        self._undelivered.pop(user_id, None)

    def set_connection_gauge(self, read: Callable[[], float]) -> None:
        self.ws_connections.set_function(read)

    def render(self) -> bytes:
        return generate_latest(self.registry)
