"""Opening the analyzer's inputs: files, ``.gz`` files and stdin, and their timestamps.

Inputs are checked before any analysis (a missing file fails in a second, not after an hour of
reading the others), and a gzip stream is probed at open so a file that is not gzip fails here
rather than mid-report.
"""

from __future__ import annotations

import gzip
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import BinaryIO

STDIN = "-"
"""The path that means standard input."""


class LogReadError(Exception):
    """An input cannot be read at all (missing, no permission, a ``.gz`` that is not gzip)."""


def parse_timestamp(value: object) -> float | None:
    """RFC 3339 → epoch seconds (naive means UTC); None when it is not a timestamp."""
    if type(value) is not str:
        return None
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def check_inputs(paths: Iterable[str]) -> None:
    """Fail fast, before any analysis, on an input that cannot be opened."""
    for path in paths:
        if path != STDIN:
            open_input(path).close()


def open_input(path: str) -> BinaryIO:
    """Open one input for binary line reading; ``.gz`` is decompressed on the fly."""
    if path == STDIN:
        return sys.stdin.buffer
    try:
        if path.endswith(".gz"):
            stream = gzip.open(path, "rb")
            try:
                stream.peek(1)  # reads the header: a non-gzip file fails here, not mid-report
            except (OSError, EOFError):
                stream.close()
                raise
            return stream  # type: ignore[return-value]
        return open(path, "rb")  # closed by the caller
    except EOFError as exc:
        raise LogReadError(f"{path}: empty or truncated gzip file") from exc
    except OSError as exc:
        raise LogReadError(f"{path}: {exc.strerror or exc}") from exc
