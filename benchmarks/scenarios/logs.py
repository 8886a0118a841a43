"""logs: lines per second of `fitiq-rt logs report`, delegated to `benchmarks.logs_bench`.

That module (another engineer's) generates a realistic server log and times the analyzer in a
fresh process; this scenario only gives it the common CLI, table and JSON record.
"""

from __future__ import annotations

import argparse
import importlib
from typing import Any

from ..argtypes import positive_int

NAME = "logs"


class LogsBenchMissing(Exception):
    """benchmarks.logs_bench is not there (yet) or does not offer `run(...)`."""


def add_arguments(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    p = f"--{prefix}"
    parser.add_argument(
        f"{p}lines", type=positive_int, default=1_000_000, help="log lines to generate"
    )
    parser.add_argument(f"{p}log-users", type=positive_int, default=2000, help="simulated users")
    parser.add_argument(f"{p}seed", type=int, default=7)
    parser.add_argument(
        f"{p}repeat", type=positive_int, default=3, help="analyses (median is reported)"
    )


def params_from(args: argparse.Namespace, prefix: str = "") -> dict[str, Any]:
    p = prefix.replace("-", "_")
    return {
        "lines": getattr(args, f"{p}lines"),
        "users": getattr(args, f"{p}log_users"),
        "seed": getattr(args, f"{p}seed"),
        "repeat": getattr(args, f"{p}repeat"),
    }


def run(params: dict[str, Any]) -> dict[str, Any]:
    try:
        module = importlib.import_module("benchmarks.logs_bench")
    except ModuleNotFoundError as error:
        if error.name != "benchmarks.logs_bench":
            raise
        raise LogsBenchMissing(
            "benchmarks/logs_bench.py does not exist yet: the logs scenario delegates to it "
            "(its owner adds it); nothing was measured"
        ) from None
    runner = getattr(module, "run", None)
    if runner is None:
        raise LogsBenchMissing("benchmarks.logs_bench has no run(lines, users, seed, repeat, keep)")
    try:
        result = runner(
            lines=params["lines"],
            users=params["users"],
            seed=params["seed"],
            repeat=params["repeat"],
            keep=None,
        )
    except TypeError as error:
        raise LogsBenchMissing(
            f"benchmarks.logs_bench.run has another signature: {error}"
        ) from None
    return {
        "results": result,
        "leak_check": {"checked": False, "passed": None, "reason": "no server in this scenario"},
        "warnings": (
            [f"the analyzer reported {result['error_anomalies']} errors on a healthy log"]
            if result.get("error_anomalies")
            else []
        ),
    }


def headline(record: dict[str, Any]) -> list[tuple[str, str]]:
    r = record["results"]
    rows = [("lines/s", f"{r.get('lines_per_second', 0):,}")]
    for key in ("lines", "seconds", "mib_per_second", "peak_rss_mib", "error_anomalies"):
        if key in r:
            value = r[key]
            rows.append(
                (key.replace("_", " "), f"{value:,}" if isinstance(value, int) else str(value))
            )
    return rows
