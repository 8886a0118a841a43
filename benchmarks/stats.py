"""Latency summaries: nearest-rank percentiles over every sample (no histogram buckets)."""

from __future__ import annotations

import math
from collections.abc import Iterable


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted, non-empty list."""
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summarize_ms(samples: Iterable[float]) -> dict[str, float | int | None]:
    """count, mean, p50, p90, p99, max of millisecond samples (None when there are none)."""
    ordered = sorted(samples)
    if not ordered:
        return {"count": 0, "mean": None, "p50": None, "p90": None, "p99": None, "max": None}
    return {
        "count": len(ordered),
        "mean": round(sum(ordered) / len(ordered), 3),
        "p50": round(percentile(ordered, 50), 3),
        "p90": round(percentile(ordered, 90), 3),
        "p99": round(percentile(ordered, 99), 3),
        "max": round(ordered[-1], 3),
    }


def share(total: int, index: int, parts: int) -> int:
    """How many of `total` items worker `index` of `parts` takes (the first ones take the rest)."""
    return total // parts + (1 if index < total % parts else 0)
