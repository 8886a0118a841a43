"""The JSON log pipeline: one object per line, RFC 3339 UTC stamps, no token even in a traceback."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime

import orjson
import pytest
import structlog

from fitiq_rt.logconfig import UtcStamp, configure_logging, get_logger


@pytest.fixture
def json_logs() -> Iterator[io.BytesIO]:
    """The server's JSON pipeline, writing into a buffer instead of stderr."""
    configure_logging("json", "info")
    written = io.BytesIO()
    structlog.configure(logger_factory=structlog.BytesLoggerFactory(file=written))
    yield written
    structlog.reset_defaults()


def lines(written: io.BytesIO) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in written.getvalue().splitlines()]


def test_a_line_has_event_level_and_a_utc_timestamp(
    json_logs: io.BytesIO,
) -> None:
    get_logger("t").warning("ws.stale", user_id="ana", idle_seconds=61)
    (line,) = lines(json_logs)
    assert line["event"] == "ws.stale"
    assert line["level"] == "warning"
    assert (line["user_id"], line["idle_seconds"]) == ("ana", 61)
    stamp = datetime.fromisoformat(str(line["timestamp"]))
    assert stamp.tzinfo is not None and stamp.utcoffset() == UTC.utcoffset(None)
    assert abs((datetime.now(UTC) - stamp).total_seconds()) < 5


def test_a_token_inside_an_exceptions_text_is_masked(
    json_logs: io.BytesIO,
) -> None:
    try:
        raise ValueError("upstream refused /ws/meal-logs?token=eyJhbGciOi.secret.part")
    except ValueError as error:
        get_logger("t").error("http.error", exc_info=error, authorization="Bearer abc")
    assert b"eyJhbGciOi" not in json_logs.getvalue()
    assert b"Bearer abc" not in json_logs.getvalue()
    (line,) = lines(json_logs)
    assert "token=[REDACTED]" in str(line["exception"])
    assert line["authorization"] == "[REDACTED]"
    assert line["level"] == "error"


def test_stamps_carry_microseconds_and_follow_the_second() -> None:
    moments = iter([1764633779.25, 1764633779.999999, 1764633780.0, 1764633780.000042])
    stamp = UtcStamp(clock=lambda: next(moments))
    assert [stamp() for _ in range(4)] == [
        "2025-12-02T00:02:59.250000Z",
        "2025-12-02T00:02:59.999999Z",
        "2025-12-02T00:03:00.000000Z",
        "2025-12-02T00:03:00.000042Z",
    ]


def test_the_console_format_masks_a_token_inside_an_exceptions_text_too() -> None:
    configure_logging("console", "info")
    written = io.StringIO()
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=written))
    try:
        try:
            raise ValueError("upstream refused /ws/meal-logs?token=eyJhbGciOi.secret.part")
        except ValueError as error:
            get_logger("t").error("http.error", exc_info=error)
    finally:
        structlog.reset_defaults()
    assert "http.error" in written.getvalue()
    assert "token=[REDACTED]" in written.getvalue()
    assert "eyJhbGciOi" not in written.getvalue()
