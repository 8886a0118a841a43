"""Progress on stderr for long runs: a rich bar on a terminal, else one line per second.

Runs shorter than a second print nothing, so smoke tests and CI logs stay quiet.
"""

from __future__ import annotations

import sys
import time
from typing import Any


class Progress:
    def __init__(
        self, label: str, total: int | None, unit: str, *, enabled: bool = True, rate: bool = True
    ) -> None:
        self.label = label
        self.rate = rate
        self.total = total
        self.unit = unit
        self.enabled = enabled
        self.started = time.monotonic()
        self._last_line = self.started
        self._bar: Any = None
        self._task: Any = None

    def update(self, done: int, extra: str = "") -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        elapsed = now - self.started
        if elapsed < 1.0:
            return
        if sys.stderr.isatty():
            self._rich(done, extra)
            return
        if now - self._last_line < 1.0:
            return
        self._last_line = now
        of = f"/{self.total}" if self.total else ""
        rate = f"  {done / elapsed:,.0f}/s" if self.rate else ""
        tail = f"  {extra}" if extra else ""
        print(
            f"[{self.label}] {elapsed:5.1f}s  {done}{of} {self.unit}{rate}{tail}",
            file=sys.stderr,
            flush=True,
        )

    def _rich(self, done: int, extra: str) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        if self._bar is None:
            self._bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total} " + self.unit),
                TextColumn("{task.fields[extra]}"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task(self.label, total=self.total, extra="")
        self._bar.update(self._task, completed=done, extra=extra)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
