"""Bounded aggregates: what lets one pass over a log of any size keep a fixed memory.

Percentiles come from :class:`LogHistogram` (fixed log-spaced buckets), connections over time
from :class:`ConcurrencySeries` (adaptive buckets with a cap), and reasons from
:class:`LabelCounter` (a capped counter, since log fields are untrusted input).
"""

from __future__ import annotations

import math

from .model import Percentiles, SeriesPoint

MAX_LABELS = 64  # distinct disconnect/rejection reasons counted individually


class LogHistogram:
    """Fixed log-spaced buckets (growth 2 %): the percentile structure.

    Chosen over a reservoir because it is deterministic (same log, same report), keeps the tail
    (a reservoir of 10k samples makes p99 noisy and loses the max), is exact for count, min, max
    and mean, and its memory depends only on the value range (≈1,400 buckets from ``base`` to
    10⁹·base), never on the number of values. The buckets are also what the HTML charts draw.
    """

    GROWTH = 1.02  # quantiles are bucket midpoints: ≤1 % relative error

    __slots__ = ("_counts", "_inv_log", "base", "count", "max", "min", "total", "zero")

    def __init__(self, base: float) -> None:
        self.base = base  # values ≤ base share the first bucket [0, base]
        self._inv_log = 1.0 / math.log(self.GROWTH)
        self._counts: dict[int, int] = {}
        self.zero = 0
        self.count = 0
        self.total = 0.0
        self.min = math.inf
        self.max = -math.inf

    def add(self, value: float) -> None:
        """Record one value; NaN and infinities are ignored (they are not durations)."""
        if not math.isfinite(value):
            return
        self.count += 1
        self.total += value
        if value < self.min:
            self.min = value
        if value > self.max:
            self.max = value
        if value <= self.base:
            self.zero += 1
            return
        index = int(math.log(value / self.base) * self._inv_log)
        self._counts[index] = self._counts.get(index, 0) + 1

    def _bounds(self, index: int) -> tuple[float, float]:
        return self.base * self.GROWTH**index, self.base * self.GROWTH ** (index + 1)

    def quantile(self, q: float) -> float | None:
        """The value at quantile ``q`` (0..1), clamped to the exact min and max."""
        if self.count == 0:
            return None
        rank = max(1, math.ceil(q * self.count))
        seen = self.zero
        if seen >= rank:
            return self._clamp(self.base / 2)
        for index in sorted(self._counts):
            seen += self._counts[index]
            if seen >= rank:
                low, high = self._bounds(index)
                return self._clamp(math.sqrt(low * high))
        return self.max

    def _clamp(self, value: float) -> float:
        return min(max(value, self.min), self.max)

    def buckets(self) -> tuple[tuple[float, float, int], ...]:
        """Non-empty buckets as (low, high, count), ascending."""
        out: list[tuple[float, float, int]] = []
        if self.zero:
            out.append((0.0, self.base, self.zero))
        for index in sorted(self._counts):
            low, high = self._bounds(index)
            out.append((low, high, self._counts[index]))
        return tuple(out)

    def summary(self) -> Percentiles:
        """Freeze into a :class:`Percentiles`."""
        if self.count == 0:
            return Percentiles(0, None, None, None, None, None, None, ())
        return Percentiles(
            count=self.count,
            min=self.min,
            p50=self.quantile(0.50),
            p90=self.quantile(0.90),
            p99=self.quantile(0.99),
            max=self.max,
            mean=self.total / self.count,
            buckets=self.buckets(),
        )


class ConcurrencySeries:
    """Concurrent connections over time in at most ``max_points`` buckets.

    Buckets start 1 s wide; when the log's span needs more than ``max_points`` of them,
    neighbours are merged pairwise and the width doubles. Each bucket keeps its peak (so a
    spike never disappears) and its closing level (so quiet stretches are drawn correctly).
    """

    def __init__(self, max_points: int = 1024) -> None:
        self.max_points = max_points
        self.width = 1.0
        self.origin: float | None = None
        self._peak: list[int | None] = []
        self._last: list[int | None] = []

    def record(self, t: float, level: int) -> None:
        """Note that the number of open connections became ``level`` at epoch second ``t``."""
        if self.origin is None:
            self.origin = math.floor(t)
        index = max(0, int((t - self.origin) // self.width))
        while index >= self.max_points:
            self._halve()
            index = max(0, int((t - self.origin) // self.width))
        if index >= len(self._peak):
            grow = index + 1 - len(self._peak)
            self._peak.extend([None] * grow)
            self._last.extend([None] * grow)
        old = self._peak[index]
        self._peak[index] = level if old is None or level > old else old
        self._last[index] = level

    def _halve(self) -> None:
        peaks, lasts = self._peak, self._last
        new_peak: list[int | None] = []
        new_last: list[int | None] = []
        for i in range(0, len(peaks), 2):
            pair_peak = [p for p in peaks[i : i + 2] if p is not None]
            pair_last = [v for v in lasts[i : i + 2] if v is not None]
            new_peak.append(max(pair_peak) if pair_peak else None)
            new_last.append(pair_last[-1] if pair_last else None)
        self._peak, self._last = new_peak, new_last
        self.width *= 2

    def points(self) -> tuple[SeriesPoint, ...]:
        """Buckets in order; a bucket with no event holds the previous bucket's closing level."""
        if self.origin is None:
            return ()
        out: list[SeriesPoint] = []
        level = 0
        for i, (peak, last) in enumerate(zip(self._peak, self._last, strict=True)):
            if peak is None or last is None:
                out.append(SeriesPoint(self.origin + i * self.width, level, level))
            else:
                out.append(SeriesPoint(self.origin + i * self.width, peak, last))
                level = last
        return tuple(out)


class LabelCounter:
    """A counter of short labels with a cap on distinct keys (log fields are untrusted)."""

    __slots__ = ("counts", "limit")

    def __init__(self, limit: int = MAX_LABELS) -> None:
        self.counts: dict[str, int] = {}
        self.limit = limit

    def add(self, label: object) -> None:
        key = label if type(label) is str else ("(missing)" if label is None else str(label))
        if key not in self.counts and len(self.counts) >= self.limit:
            key = "(other)"
        self.counts[key] = self.counts.get(key, 0) + 1

    def sorted(self) -> dict[str, int]:
        return dict(sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0])))
