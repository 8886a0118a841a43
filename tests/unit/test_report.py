"""The log analyzer: exact numbers on hand-written logs, each anomaly with its proving lines."""

from __future__ import annotations

import gzip
import importlib.util
import io
import math
import random
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from rich.console import Console

from fitiq_rt.logreport import (
    DISCONNECT_WITHOUT_CONNECT,
    DUPLICATE_DISCONNECT,
    QUEUED_WHILE_CONNECTED,
    UNCLOSED_CONNECTION,
    UNFINISHED_MEAL_LOG,
    WS_UPGRADE_FAILED,
    Analyzer,
    LogHistogram,
    LogReadError,
    Report,
    analyze,
    parse_timestamp,
    render_html,
    render_terminal,
    to_json,
)
from fitiq_rt.logreport.cli import main as logs_main


def _load_generator() -> Callable[..., None]:
    """benchmarks/ is not an installed package: load the generator from its file, so the test
    does not depend on the repository root being on sys.path."""
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "logs_bench.py"
    spec = importlib.util.spec_from_file_location("fitiq_logs_bench", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module.generate_log


generate_log = _load_generator()


T0 = datetime(2026, 11, 25, 19, 20, tzinfo=UTC)


def ev(event: str, t: float, **fields: Any) -> bytes:
    """One log line as the server writes it, ``t`` seconds after T0."""
    stamp = (T0 + timedelta(seconds=t)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    level = "debug" if event in {"ws.ping_received", "ws.pong_sent"} else "info"
    return orjson.dumps({"event": event, **fields, "level": level, "timestamp": stamp})


def conn(t: float, user: str, cid: str, **extra: Any) -> bytes:
    return ev("ws.connected", t, user_id=user, connection_id=cid, **extra)


def disc(t: float, user: str, cid: str, reason: str = "client_closed", dur: float = 1.0) -> bytes:
    return ev(
        "ws.disconnected", t, user_id=user, connection_id=cid, reason=reason, code=1000,
        duration_seconds=dur,
    )  # fmt: skip


def started(t: float = 0.0) -> bytes:
    return ev("server.started", t, host="127.0.0.1", port=8080, version="0.1.0")


def write(path: Path, lines: list[bytes]) -> str:
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return str(path)


def run(tmp_path: Path, lines: list[bytes], **options: Any) -> tuple[Report, str]:
    path = write(tmp_path / "server.log", lines)
    return analyze([path], **options), path


def refs(report: Report, kind: str) -> list[list[str]]:
    return [[str(r) for r in a.refs] for a in report.anomalies_of(kind)]


def small_log() -> list[bytes]:
    """21 lines, 3 sessions, 2 users; the numbers in test_small_log_exact_numbers."""
    return [
        started(0),  # 1
        conn(1, "u1", "c1", user_connections=1, total_connections=1),  # 2
        ev("ws.ping_received", 2, user_id="u1", connection_id="c1"),  # 3
        conn(3, "u2", "c2", user_connections=1, total_connections=2),  # 4
        ev("http.request", 3.5, method="POST", path="/api/v1/meal-logs/natural", status=201),  # 5
        ev("meal_log.created", 4, meal_log_id="m1", user_id="u1"),  # 6
        ev("meal_log.processed", 4.5, meal_log_id="m1", user_id="u1", duration_ms=500),  # 7
        ev("notification.delivered", 4.5, user_id="u1", seq=1, connections=1, latency_ms=520),
        disc(10, "u1", "c1", "client_closed", 9.0),  # 9
        conn(20, "u1", "c3", user_connections=1, total_connections=2),  # 10
        ev(
            "ws.resumed",
            20,
            user_id="u1",
            connection_id="c3",
            last_seq=0,
            replayed=2,
            complete=True,
        ),  # 11
        ev("meal_log.created", 21, meal_log_id="m2", user_id="u2"),  # 12
        ev("meal_log.failed", 22, meal_log_id="m2", user_id="u2", error="no_match"),  # 13
        ev("notification.delivered", 22, user_id="u2", seq=1, connections=1, latency_ms=100),
        disc(33, "u2", "c2", "idle_timeout", 30.0),  # 15
        ev("meal_log.created", 40, meal_log_id="m3", user_id="u2"),  # 16
        ev("meal_log.processed", 41, meal_log_id="m3", user_id="u2", duration_ms=1000),  # 17
        ev("notification.queued", 41, user_id="u2", seq=2, meal_log_id="m3"),  # 18
        ev("ws.rejected", 45, reason="too_many_connections"),  # 19
        disc(50, "u1", "c3", "server_shutdown", 30.0),  # 20
        ev("server.stopped", 50, connections_closed=1),  # 21
    ]


# --------------------------------------------------------------------------------------------
# Exact numbers
# --------------------------------------------------------------------------------------------


def test_small_log_exact_numbers(tmp_path: Path) -> None:
    report, _ = run(tmp_path, small_log())
    c, d, m = report.connections, report.delivery, report.meal_logs
    assert (report.parse.lines, report.parse.events) == (21, 21)
    assert (report.parse.malformed, report.parse.foreign, report.parse.blank) == (0, 0, 0)
    assert (c.sessions, c.closed, c.lost, c.still_open, c.unmatched_disconnects) == (3, 3, 0, 0, 0)
    assert c.users == 2
    assert c.disconnect_reasons == {"client_closed": 1, "idle_timeout": 1, "server_shutdown": 1}
    assert c.rejections == {"too_many_connections": 1}
    assert c.peak_concurrent == 2
    assert c.peak_concurrent_at == "2026-11-25T19:20:03.000000Z"  # line 4: c1 and c2 open
    assert c.peak_reported_by_server == 2
    assert c.top_users == (("u1", 2), ("u2", 1))
    assert (c.durations.count, c.durations.min, c.durations.max) == (3, 9.0, 30.0)
    assert c.durations.p50 == pytest.approx(30.0, rel=0.01)
    assert (d.delivered, d.queued, d.queued_no_socket, d.queued_while_connected) == (2, 1, 1, 0)
    assert (d.replayed, d.resumes, d.incomplete_resumes) == (2, 1, 0)
    assert (d.latency_ms.count, d.latency_ms.min, d.latency_ms.max) == (2, 100.0, 520.0)
    assert (m.created, m.processed, m.failed, m.unfinished) == (3, 2, 1, 0)
    assert report.http.requests == 1
    assert report.anomalies == () and report.anomaly_counts == {}
    metrics = {x.key: x for x in report.metrics}
    assert metrics["delivered_pct"].number == 100.0 and metrics["delivered_pct"].ok
    assert metrics["not_connected_pct"].number == 0.0 and metrics["not_connected_pct"].ok
    assert metrics["connection_persistence"].ok is True
    assert metrics["realtime_working"].value == "yes"


def test_clean_generated_log_has_no_errors(tmp_path: Path) -> None:
    path = tmp_path / "gen.log"
    generate_log(path, lines=20_000, users=200, seed=3)
    report = analyze([str(path)])
    assert abs(report.parse.lines - 20_000) <= 200
    assert report.parse.events == report.parse.lines
    assert [a for a in report.anomalies if a.severity == "error"] == []
    assert set(report.anomaly_counts) <= {UNFINISHED_MEAL_LOG}  # in flight at shutdown
    assert {x.key: x.ok for x in report.metrics} == {
        "delivered_pct": True,
        "not_connected_pct": True,
        "connection_persistence": True,
        "realtime_working": True,
    }
    assert report.connections.sessions == report.connections.closed > 0


def test_generator_is_deterministic(tmp_path: Path) -> None:
    generate_log(tmp_path / "a.log", 3000, 50, seed=11)
    generate_log(tmp_path / "b.log", 3000, 50, seed=11)
    assert (tmp_path / "a.log").read_bytes() == (tmp_path / "b.log").read_bytes()


# --------------------------------------------------------------------------------------------
# (b) the seed's signature: queued while the log shows a socket open
# --------------------------------------------------------------------------------------------


def seed_log() -> list[bytes]:
    """The seed's Test Case 2 in this project's events."""
    return [
        started(0),  # 1
        conn(84, "4eb4c27c", "c1"),  # 2   09:32:24 WebSocket connected
        ev("ws.ping_received", 100, user_id="4eb4c27c", connection_id="c1"),  # 3
        ev("meal_log.created", 133, meal_log_id="9c65f612", user_id="4eb4c27c"),  # 4
        ev("meal_log.processed", 141, meal_log_id="9c65f612", user_id="4eb4c27c"),  # 5
        ev("notification.queued", 141, user_id="4eb4c27c", seq=1, meal_log_id="9c65f612"),  # 6
        ev("ws.ping_received", 160, user_id="4eb4c27c", connection_id="c1"),  # 7
        disc(300, "4eb4c27c", "c1"),  # 8
        ev("server.stopped", 301, connections_closed=0),  # 9
    ]


def test_seed_signature_is_found_with_its_lines(tmp_path: Path) -> None:
    report, path = run(tmp_path, seed_log())
    assert refs(report, QUEUED_WHILE_CONNECTED) == [[f"{path}:2", f"{path}:6"]]
    (anomaly,) = report.anomalies
    assert (anomaly.severity, anomaly.user_id, anomaly.connection_id) == ("error", "4eb4c27c", "c1")
    assert "57.0 s earlier" in anomaly.message
    assert report.delivery.queued_while_connected == 1
    metrics = {x.key: x for x in report.metrics}
    assert metrics["delivered_pct"].number == 0.0 and metrics["delivered_pct"].ok is False
    assert metrics["not_connected_pct"].number == 100.0
    assert metrics["connection_persistence"].ok is False
    assert metrics["realtime_working"].value == "no"


def test_seed_signature_at_end_of_log_also_reports_the_open_socket(tmp_path: Path) -> None:
    report, path = run(tmp_path, seed_log()[:6])
    assert refs(report, QUEUED_WHILE_CONNECTED) == [[f"{path}:2", f"{path}:6"]]
    assert refs(report, UNCLOSED_CONNECTION) == [[f"{path}:2"]]
    assert report.anomalies_of(UNCLOSED_CONNECTION)[0].severity == "warning"


def test_queued_while_the_socket_is_closing_is_not_the_bug(tmp_path: Path) -> None:
    lines = [
        started(0),
        conn(1, "u", "c1"),
        ev("notification.queued", 50.0, user_id="u", seq=1),  # 3: registry already dropped it
        disc(50.3, "u", "c1"),  # 4: the session logs its disconnect after closing the socket
    ]
    report, _ = run(tmp_path, lines)
    assert report.anomalies == ()
    assert report.delivery.queued_in_close_race == 1
    assert report.delivery.queued_while_connected == 0


def test_queued_long_before_the_disconnect_is_the_bug(tmp_path: Path) -> None:
    lines = [started(0), conn(1, "u", "c1"), ev("notification.queued", 50, user_id="u", seq=1)]
    report, path = run(tmp_path, [*lines, disc(55, "u", "c1")])
    assert refs(report, QUEUED_WHILE_CONNECTED) == [[f"{path}:2", f"{path}:3"]]


def test_one_of_two_sockets_still_open_is_the_bug(tmp_path: Path) -> None:
    lines = [
        started(0),
        conn(1, "u", "c1"),  # 2
        conn(2, "u", "c2"),  # 3
        ev("notification.queued", 50, user_id="u", seq=1),  # 4
        disc(50.1, "u", "c1"),  # 5 closing: fine
        disc(80, "u", "c2"),  # 6 open 30 s longer: the registry lost c2
    ]
    report, path = run(tmp_path, lines)
    (anomaly,) = report.anomalies
    assert anomaly.kind == QUEUED_WHILE_CONNECTED and anomaly.connection_id == "c2"
    assert [str(r) for r in anomaly.refs] == [f"{path}:3", f"{path}:4"]


def test_queued_for_a_user_without_socket_is_normal(tmp_path: Path) -> None:
    lines = [started(0), conn(1, "other", "c1"), ev("notification.queued", 5, user_id="u", seq=1)]
    report, _ = run(tmp_path, [*lines, disc(9, "other", "c1")])
    assert report.anomalies == ()
    assert report.delivery.queued_no_socket == 1


# --------------------------------------------------------------------------------------------
# (a) connections without their disconnect
# --------------------------------------------------------------------------------------------


def test_open_at_server_stopped_is_lost(tmp_path: Path) -> None:
    lines = [
        started(0),  # 1
        conn(1, "u1", "c1"),  # 2
        conn(2, "u2", "c2"),  # 3
        disc(3, "u2", "c2", "server_shutdown"),  # 4
        ev("server.stopped", 4, connections_closed=1),  # 5
    ]
    report, path = run(tmp_path, lines)
    assert refs(report, UNCLOSED_CONNECTION) == [[f"{path}:2", f"{path}:5"]]
    (anomaly,) = report.anomalies
    assert (anomaly.severity, anomaly.user_id, anomaly.connection_id) == ("error", "u1", "c1")
    assert (report.connections.lost, report.connections.still_open) == (1, 0)
    assert {x.key: x.ok for x in report.metrics}["connection_persistence"] is False


def test_open_at_end_of_log_is_a_warning(tmp_path: Path) -> None:
    report, path = run(tmp_path, [started(0), conn(1, "u1", "c1"), conn(2, "u2", "c2")])
    assert refs(report, UNCLOSED_CONNECTION) == [[f"{path}:2"], [f"{path}:3"]]
    assert {a.severity for a in report.anomalies} == {"warning"}
    assert report.connections.still_open == 2


def test_restart_without_stop_loses_open_connections(tmp_path: Path) -> None:
    report, path = run(tmp_path, [started(0), conn(1, "u", "c1"), started(60)])
    assert refs(report, UNCLOSED_CONNECTION) == [[f"{path}:2", f"{path}:3"]]
    assert report.anomalies[0].severity == "error"


def test_reused_connection_id_loses_the_first(tmp_path: Path) -> None:
    lines = [started(0), conn(1, "u", "c1"), conn(5, "u", "c1"), disc(9, "u", "c1")]
    report, path = run(tmp_path, lines)
    assert refs(report, UNCLOSED_CONNECTION) == [[f"{path}:2", f"{path}:3"]]


# --------------------------------------------------------------------------------------------
# (c) disconnects without their connect
# --------------------------------------------------------------------------------------------


def test_disconnect_without_connect_when_log_covers_it(tmp_path: Path) -> None:
    report, path = run(tmp_path, [started(0), conn(1, "u", "c1"), disc(2, "u", "ghost")])
    assert refs(report, DISCONNECT_WITHOUT_CONNECT) == [[f"{path}:3"]]
    assert report.anomalies_of(DISCONNECT_WITHOUT_CONNECT)[0].severity == "error"


def test_disconnect_without_connect_in_a_partial_log_is_a_note(tmp_path: Path) -> None:
    report, path = run(tmp_path, [conn(1, "u", "c1"), disc(2, "u", "c0"), disc(3, "u", "c1")])
    (anomaly,) = report.anomalies
    assert (anomaly.kind, anomaly.severity) == (DISCONNECT_WITHOUT_CONNECT, "note")
    assert [str(r) for r in anomaly.refs] == [f"{path}:2"]
    assert report.connections.unmatched_disconnects == 1
    assert report.connections.disconnect_reasons == {"client_closed": 2}


def test_duplicate_disconnect(tmp_path: Path) -> None:
    lines = [started(0), conn(1, "u", "c1"), disc(2, "u", "c1"), disc(3, "u", "c1")]
    report, path = run(tmp_path, lines)
    assert refs(report, DUPLICATE_DISCONNECT) == [[f"{path}:3", f"{path}:4"]]
    assert report.connections.closed == 1


# --------------------------------------------------------------------------------------------
# (d) meal logs never finished, and the seed's "000 0B" upgrade
# --------------------------------------------------------------------------------------------


def test_unfinished_meal_log(tmp_path: Path) -> None:
    lines = [
        started(0),  # 1
        ev("meal_log.created", 1, meal_log_id="m1", user_id="u"),  # 2
        ev("meal_log.created", 2, meal_log_id="m2", user_id="u"),  # 3
        ev("meal_log.processed", 3, meal_log_id="m2", user_id="u", duration_ms=900),  # 4
    ]
    report, path = run(tmp_path, lines)
    assert refs(report, UNFINISHED_MEAL_LOG) == [[f"{path}:2"]]
    assert report.meal_logs.unfinished == 1


def test_unfinished_meal_log_at_shutdown_names_the_stop(tmp_path: Path) -> None:
    lines = [
        started(0),
        ev("meal_log.created", 1, meal_log_id="m1", user_id="u"),  # 2
        ev("server.stopped", 2, connections_closed=0),  # 3
    ]
    report, path = run(tmp_path, lines)
    assert refs(report, UNFINISHED_MEAL_LOG) == [[f"{path}:2", f"{path}:3"]]
    assert "handed back" in report.anomalies[0].message


def test_meal_log_handed_back_and_finished_after_restart_is_fine(tmp_path: Path) -> None:
    lines = [
        started(0),
        ev("meal_log.created", 1, meal_log_id="m1", user_id="u"),
        ev("server.stopped", 2, connections_closed=0),
        started(5),
        ev("meal_log.processed", 6, meal_log_id="m1", user_id="u"),
    ]
    report, _ = run(tmp_path, lines)
    assert report.anomalies == ()


def test_websocket_upgrade_without_101(tmp_path: Path) -> None:
    lines = [
        ev("http.request", 1, method="GET", path="/ws/meal-logs?token=[REDACTED]", status=0),
        ev("http.request", 2, method="GET", path="/ws/meal-logs?token=[REDACTED]", status=101),
        ev("http.request", 3, method="GET", path="/ws/meal-logs?token=[REDACTED]", status=401),
    ]
    report, path = run(tmp_path, lines)
    assert refs(report, WS_UPGRADE_FAILED) == [[f"{path}:1"]]
    assert (report.http.requests, report.http.ws_upgrades) == (3, 1)


# --------------------------------------------------------------------------------------------
# Bad input: counted, skipped, never fatal
# --------------------------------------------------------------------------------------------


def test_garbage_lines_are_counted_and_skipped(tmp_path: Path) -> None:
    lines = [
        b"Starting fitiq-rt...",  # 1 plain text
        started(0),  # 2
        b'{"event": "ws.connected", "timestamp": "2026-11-25T19:2',  # 3 truncated JSON
        b"",  # 4 blank
        conn(1, "u", "c1"),  # 5
        b"[1, 2, 3]",  # 6 JSON, not an object
        b'{"msg": "hello from another program"}',  # 7 JSON without event/timestamp
        b'{"event": 42, "timestamp": "2026-11-25T19:20:00Z"}',  # 8 event not a string
        b"\xff\xfe\x00garbage",  # 9 not UTF-8
        ev("ws.connected", 2, user_id="u"),  # 10 no connection_id
        ev("some.future_event", 3, whatever=[1, 2]),  # 11 unknown event: tolerated
        ev("notification.queued", 60, user_id="u", seq=1, extra={"x": 1}),  # 12
    ]
    report, path = run(tmp_path, lines)
    p = report.parse
    assert (p.lines, p.events, p.malformed, p.foreign, p.blank, p.incomplete) == (12, 5, 3, 3, 1, 1)
    assert p.events_by_name["some.future_event"] == 1
    assert refs(report, QUEUED_WHILE_CONNECTED) == [[f"{path}:5", f"{path}:12"]]
    assert report.connections.sessions == 1


def test_crlf_and_missing_final_newline(tmp_path: Path) -> None:
    path = tmp_path / "crlf.log"
    path.write_bytes(started(0) + b"\r\n" + conn(1, "u", "c1") + b"\r\n" + disc(2, "u", "c1"))
    report = analyze([str(path)])
    assert (report.parse.events, report.connections.closed, report.anomalies) == (3, 1, ())


# --------------------------------------------------------------------------------------------
# Inputs: several files, .gz, stdin, unreadable
# --------------------------------------------------------------------------------------------


def test_several_files_are_one_log_with_per_file_line_numbers(tmp_path: Path) -> None:
    a = write(tmp_path / "server.log.1", [started(0), conn(1, "u", "c1")])
    b = write(tmp_path / "server.log", [ev("notification.queued", 90, user_id="u", seq=3)])
    report = analyze([a, b])
    assert report.sources == (a, b)
    assert refs(report, QUEUED_WHILE_CONNECTED) == [[f"{a}:2", f"{b}:1"]]


def test_gzip_input_equals_plain_input(tmp_path: Path) -> None:
    plain = write(tmp_path / "server.log", small_log())
    packed = tmp_path / "server.log.gz"
    packed.write_bytes(gzip.compress(Path(plain).read_bytes()))
    a, b = analyze([plain]), analyze([str(packed)])
    assert to_json(a)["connections"] == to_json(b)["connections"]
    assert to_json(a)["delivery"] == to_json(b)["delivery"]
    assert b.parse.lines == 21 and b.parse.damaged_inputs == ()


def test_truncated_gzip_is_read_up_to_the_damage(tmp_path: Path) -> None:
    data = gzip.compress(b"".join(line + b"\n" for line in small_log() * 50))
    packed = tmp_path / "cut.log.gz"
    packed.write_bytes(data[: len(data) // 2])
    report = analyze([str(packed)])
    assert report.parse.damaged_inputs == (str(packed),)
    assert report.parse.events > 0


def test_stdin_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = b"".join(line + b"\n" for line in seed_log())
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(data)))
    report = analyze(["-"])
    assert report.sources == ("<stdin>",)
    assert refs(report, QUEUED_WHILE_CONNECTED) == [["<stdin>:2", "<stdin>:6"]]


def test_unreadable_inputs_fail_before_any_work(tmp_path: Path) -> None:
    good = write(tmp_path / "ok.log", small_log())
    with pytest.raises(LogReadError, match=r"missing\.log"):
        analyze([good, str(tmp_path / "missing.log")])
    fake = tmp_path / "fake.gz"
    fake.write_bytes(b"not gzip at all\n")
    with pytest.raises(LogReadError, match=r"fake\.gz"):
        analyze([str(fake)])


def test_cli_exit_code_2_with_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert logs_main(["logs", "report", str(tmp_path / "nope.log")]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and "nope.log" in err


# --------------------------------------------------------------------------------------------
# Output shapes
# --------------------------------------------------------------------------------------------

TOP_KEYS = {
    "schema", "sources", "span", "parse", "connections", "delivery", "meal_logs", "http",
    "metrics", "anomalies",
}  # fmt: skip
DIST_KEYS = {"count", "min", "p50", "p90", "p99", "max", "mean", "histogram"}


def test_json_shape(tmp_path: Path) -> None:
    report, path = run(tmp_path, seed_log())
    data = orjson.loads(orjson.dumps(to_json(report)))  # round-trips as JSON
    assert set(data) == TOP_KEYS and data["schema"] == "fitiq_rt.logs.report/1"
    assert set(data["connections"]["duration_seconds"]) == DIST_KEYS
    assert set(data["delivery"]["latency_ms"]) == DIST_KEYS
    assert data["connections"]["series"]["bucket_seconds"] == 1.0
    assert all(len(p) == 3 for p in data["connections"]["series"]["points"])
    assert [m["key"] for m in data["metrics"]] == [
        "delivered_pct",
        "not_connected_pct",
        "connection_persistence",
        "realtime_working",
    ]
    assert set(data["metrics"][0]) == {"key", "name", "value", "number", "target", "ok"}
    assert data["anomalies"]["counts"] == {QUEUED_WHILE_CONNECTED: 1}
    (item,) = data["anomalies"]["items"]
    assert set(item) == {"kind", "severity", "user_id", "connection_id", "message", "lines"}
    assert item["lines"] == [f"{path}:2", f"{path}:6"]
    assert data["delivery"]["queued_while_connected"] == 1


def test_cli_report_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path / "server.log", small_log())
    html_path = tmp_path / "out.html"
    assert logs_main(["logs", "report", "--json", "--html", str(html_path), path]) == 0
    data = orjson.loads(capsys.readouterr().out)
    assert set(data) == TOP_KEYS
    assert data["connections"]["sessions"] == 3
    assert html_path.read_text().count("<svg") == 3


def test_terminal_rendering(tmp_path: Path) -> None:
    report, path = run(tmp_path, seed_log())
    console = Console(record=True, width=140)
    render_terminal(report, console)
    text = console.export_text()
    assert "Success Metrics" in text and ">95%" in text and "FAIL" in text
    assert QUEUED_WHILE_CONNECTED in text and f"{path}:6" in text


def test_html_is_self_contained_and_escapes_log_values(tmp_path: Path) -> None:
    evil = "<script>alert(1)</script>"
    lines = [started(0), conn(1, evil, "c1"), ev("notification.queued", 70, user_id=evil, seq=1)]
    report, _ = run(tmp_path, lines)
    page = render_html(report)
    assert evil not in page and "&lt;script&gt;" in page
    assert page.count("<svg") == 3
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "url(http" not in page and "@import" not in page


# --------------------------------------------------------------------------------------------
# Bounded structures
# --------------------------------------------------------------------------------------------


def test_histogram_quantiles_within_one_percent() -> None:
    rng = random.Random(5)
    values = [rng.lognormvariate(3, 1.5) for _ in range(20_000)] + [0.0] * 50
    hist = LogHistogram(base=1e-3)
    for v in values:
        hist.add(v)
    values.sort()
    for q in (0.5, 0.9, 0.99):
        exact = values[math.ceil(q * len(values)) - 1]
        assert hist.quantile(q) == pytest.approx(exact, rel=0.011)
    assert (hist.min, hist.max, hist.count) == (0.0, values[-1], len(values))
    assert len(hist.buckets()) < 1500


def test_concurrency_series_is_bounded_and_keeps_the_peak() -> None:
    analyzer = Analyzer(series_points=256)
    lines = [started(0)]
    for i in range(300):  # connections spread over ~3.5 days
        lines.append(conn(i * 1000.0, "u", f"c{i}"))
        if i != 150:
            lines.append(disc(i * 1000.0 + 10, "u", f"c{i}"))
    lines.append(conn(150_500, "v", "spike"))  # c150 still open: a peak of 2
    analyzer.read_lines(lines, "mem")
    report = analyzer.finish()
    series = report.connections.series
    assert len(series) <= 256
    assert report.connections.series_bucket_seconds >= 1024
    assert max(p.peak for p in series) == report.connections.peak_concurrent == 2


def test_anomalies_are_capped_but_counted() -> None:
    analyzer = Analyzer(max_anomalies_per_kind=10)
    lines = [started(0), conn(1, "u", "c1")]
    lines += [ev("notification.queued", 10 + i, user_id="u", seq=i) for i in range(2000)]
    analyzer.read_lines(lines, "mem")
    open_conn = analyzer._open["c1"]
    assert len(open_conn.suspects) <= 3  # only the last grace window is pending
    report = analyzer.finish()
    assert report.anomaly_counts[QUEUED_WHILE_CONNECTED] == 2000
    assert len(report.anomalies_of(QUEUED_WHILE_CONNECTED)) == 10
    assert report.anomalies_truncated
    assert report.delivery.queued_while_connected == 2000


def test_recently_closed_ids_are_bounded() -> None:
    analyzer = Analyzer(recent_closed_limit=100)
    lines = [started(0)]
    for i in range(1000):
        lines += [conn(i, "u", f"c{i}"), disc(i + 0.5, "u", f"c{i}")]
    analyzer.read_lines(lines, "mem")
    assert len(analyzer._recent_closed) == 100
    assert analyzer.finish().connections.closed == 1000


def test_parse_timestamp_forms() -> None:
    assert parse_timestamp("2026-11-25T19:20:01.123456Z") == pytest.approx(
        datetime(2026, 11, 25, 19, 20, 1, 123456, tzinfo=UTC).timestamp()
    )
    assert parse_timestamp("2026-11-25T19:20:01") == parse_timestamp("2026-11-25T19:20:01Z")
    assert parse_timestamp("yesterday") is None and parse_timestamp(5) is None
