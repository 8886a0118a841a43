"""The seed's "Success Metrics", computed from a report's counts with checkable definitions.

Kept apart from the analyzer: the definitions are policy (what counts as delivered, what passes)
and change for different reasons than the reading of lines does.
"""

from __future__ import annotations

from collections.abc import Iterable

from .formatting import format_seconds
from .kinds import (
    DISCONNECT_WITHOUT_CONNECT,
    DUPLICATE_DISCONNECT,
    SEVERITY_ERROR,
    UNCLOSED_CONNECTION,
)
from .model import Anomaly, ConnectionStats, DeliveryStats, Metric


def success_metrics(
    connections: ConnectionStats, delivery: DeliveryStats, anomalies: Iterable[Anomaly]
) -> tuple[Metric, ...]:
    """The seed's table, with definitions an operator can check by hand.

    - delivered %: delivered / (delivered + queued while the log showed a socket open). A
      notification queued for a user with no open socket is the contract's normal path
      (stored, replayed on resume), so it is in neither numerator nor denominator.
    - "User not connected" %: queued while a socket was open / all notifications
      (delivered + queued).
    - persistence: median session duration; passes when every session that ended, ended with
      its own ws.disconnected (none lost at server.stopped or a restart, none reused, no
      disconnect without connect or twice) and no socket was forgotten while open.
    - real-time working: yes when the three above pass and at least one notification was
      delivered live.
    """
    kinds = {a.kind for a in anomalies if a.severity == SEVERITY_ERROR}
    delivered, bad = delivery.delivered, delivery.queued_while_connected
    delivered_pct = _pct(delivered, delivered + bad)
    not_connected_pct = _pct(bad, delivery.delivered + delivery.queued)
    ended = connections.closed + connections.lost
    lifecycle_errors = kinds & {
        UNCLOSED_CONNECTION,
        DISCONNECT_WITHOUT_CONNECT,
        DUPLICATE_DISCONNECT,
    }
    persistence_ok: bool | None = not lifecycle_errors and bad == 0
    if connections.sessions == 0 and connections.unmatched_disconnects == 0:
        persistence_ok = None
    checks = [
        delivered_pct is None or delivered_pct > 95.0,
        not_connected_pct is None or not_connected_pct < 5.0,
        persistence_ok is not False,
    ]
    working: bool | None = (
        None if delivery.delivered + delivery.queued == 0 else (all(checks) and delivered > 0)
    )
    open_note = (
        f"; {connections.still_open} still open at end of log" if connections.still_open else ""
    )
    if bad:
        open_note += f"; {bad} notifications found an open socket forgotten"
    return (
        Metric(
            "delivered_pct",
            "WebSocket notifications delivered",
            _pct_text(delivered_pct, f"{delivered}/{delivered + bad} with a socket open"),
            delivered_pct,
            ">95%",
            None if delivered_pct is None else delivered_pct > 95.0,
        ),
        Metric(
            "not_connected_pct",
            '"User not connected" frequency',
            _pct_text(
                not_connected_pct, f"{bad}/{delivery.delivered + delivery.queued} notifications"
            ),
            not_connected_pct,
            "<5%",
            None if not_connected_pct is None else not_connected_pct < 5.0,
        ),
        Metric(
            "connection_persistence",
            "Connection persistence",
            f"median {format_seconds(connections.durations.p50)}; "
            f"{connections.closed}/{ended} ended with ws.disconnected{open_note}",
            connections.durations.p50,
            "until explicit disconnect",
            persistence_ok,
        ),
        Metric(
            "realtime_working",
            "Real-time updates working",
            "no data" if working is None else ("yes" if working else "no"),
            None if working is None else float(working),
            "yes",
            working,
        ),
    )


def _pct(part: int, whole: int) -> float | None:
    return None if whole == 0 else 100.0 * part / whole


def _pct_text(value: float | None, detail: str) -> str:
    return "no data" if value is None else f"{value:.1f}% ({detail})"
