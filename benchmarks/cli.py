"""`python -m benchmarks SCENARIO [--server CMD | --url URL] [options]`.

Exit status: 0 done; 1 the leak check failed, a client process failed or (chaos) a promise
broke; 2 the run could not start (bad options, server did not come up, peers not built,
logs_bench missing, chaos without PostgreSQL or redis-server).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path
from types import ModuleType
from typing import Any

from . import report
from .argtypes import non_negative_int, positive_float, positive_int
from .launch import CpuPlan, LaunchError, Target, attached, raise_fd_limit
from .runner import run_on_fresh_server
from .scenarios import (
    chaos,
    churn,
    compare,
    e2e,
    fanout,
    idle,
    instructions,
    logs,
    positions,
    push,
    wslib,
)
from .scenarios.common import RunOptions
from .targets import FITIQ, KNOWN, TargetUnavailable, resolve_server
from .tokens import TokenSource
from .workers import WorkerFailed

LOAD_SCENARIOS: dict[str, ModuleType] = {
    "churn": churn,
    "idle": idle,
    "e2e": e2e,
    "fanout": fanout,
}
SUMMARIES = {
    "churn": "sessions/s of connect, welcome, ping, pong, close",
    "idle": "server RSS per open socket; with --hold, drops and CPU under heartbeats",
    "e2e": "POST → notification frame latency at a fixed POST rate",
    "fanout": "latency to all 10 sockets of one user among 1,000 connected users",
    "logs": "lines/s of `fitiq-rt logs report` (benchmarks.logs_bench)",
    "compare": "fitiq_rt and the three peers for churn, idle and e2e, with ratios",
    "wslib": "server-side sans-I/O cost per churn session: websockets vs wsproto (no network)",
    "chaos": "two nodes through SIGKILL, Redis kill, database cut, SIGSTOP: nothing lost or late",
    "instructions": "CPU instructions per REST request under callgrind, per fitiq_rt version",
    "positions": "one position check pass over N local sockets on a real store (no network)",
    "push": "notification.queued -> APNs stand-in 200 with push on, over N queued notifications",
}


def _common(parser: argparse.ArgumentParser, *, server: bool = True) -> None:
    group = parser.add_argument_group("target and harness")
    if server:
        where = group.add_mutually_exclusive_group()
        where.add_argument(
            "--server",
            default=None,
            help=f"a named target ({', '.join(KNOWN)}) or a command line to start; default {FITIQ}",
        )
        where.add_argument("--url", help="a running deployment's base URL (no server started)")
        group.add_argument("--secret", help="with --url: the server's token secret")
        group.add_argument(
            "--token-file",
            type=Path,
            help="with --url: one token per line, `admin: TOKEN` for the leak check",
        )
        group.add_argument(
            "--server-pid", type=int, help="with --url on this host: server pid for RSS/CPU"
        )
    group.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for a started server (repeatable)",
    )
    group.add_argument(
        "--fitiq-ref",
        metavar="REF",
        help="run fitiq_rt from this commit's src/ (git archive) instead of the working tree",
    )
    group.add_argument(
        "--client-procs", type=positive_int, default=1, help="load-generator processes"
    )
    group.add_argument(
        "--ws-client",
        choices=("lean", "trio-websocket"),
        default="lean",
        help="WebSocket client implementation for the load",
    )
    group.add_argument("--no-pin", action="store_true", help="do not pin server and client CPUs")
    group.add_argument(
        "--warmup",
        type=non_negative_int,
        default=None,
        help="churned sessions before measuring (default per scenario: churn 3000, e2e and "
        "fanout 1000, idle 100): JIT servers (Node) need thousands to reach their speed",
    )
    group.add_argument(
        "--leak-timeout", type=positive_float, default=5.0, help="seconds for registry → 0"
    )
    group.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before each measurement wait up to this long for other processes to go quiet",
    )
    group.add_argument(
        "--retry-noisy",
        type=int,
        default=0,
        metavar="N",
        help="repeat a run (fresh server) up to N times while other load spoils it",
    )
    group.add_argument("--json-out", type=Path, help="where to write the JSON record")
    group.add_argument("--keep-server-log", type=Path, help="directory to keep the server's log in")
    group.add_argument("--quiet", action="store_true", help="no progress on stderr")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    sub = parser.add_subparsers(dest="scenario", required=True, metavar="SCENARIO")
    for name, module in LOAD_SCENARIOS.items():
        scenario = sub.add_parser(name, help=SUMMARIES[name], description=module.__doc__)
        module.add_arguments(scenario)
        if name == "idle":
            scenario.add_argument(
                "--ping-interval", type=float, help="started server: FITIQ_PING_INTERVAL"
            )
            scenario.add_argument(
                "--idle-timeout", type=float, help="started server: FITIQ_IDLE_TIMEOUT"
            )
        _common(scenario)
    logs_parser = sub.add_parser("logs", help=SUMMARIES["logs"], description=logs.__doc__)
    logs.add_arguments(logs_parser)
    logs_parser.add_argument("--json-out", type=Path, help="where to write the JSON record")
    lib_parser = sub.add_parser("wslib", help=SUMMARIES["wslib"], description=wslib.__doc__)
    wslib.add_arguments(lib_parser)
    lib_parser.add_argument("--json-out", type=Path, help="where to write the JSON record")
    pos_parser = sub.add_parser(
        "positions", help=SUMMARIES["positions"], description=positions.__doc__
    )
    positions.add_arguments(pos_parser)
    pos_parser.add_argument("--json-out", type=Path, help="where to write the JSON record")
    ins_parser = sub.add_parser(
        "instructions", help=SUMMARIES["instructions"], description=instructions.__doc__
    )
    instructions.add_arguments(ins_parser)
    ins_parser.add_argument("--json-out", type=Path, help="where to write the JSON record")
    chaos_parser = sub.add_parser("chaos", help=SUMMARIES["chaos"], description=chaos.__doc__)
    chaos.add_arguments(chaos_parser)
    chaos_parser.add_argument("--json-out", type=Path, help="where to write the JSON record")
    push_parser = sub.add_parser("push", help=SUMMARIES["push"], description=push.__doc__)
    push.add_arguments(push_parser)
    push_parser.add_argument("--json-out", type=Path, help="where to write the JSON record")
    cmp = sub.add_parser("compare", help=SUMMARIES["compare"], description=compare.__doc__)
    compare.add_arguments(cmp)
    _common(cmp, server=False)
    return parser


def _server_env(args: argparse.Namespace) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in args.server_env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--server-env wants KEY=VALUE, got {item!r}")
        env[key] = value
    if getattr(args, "ping_interval", None) is not None:
        env["FITIQ_PING_INTERVAL"] = str(args.ping_interval)
    if getattr(args, "idle_timeout", None) is not None:
        env["FITIQ_IDLE_TIMEOUT"] = str(args.idle_timeout)
    if getattr(args, "store_trace", False) or getattr(args, "e2e_store_trace", False):
        env["FITIQ_LOG_LEVEL"] = "debug"  # the `store.call` lines the e2e summary reads
    return env


def _options(args: argparse.Namespace, plan: CpuPlan) -> RunOptions:
    return RunOptions(
        procs=max(1, args.client_procs),
        plan=plan,
        ws_client=args.ws_client,
        progress=not args.quiet,
        warmup=args.warmup,
        leak_timeout=args.leak_timeout,
        wait_quiet=args.wait_quiet,
        retry_noisy=max(0, args.retry_noisy),
    )


def _load_generator(opts: RunOptions) -> dict[str, Any]:
    return {"client_procs": opts.procs, "ws_client": opts.ws_client, **opts.plan.describe()}


def _run_load(args: argparse.Namespace, record: dict[str, Any]) -> dict[str, Any]:
    module = LOAD_SCENARIOS[args.scenario]
    params = module.params_from(args)
    if args.url:
        if not (args.secret or args.token_file):
            raise SystemExit("--url needs --secret or --token-file")
        tokens = (
            TokenSource.from_file(args.token_file)
            if args.token_file
            else TokenSource(secret=args.secret)
        )
        opts = _options(args, CpuPlan(None, None))
        target: Target = attached(args.url, tokens, args.server_pid)
        quiet = opts.settle_machine()
        outcome = module.run(target, params, opts)
        outcome["machine_quiet_before"] = quiet
        facts = target.facts
    else:
        opts = _options(args, CpuPlan.make(pin=not args.no_pin))
        spec = resolve_server(args.server or FITIQ, args.fitiq_ref)
        outcome, facts = run_on_fresh_server(
            spec, module, params, opts, _server_env(args), args.keep_server_log
        )
    record.update(
        target=facts,
        load_generator=_load_generator(opts),
        parameters=asdict(params),
        **outcome,
    )
    report.print_single(f"{args.scenario} — {facts['target']}", module.headline(record), record)
    return record


def _run_compare(args: argparse.Namespace, record: dict[str, Any]) -> dict[str, Any]:
    plan = CpuPlan.make(pin=not args.no_pin)
    opts = _options(args, plan)
    record.update(load_generator=_load_generator(opts))
    record.update(compare.run(args, opts, _server_env(args), args.fitiq_ref))
    compare.print_table(record)
    if args.markdown:
        print(compare.markdown_table(record))
    return record


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    raise_fd_limit()
    record = report.new_record(args.scenario, sys.argv if argv is None else argv)
    try:
        if args.scenario == "logs":
            params = logs.params_from(args)
            record.update(parameters=params, **logs.run(params))
            report.print_single("logs report — analyzer throughput", logs.headline(record), record)
        elif args.scenario == "wslib":
            params = wslib.params_from(args)
            record.update(parameters=params, **wslib.run(params))
            report.print_single(
                "WebSocket libraries — sans-I/O cost", wslib.headline(record), record
            )
        elif args.scenario == "positions":
            params = positions.params_from(args)
            shown = {k: v for k, v in params.items() if k != "database_url"}  # may hold a password
            record.update(parameters=shown, **positions.run(params))
            report.print_single("position check — one pass", positions.headline(record), record)
        elif args.scenario == "instructions":
            params = instructions.params_from(args)
            record.update(parameters=params, **instructions.run(params))
            report.print_single(
                "instructions per request (callgrind)", instructions.headline(record), record
            )
        elif args.scenario == "chaos":
            params = chaos.params_from(args)
            shown = {k: v for k, v in params.items() if k != "postgres_url"}  # may hold a password
            record.update(parameters=shown, **chaos.run(params))
            report.print_single("chaos — faults on two nodes", chaos.headline(record), record)
            chaos.print_windows(record)
        elif args.scenario == "push":
            params = push.params_from(args)
            record.update(parameters=params, **push.run(params))
            report.print_single(
                "push — queued notification to APNs 200", push.headline(record), record
            )
        elif args.scenario == "compare":
            _run_compare(args, record)
        else:
            _run_load(args, record)
    except (LaunchError, TargetUnavailable, logs.LogsBenchMissing) as error:
        print(f"benchmarks: {error}", file=sys.stderr)
        return 2
    except WorkerFailed as error:
        print(f"benchmarks: {error}", file=sys.stderr)
        return 1
    path = report.results_path(args.scenario, args.json_out)
    report.write(record, path)
    print(f"wrote {path}", file=sys.stderr)
    leak = record.get("leak_check", {})
    if record.get("results", {}).get("broken_promises"):
        return 1  # chaos: a promise did not hold
    return 1 if leak.get("checked") and leak.get("passed") is False else 0
