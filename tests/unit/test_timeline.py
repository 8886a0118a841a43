"""One user's timeline: their events (and the server's) in order, anomalies on the right lines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from rich.console import Console

from fitiq_rt.logreport import QUEUED_WHILE_CONNECTED, render_timeline, timeline, timeline_to_json
from fitiq_rt.logreport.cli import main as logs_main

T0 = datetime(2026, 11, 25, 19, 20, tzinfo=UTC)


def ev(event: str, t: float, **fields: Any) -> bytes:
    stamp = (T0 + timedelta(seconds=t)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return orjson.dumps({"event": event, **fields, "level": "info", "timestamp": stamp})


def conn(t: float, user: str, cid: str) -> bytes:
    return ev("ws.connected", t, user_id=user, connection_id=cid)


def disc(t: float, user: str, cid: str) -> bytes:
    return ev("ws.disconnected", t, user_id=user, connection_id=cid, reason="client_closed")


def started(t: float = 0.0) -> bytes:
    return ev("server.started", t, host="127.0.0.1", port=8080, version="0.1.0")


def write(path: Path, lines: list[bytes]) -> str:
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return str(path)


def seed_log() -> list[bytes]:
    """The seed's Test Case 2: connected, 57 s later queued, no disconnect in between."""
    return [
        started(0),  # 1
        conn(84, "4eb4c27c", "c1"),  # 2
        ev("ws.ping_received", 100, user_id="4eb4c27c", connection_id="c1"),  # 3
        ev("meal_log.created", 133, meal_log_id="9c65f612", user_id="4eb4c27c"),  # 4
        ev("meal_log.processed", 141, meal_log_id="9c65f612", user_id="4eb4c27c"),  # 5
        ev("notification.queued", 141, user_id="4eb4c27c", seq=1, meal_log_id="9c65f612"),  # 6
    ]


def mixed_log() -> list[bytes]:
    return [
        started(0),  # 1
        conn(1, "alice", "a1"),  # 2
        conn(2, "bob", "b1"),  # 3
        ev("ws.ping_received", 30, user_id="alice", connection_id="a1"),  # 4
        ev("notification.delivered", 31, user_id="bob", seq=1, connections=1, latency_ms=4),  # 5
        ev("notification.queued", 60, user_id="alice", seq=1, meal_log_id="m1"),  # 6
        disc(61, "bob", "b1"),  # 7
        ev("server.stopped", 62, connections_closed=1),  # 8
    ]


def test_timeline_has_the_users_lines_and_server_context(tmp_path: Path) -> None:
    path = write(tmp_path / "server.log", mixed_log())
    tl = timeline([path], "alice")
    assert [(e.ref.line, e.event) for e in tl.entries] == [
        (1, "server.started"),
        (2, "ws.connected"),
        (4, "ws.ping_received"),
        (6, "notification.queued"),
        (8, "server.stopped"),
    ]
    marks = {e.ref.line: e.marks for e in tl.entries}
    assert QUEUED_WHILE_CONNECTED in marks[2] and QUEUED_WHILE_CONNECTED in marks[6]
    assert "unclosed_connection" in marks[8]  # alice's a1 was open at server.stopped
    assert marks[4] == ()
    assert {a.kind for a in tl.anomalies} == {QUEUED_WHILE_CONNECTED, "unclosed_connection"}
    assert all(a.user_id == "alice" for a in tl.anomalies)


def test_a_clean_user_has_no_marks(tmp_path: Path) -> None:
    path = write(tmp_path / "server.log", mixed_log())
    tl = timeline([path], "bob")
    assert [e.ref.line for e in tl.entries] == [1, 3, 5, 7, 8]
    assert tl.anomalies == () and all(e.marks == () for e in tl.entries)


def test_timeline_json_and_rendering(tmp_path: Path) -> None:
    path = write(tmp_path / "server.log", seed_log())
    tl = timeline([path], "4eb4c27c")
    data = orjson.loads(orjson.dumps(timeline_to_json(tl)))
    assert set(data) == {"user_id", "truncated", "entries", "anomalies"}
    queued = next(e for e in data["entries"] if e["event"] == "notification.queued")
    assert queued["line"] == f"{path}:6" and queued["anomalies"] == [QUEUED_WHILE_CONNECTED]
    assert queued["fields"]["seq"] == 1
    console = Console(record=True, width=160)
    render_timeline(tl, console)
    text = console.export_text()
    assert "notification.queued" in text and f"⚠ {QUEUED_WHILE_CONNECTED}" in text


def test_cli_timeline_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path / "server.log", mixed_log())
    assert logs_main(["logs", "timeline", "--user", "bob", "--json", path]) == 0
    data = orjson.loads(capsys.readouterr().out)
    assert data["user_id"] == "bob" and len(data["entries"]) == 5
    assert logs_main(["logs", "timeline", "--user", "bob", str(tmp_path / "gone.log")]) == 2


def test_cli_timeline_says_when_a_user_has_no_events(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path / "server.log", mixed_log())
    assert logs_main(["logs", "timeline", "--user", "nobody", path]) == 1
    captured = capsys.readouterr()
    assert captured.err == f"fitiq-rt logs timeline: no events for user 'nobody' in {path}\n"
    assert logs_main(["logs", "timeline", "--user", "bob", path]) == 0  # a known user still prints
