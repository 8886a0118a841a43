"""compare: fitiq_rt and the three peers, one after another in one run, for churn, idle, e2e.

Each (scenario, target) pair gets a fresh server, so idle RSS is not measured on a heap that a
churn run already grew. Scenarios are the outer loop and targets the inner one: background load
on a shared machine then drifts across all targets alike instead of hitting one of them. Ratios
are fitiq_rt / peer for each headline number (medians when `--repeat` > 1).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from rich.table import Table

from ..argtypes import positive_int
from ..report import console, print_warnings
from ..runner import run_on_fresh_server
from ..targets import FITIQ, KNOWN, TargetUnavailable, resolve_server
from . import churn, e2e, idle
from .common import BUSY_MACHINE_PCT, RunOptions

NAME = "compare"
SCENARIOS = {"churn": churn, "idle": idle, "e2e": e2e}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--targets",
        default=",".join(KNOWN),
        help=f"comma-separated targets, fitiq first (default: {','.join(KNOWN)}); "
        "fitiq@REF adds fitiq_rt at commit REF (before/after in one run)",
    )
    parser.add_argument(
        "--repeat", type=positive_int, default=1, help="runs per pair; medians reported"
    )
    parser.add_argument(
        "--scenarios", default="churn,idle,e2e", help="which of churn,idle,e2e to run"
    )
    parser.add_argument(
        "--markdown", action="store_true", help="also print the table as Markdown (README)"
    )
    churn.add_arguments(parser, "churn-")
    idle.add_arguments(parser, "idle-")
    e2e.add_arguments(parser, "e2e-")


# (scenario, label, extract, lower is better)
Metric = tuple[str, str, Callable[[dict[str, Any]], float | None], bool]
METRICS: tuple[Metric, ...] = (
    ("churn", "churn sessions/s", lambda r: r["results"]["sessions_per_second"], False),
    ("idle", "idle KiB RSS/socket", lambda r: r["results"]["rss_kib_per_socket"], True),
    ("e2e", "e2e p99 ms", lambda r: r["results"]["latency_ms"]["p99"], True),
    ("e2e", "e2e p50 ms", lambda r: r["results"]["latency_ms"]["p50"], True),
    ("e2e", "e2e POST → 201 p99 ms", lambda r: r["results"]["post_response_ms"]["p99"], True),
    ("e2e", "e2e CPU ms/meal log", lambda r: r["results"].get("server_cpu_ms_per_post"), True),
)
SHORT = {
    "fitiq": "fitiq_rt",
    "starlette_uvicorn": "starlette",
    "node_ws": "node ws",
    "quart_trio_min": "quart-trio",
}


def _ratio(mine: float | None, theirs: float | None) -> float | None:
    return round(mine / theirs, 2) if mine and theirs else None


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 2) if present else None


def run(
    args: argparse.Namespace,
    opts: RunOptions,
    server_env: dict[str, str],
    fitiq_ref: str | None = None,
) -> dict[str, Any]:
    wanted = [t.strip() for t in args.targets.split(",") if t.strip()]
    scenarios = SCENARIOS
    chosen = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    params = {
        "churn": churn.params_from(args, "churn-"),
        "idle": idle.params_from(args, "idle-"),
        "e2e": e2e.params_from(args, "e2e-"),
    }
    specs, skipped = {}, {}
    for name in wanted:
        try:
            specs[name] = resolve_server(name, fitiq_ref)
        except TargetUnavailable as error:
            skipped[name] = str(error)
            print(f"compare: skipping {name}: {error}", file=sys.stderr)
    runs: list[dict[str, Any]] = []
    for scenario_name in chosen:
        module = scenarios[scenario_name]
        for repeat in range(args.repeat):
            for name, spec in specs.items():
                print(f"compare: {scenario_name} on {name} (run {repeat + 1})", file=sys.stderr)
                outcome, facts = run_on_fresh_server(
                    spec, module, params[scenario_name], opts, server_env
                )
                runs.append(
                    {
                        "scenario": scenario_name,
                        "target": name,
                        "repeat": repeat,
                        **outcome,
                        "target_facts": facts,
                    }
                )
    summary: dict[str, dict[str, float | None]] = {}
    for scenario_name, label, extract, _ in METRICS:
        if scenario_name not in chosen:
            continue
        summary[label] = {
            name: _median(
                [extract(r) for r in runs if r["scenario"] == scenario_name and r["target"] == name]
            )
            for name in specs
        }
    ratios = {
        label: {
            peer: _ratio(values.get(FITIQ), values.get(peer)) for peer in specs if peer != FITIQ
        }
        for label, values in summary.items()
    }
    checked = [r["leak_check"] for r in runs if r["leak_check"].get("checked")]
    warnings = [f"[{r['scenario']} {r['target']}] {w}" for r in runs for w in r["warnings"]]
    return {
        "parameters": {
            "targets": list(specs),
            "skipped": skipped,
            "repeat": args.repeat,
            "scenarios": chosen,
            **{name: asdict(p) for name, p in params.items() if name in chosen},  # type: ignore[call-overload]
        },
        "summary": summary,
        "ratios_fitiq_over_peer": ratios,
        "runs": runs,
        "leak_check": {
            "checked": bool(checked),
            "passed": all(c["passed"] for c in checked) if checked else None,
            "runs_checked": len(checked),
        },
        "warnings": warnings,
    }


def print_table(record: dict[str, Any]) -> None:
    targets = record["parameters"]["targets"]
    peers = [t for t in targets if t != FITIQ]
    table = Table(
        title="fitiq_rt beside the peers (↑ higher is better, ↓ lower; ratio = fitiq_rt / peer)",
        title_justify="left",
    )
    table.add_column("measure", no_wrap=True)
    for name in targets:
        table.add_column(SHORT.get(name, name), justify="right")
    for peer in peers if FITIQ in targets else []:
        table.add_column(f"÷ {SHORT.get(peer, peer)}", justify="right")
    lower = {label: low for _, label, _, low in METRICS}
    scenario_of = {label: scenario for scenario, label, _, _ in METRICS}
    for label, values in record["summary"].items():
        cells = [
            _fmt(values.get(t)) + _marks(record["runs"], scenario_of[label], t) for t in targets
        ]
        ratios = record["ratios_fitiq_over_peer"].get(label, {})
        cells += [_fmt(ratios.get(p), suffix="×") for p in peers] if FITIQ in targets else []
        table.add_row(f"{label} {'↓' if lower[label] else '↑'}", *cells)
    out = console()
    out.print(table)
    out.print(
        "† client CPU saturated in that run (the load generator was the limit); "
        f"‡ other processes used ≥ {BUSY_MACHINE_PCT:.0f}% of a CPU during it"
    )
    leak = record["leak_check"]
    out.print(
        f"leak check: {'passed' if leak['passed'] else 'FAILED'} on {leak['runs_checked']} runs"
    )
    print_warnings(out, record["warnings"])


def markdown_table(record: dict[str, Any]) -> str:
    """The summary as a Markdown table, for benchmarks/README.md."""
    targets = record["parameters"]["targets"]
    peers = [t for t in targets if t != FITIQ] if FITIQ in targets else []
    lower = {label: low for _, label, _, low in METRICS}
    scenario_of = {label: scenario for scenario, label, _, _ in METRICS}
    head = [
        "",
        *(SHORT.get(t, t) for t in targets),
        *(f"fitiq_rt ÷ {SHORT.get(p, p)}" for p in peers),
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, values in record["summary"].items():
        cells = [
            _fmt(values.get(t)) + _marks(record["runs"], scenario_of[label], t) for t in targets
        ]
        ratios = record["ratios_fitiq_over_peer"].get(label, {})
        cells += [_fmt(ratios.get(p), suffix="×") for p in peers]
        lines.append(f"| {label} {'↓' if lower[label] else '↑'} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _marks(runs: list[dict[str, Any]], scenario: str, target: str) -> str:
    mine = [r for r in runs if r["scenario"] == scenario and r["target"] == target]
    marks = ""
    if any(r.get("client", {}).get("saturated") for r in mine):
        marks += "†"
    sensitive = getattr(SCENARIOS[scenario], "NOISE_SENSITIVE", True)
    if sensitive and any(
        (r.get("cpu", {}).get("other_cpu_pct") or 0) >= BUSY_MACHINE_PCT for r in mine
    ):
        marks += "‡"
    return marks


def _fmt(value: float | None, suffix: str = "") -> str:
    if value is None:
        return "n/a"
    if value >= 100:
        return f"{value:,.0f}{suffix}"
    return f"{value:g}{suffix}"
