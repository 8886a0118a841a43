"""chaos: the operator's fault drill on two nodes, with exactly-once delivery checked throughout.

Two `fitiq-rt serve` nodes on a fresh PostgreSQL database (reached through a proxy the run can
cut) and a private redis-server; devices running the reference client behind a load balancer
in miniature; meal logs posted at a steady rate with an Idempotency-Key and retries. Meanwhile,
one after another: a node SIGKILLed and restarted, Redis killed and restarted, the database cut
for 3 s (when a meal log is mid-processing), a node frozen with SIGSTOP for 4 s, half the
devices restarted on the other node with their last seq. The record says what was accepted,
finished (and whether within its bound), stored and delivered, the duplicates, gaps and
out-of-order frames, and the delivery delay overall and per fault. Needs PostgreSQL (a fresh
database is created and dropped) and the redis-server binary; starts its own servers.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any

import attrs
import psycopg
import trio
from rich.table import Table

from fitiq_rt.logconfig import configure_logging

from ..argtypes import positive_float, positive_int
from ..chaos.cluster import NodeFailed
from ..chaos.run import ChaosPlan, default_schedule, run_chaos
from ..chaos.services import fresh_database
from ..chaos.verdict import CALM, broken_promises
from ..launch import LaunchError
from ..report import console

NAME = "chaos"
KINDS = ("node_kill", "redis_kill", "pg_cut", "node_freeze", "client_restart")
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nodes", type=positive_int, default=2, help="fitiq-rt serve nodes")
    parser.add_argument("--clients", type=positive_int, default=20, help="listening devices")
    parser.add_argument("--users", type=positive_int, default=5, help="users the devices share")
    parser.add_argument("--posts", type=positive_int, default=400, help="meal logs posted")
    parser.add_argument(
        "--duration", type=positive_float, default=40.0, help="seconds the posts are spread over"
    )
    parser.add_argument(
        "--faults",
        default=",".join(KINDS),
        help=f"which faults, in schedule order (comma-separated subset of {', '.join(KINDS)})",
    )
    parser.add_argument(
        "--processing-ms",
        type=float,
        default=200.0,
        help="the processor's time per meal log (a model call's; the built-in parser after it)",
    )
    parser.add_argument(
        "--fault-bound",
        type=positive_float,
        default=5.0,
        help="seconds after a fault ends by which the meal logs it caught must be finished",
    )
    parser.add_argument(
        "--calm-bound",
        type=positive_float,
        default=5.0,
        help="seconds from stored to finished when no fault intervenes",
    )
    parser.add_argument(
        "--drain-timeout",
        type=positive_float,
        default=60.0,
        help="after the last post: how long to wait for the rest to arrive",
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("FITIQ_TEST_POSTGRES_URL", DEFAULT_ADMIN_URL),
        help="a PostgreSQL server on 127.0.0.1 where the run may create and drop a database",
    )
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for every node (repeatable), e.g. FITIQ_POSITION_CHECK_INTERVAL=1",
    )
    parser.add_argument("--keep-logs", type=Path, help="directory to keep the nodes' logs in")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")


def params_from(args: argparse.Namespace) -> dict[str, Any]:
    kinds = [kind.strip() for kind in args.faults.split(",") if kind.strip()]
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise SystemExit(f"--faults: unknown {', '.join(unknown)} (known: {', '.join(KINDS)})")
    env = []
    for item in args.server_env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--server-env wants KEY=VALUE, got {item!r}")
        env.append((key, value))
    return {
        "nodes": args.nodes,
        "clients": args.clients,
        "users": args.users,
        "posts": args.posts,
        "duration": args.duration,
        "faults": kinds,
        "processing_ms": args.processing_ms,
        "fault_bound": args.fault_bound,
        "calm_bound": args.calm_bound,
        "drain_timeout": args.drain_timeout,
        "server_env": env,
        "postgres_url": args.postgres_url,
        "keep_logs": str(args.keep_logs) if args.keep_logs else None,
        "progress": not args.quiet,
    }


def plan_from(params: dict[str, Any]) -> ChaosPlan:
    chosen = set(params["faults"])
    schedule = tuple(
        fault for fault in default_schedule(params["duration"]) if fault.kind in chosen
    )
    if params["nodes"] < 2:
        schedule = tuple(f for f in schedule if f.kind not in ("node_kill", "node_freeze"))
    return ChaosPlan(
        nodes=params["nodes"],
        clients=params["clients"],
        users=params["users"],
        posts=params["posts"],
        duration=params["duration"],
        schedule=schedule,
        processing_ms=params["processing_ms"],
        calm_bound=params["calm_bound"],
        fault_bound=params["fault_bound"],
        drain_timeout=params["drain_timeout"],
        node_env=tuple(params["server_env"]),
    )


def run(params: dict[str, Any]) -> dict[str, Any]:
    """The run's record; LaunchError when PostgreSQL, redis-server or a node is not there."""
    plan = plan_from(params)
    configure_logging("json", "warning")  # the devices' clients: only their trouble, on stderr
    try:
        return _run_on_fresh_database(plan, params)
    except psycopg.OperationalError as error:
        raise LaunchError(
            f"PostgreSQL ({params['postgres_url'].split('@')[-1]}): {error}"
        ) from None
    except (NodeFailed, FileNotFoundError, RuntimeError) as error:
        raise LaunchError(str(error)) from None


def _run_on_fresh_database(plan: ChaosPlan, params: dict[str, Any]) -> dict[str, Any]:
    with fresh_database(params["postgres_url"], prefix="fitiq_chaos") as url:
        if params["keep_logs"]:
            workdir = Path(params["keep_logs"])
            workdir.mkdir(parents=True, exist_ok=True)
            results = trio.run(_run, plan, workdir, url, params["progress"])
        else:
            with tempfile.TemporaryDirectory(prefix="bench-chaos-") as tmp:
                results = trio.run(_run, plan, Path(tmp), url, params["progress"])
                for node in results["nodes"].values():
                    node.pop("logs")  # gone with the directory
    results["broken_promises"] = broken_promises(results)
    return {
        "schedule": [attrs.asdict(fault) for fault in plan.schedule],
        "results": results,
    }


async def _run(plan: ChaosPlan, workdir: Path, url: str, progress: bool) -> dict[str, Any]:
    return await run_chaos(plan, workdir, url, progress=progress)


def headline(record: dict[str, Any]) -> list[tuple[str, str]]:
    r = record["results"]
    posts, meals, notes, d = r["posts"], r["meal_logs"], r["notifications"], r["delivery"]
    delay = d["delay_ms"]
    return [
        (
            "posts accepted / sent (retried)",
            f"{posts['accepted']} / {posts['sent']} ({posts['retried']})",
        ),
        ("meal logs finished / accepted", f"{meals['finished']} / {meals['accepted']}"),
        (
            "finished within bound (fault + "
            f"{meals['fault_bound_s']:g} s, else {meals['calm_bound_s']:g} s)",
            f"{meals['finished_within_bound']}",
        ),
        (
            "notifications stored (without / several)",
            f"{notes['stored']} ({notes['meal_logs_without']} / {notes['meal_logs_with_several']})",
        ),
        ("delivered / expected (devices × their user's)", f"{d['delivered']} / {d['expected']}"),
        (
            "duplicates / gaps (missing) / out of order",
            f"{d['duplicates']} / {d['missing']} / {d['out_of_order']}",
        ),
        ("socket frames repeated / skipped", f"{d['socket_repeats']} / {d['socket_gaps']}"),
        ("connections (device restarts)", f"{d['connections']} ({d['restarts']})"),
        ("delivery delay p50 / p99 / max ms", _delays(delay)),
        ("registry after (per node)", str(r["registry_after"])),
        ("verdict", "held" if not r["broken_promises"] else "; ".join(r["broken_promises"])),
    ]


def print_windows(record: dict[str, Any]) -> None:
    """Delivery delay per fault window (a meal log counts in the first fault it overlapped)."""
    r = record["results"]
    table = Table(title="delivery delay by fault (stored → device), ms", title_justify="left")
    for column in ("window", "fault s", "notifications", "p50", "p99", "max"):
        table.add_column(column, justify="left" if column == "window" else "right")
    seconds = {f["window"]: f["seconds"] for f in r["faults"]}
    by_window = r["delivery"]["delay_ms_by_window"]
    for name in [CALM, *seconds]:  # the faults in the order they ran
        summary = by_window.get(name)
        if summary is None:
            continue
        table.add_row(
            name,
            f"{seconds[name]:.1f}" if name in seconds else "",
            str(summary["count"]),
            *(_ms(summary[q]) for q in ("p50", "p99", "max")),
        )
    console().print(table)


def _delays(summary: dict[str, Any]) -> str:
    return " / ".join(_ms(summary[q]) for q in ("p50", "p99", "max"))


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}"
