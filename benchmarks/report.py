"""The record of a run: machine facts, versions, git commit; the JSON file and the rich table."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import procfs
from .targets import REPO_ROOT

RESULTS_DIR = Path(__file__).resolve().parent / "results"
HARNESS_PACKAGES = (
    "fitiq_rt",
    "trio",
    "hypercorn",
    "quart",
    "quart-trio",
    "wsproto",
    "h11",
    "trio-websocket",
    "httpx",
    "orjson",
)


def versions() -> dict[str, str]:
    found = {"python": sys.version.split()[0]}
    for name in HARNESS_PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def git_state() -> dict[str, Any]:
    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=20
        )
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "HEAD")
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "src")
    return {"commit": commit or None, "src_dirty": bool(dirty)}


def new_record(scenario: str, argv: list[str]) -> dict[str, Any]:
    return {
        "scenario": scenario,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "argv": argv,
        "machine": procfs.machine_facts(),
        "versions": versions(),
        "git": git_state(),
    }


def results_path(scenario: str, json_out: Path | None) -> Path:
    if json_out is not None:
        return json_out
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return RESULTS_DIR / f"{scenario}-{stamp}.json"


def write(record: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(record, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))


def console() -> Console:
    """stdout; wide enough for the compare table even when not a terminal."""
    probe = Console()
    return probe if probe.is_terminal else Console(width=140)


def print_warnings(out: Console, warnings: list[str]) -> None:
    for warning in warnings:
        out.print(f"[yellow]warning:[/] {escape(warning)}")


def print_single(title: str, rows: list[tuple[str, str]], record: dict[str, Any]) -> None:
    table = Table(title=title, title_justify="left")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for name, value in rows:
        table.add_row(name, value)
    leak = record.get("leak_check", {})
    if leak.get("checked"):
        verdict = "passed" if leak["passed"] else "FAILED"
        rss = _rss_change(leak)
        table.add_row("leak check (registry back to 0)", f"{verdict}{rss}")
    client = record.get("client")
    if client:
        table.add_row("client CPU (busiest process)", f"{client['busiest_proc_cpu_ratio']:.2f}")
    cpu = record.get("cpu", {})
    if cpu.get("other_cpu_pct") is not None:
        table.add_row("other load on the machine, % CPU", str(cpu["other_cpu_pct"]))
    out = console()
    out.print(table)
    print_warnings(out, record.get("warnings", []))


def _rss_change(leak: dict[str, Any]) -> str:
    before, after = leak.get("rss_before_kib"), leak.get("rss_after_kib")
    if not before or not after:
        return ""
    return f"; RSS {before / 1024:.1f} → {after / 1024:.1f} MiB ({leak['rss_growth_pct']:+}%)"
