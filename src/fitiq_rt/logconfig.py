"""structlog setup: one JSON object per line on stderr, and no secret in any line.

Operators grep and aggregate these lines (and `fitiq-rt logs report` reads them), so every event
is a stable name plus fields; free text is never the only carrier of a fact.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Callable, MutableMapping
from typing import Any

import orjson
import structlog

_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
_TOKEN_IN_TEXT = re.compile(r"(token=)[^&\s\"']+", re.IGNORECASE)
_BEARER_IN_TEXT = re.compile(r"(bearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
_SECRET_KEYS = frozenset({"token", "authorization", "secret", "jwt", "password", "jwt_secret"})


def redact_text(text: str) -> str:
    """Mask a token in a query string or an Authorization value inside free text."""
    if "oken=" in text or "OKEN=" in text:
        text = _TOKEN_IN_TEXT.sub(r"\1[REDACTED]", text)
    if "earer" in text or "EARER" in text:
        text = _BEARER_IN_TEXT.sub(r"\1[REDACTED]", text)
    return text


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Last line of defence: whatever a call site passed, no token leaves the process."""
    for key, value in event_dict.items():
        if key.lower() in _SECRET_KEYS:
            event_dict[key] = "[REDACTED]"
        elif isinstance(value, str):
            event_dict[key] = redact_text(value)
    return event_dict


class UtcStamp:
    """RFC 3339 UTC with microseconds, its date and time formatted once per second.

    Why: structlog's TimeStamper builds a datetime and formats it whole for every line, about a
    fifth of a line's cost; several lines per meal log made it a measurable share of a POST.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._second = -1
        self._prefix = ""

    def __call__(self) -> str:
        second, micros = divmod(round(self._clock() * 1_000_000), 1_000_000)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._prefix}.{micros:06d}Z"


_LEVEL_OF_METHOD = {"warn": "warning", "exception": "error"}


class JsonLine:
    """The whole JSON pipeline as one processor: level, timestamp, traceback, redaction, bytes.

    One call instead of five per line. The traceback is formatted before the redaction, so a
    token inside an exception's text is masked too.
    """

    def __init__(self, stamp: Callable[[], str] | None = None) -> None:
        self._stamp = stamp or UtcStamp()

    def __call__(self, logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> bytes:
        event_dict["level"] = _LEVEL_OF_METHOD.get(method, method)
        event_dict["timestamp"] = self._stamp()
        if "exc_info" in event_dict:
            event_dict = structlog.processors.format_exc_info(logger, method, event_dict)
        return orjson.dumps(redact_secrets(logger, method, event_dict), default=str)


def configure_logging(log_format: str = "json", level: str = "info") -> None:
    """Configure structlog for the server process (cached loggers: this runs on hot paths)."""
    # No merge_contextvars: nothing binds context, and it costs per line.
    if log_format == "console":
        processors: list[Any] = [
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,  # before the redaction, as in JsonLine
            redact_secrets,
            structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()),
        ]
        factory: Any = structlog.PrintLoggerFactory(file=sys.stderr)
    else:
        processors = [JsonLine()]
        factory = structlog.BytesLoggerFactory(file=sys.stderr.buffer)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level.lower()]),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )
    # Libraries that use stdlib logging (hypercorn's error log) still reach stderr, as JSON.
    logging.basicConfig(level=logging.WARNING, handlers=[_StdlibToStructlog()], force=True)


class _StdlibToStructlog(logging.Handler):
    """Forward stdlib records (hypercorn, quart) into the structured stream."""

    def emit(self, record: logging.LogRecord) -> None:
        log = structlog.get_logger(record.name)
        message = redact_text(record.getMessage())
        fields: dict[str, Any] = {"logger": record.name, "message": message}
        if record.exc_info:
            fields["exc_info"] = record.exc_info
        level = record.levelname.lower()
        getattr(log, level if level in _LEVELS else "warning")("library.log", **fields)


def get_logger(name: str = "fitiq_rt") -> Any:
    """The project's logger; events are dotted names from CONTRACT.md §5."""
    return structlog.get_logger(name)
