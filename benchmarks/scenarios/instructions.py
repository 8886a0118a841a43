"""instructions: CPU instructions the server executes per REST request, counted by callgrind.

Why: on a shared machine a CPU-time figure moves by 2× from one minute to the next, so a change
worth 5 % cannot be seen in `e2e`'s CPU per meal log. Valgrind's callgrind counts the
instructions the server's process executes (all its threads, user space), the same count for the
same code and requests whatever else the machine does.

For each version of fitiq_rt (the working tree, and every `--ref`) and each kind of request, a
fresh server runs under `valgrind --tool=callgrind` (some 50× slower, so it is started with a
long health timeout), gets `--warmup` requests on one keep-alive connection, has its counters
zeroed (`callgrind_control -z`), serves `--requests` more, and has them dumped. The kinds:
`404` (GET of an unknown path: Hypercorn, Quart and the access log, no store), `post` (a
meal-log POST: its store writes, processing and notification, no socket listening), `delivered`
(the same POST while the user's one WebSocket is open; the next request waits for its
`meal_log.completed` frame, so the frame's encoding and write are counted too). Kernel time
(system calls) is not counted. Servers run side by side, one per CPU: the counts do not depend
on it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import orjson
import trio

from ..argtypes import positive_int
from ..httpclient import HttpPool
from ..launch import CpuPlan, LaunchError, launched
from ..targets import fitiq_spec
from ..tokens import TokenSource
from ..wsclient import Endpoint, WsConn, open_ws

NAME = "instructions"
KINDS = ("404", "post", "delivered")
STARTUP_TIMEOUT = 600.0  # imports under valgrind take a minute on a slow machine
MEAL = b'{"raw_input": "2 eggs and a slice of toast"}'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ref",
        action="append",
        default=[],
        metavar="REF",
        help="also count fitiq_rt at this commit (repeatable); the first version is the baseline",
    )
    parser.add_argument(
        "--no-worktree", action="store_true", help="count only the --ref commits, not the tree"
    )
    parser.add_argument(
        "--kinds",
        type=_kinds,
        default=list(KINDS),
        help=f"comma-separated, of {', '.join(KINDS)} (default: all)",
    )
    parser.add_argument("--requests", type=positive_int, default=200, help="requests counted")
    parser.add_argument("--warmup", type=positive_int, default=20, help="requests before")


def _kinds(text: str) -> list[str]:
    kinds = [kind.strip() for kind in text.split(",") if kind.strip()]
    if not kinds or any(kind not in KINDS for kind in kinds):
        known = ", ".join(KINDS)
        raise argparse.ArgumentTypeError(f"takes {known} (comma-separated), got {text!r}")
    return kinds


def params_from(args: argparse.Namespace) -> dict[str, Any]:
    versions = ([] if args.no_worktree else [None]) + list(args.ref)
    if not versions:
        raise SystemExit("instructions: --no-worktree needs at least one --ref")
    return {
        "versions": versions,
        "kinds": args.kinds,
        "requests": args.requests,
        "warmup": args.warmup,
    }


async def _send(http: HttpPool, kind: str, token: str) -> None:
    """One request of `kind` on the pool's one keep-alive connection (Hypercorn closes it after
    keep_alive_max_requests; the pool opens the next)."""
    if kind == "404":
        answer = await http.request("GET", "/nope")
    else:  # `delivered` posts the same meal log as `post`
        headers = [("Authorization", f"Bearer {token}"), ("Content-Type", "application/json")]
        answer = await http.request("POST", "/api/v1/meal-logs/natural", MEAL, headers)
    if answer.status not in (201, 404):
        raise LaunchError(f"unexpected answer {answer.status}: {answer.body[:200]!r}")


async def _until_frame(ws: WsConn, kind: str) -> None:
    while orjson.loads(await ws.recv()).get("type") != kind:
        pass


async def _drive(
    endpoint: Endpoint, pid: int | None, kind: str, tokens: TokenSource, params: dict[str, Any]
) -> None:
    """Warm up, zero the counters, send the counted requests, dump the counters. For
    `delivered`, the user's one socket has each notification before the next request goes."""
    token = tokens.user(0)[1]
    http = HttpPool(endpoint, 1)
    async with AsyncExitStack() as stack:
        stack.push_async_callback(http.aclose)
        ws = None
        if kind == "delivered":
            ws = await stack.enter_async_context(open_ws(endpoint, token))
            await _until_frame(ws, "welcome")

        async def send(count: int) -> None:
            for _ in range(count):
                await _send(http, kind, token)
                if ws is not None:
                    await _until_frame(ws, "meal_log.completed")

        await send(params["warmup"])
        await trio.to_thread.run_sync(_callgrind_control, "-z", pid)
        await send(params["requests"])
        await trio.to_thread.run_sync(_callgrind_control, "-d", pid)


def _count(version: str | None, kind: str, params: dict[str, Any], cpu: int | None) -> int:
    """Instructions over `requests` requests of `kind`, on a fresh server of `version`."""
    spec = fitiq_spec(version)  # a ref is extracted once (export_source), before the pool runs
    workdir = Path(tempfile.mkdtemp(prefix="fitiq-instructions-"))
    try:
        out = workdir / "callgrind.out"
        spec.argv = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            "--dump-instr=no",
            *spec.argv,
        ]
        plan = CpuPlan(cpu, None)
        with launched(spec, plan, {}, health_timeout=STARTUP_TIMEOUT) as target:
            trio.run(_drive, target.endpoint, target.pid, kind, target.tokens, params)
        return _summary(workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _callgrind_control(flag: str, pid: int | None) -> None:
    subprocess.run(["callgrind_control", flag, str(pid)], check=True, capture_output=True)


def _summary(workdir: Path) -> int:
    """The instruction total of the dump taken after the counted requests (part 1)."""
    for path in workdir.glob("callgrind.out.*"):
        if path.name.endswith(".1"):
            for line in path.read_text().splitlines():
                if line.startswith("summary:"):
                    return int(line.split()[1])
    raise LaunchError(f"no callgrind dump in {workdir}")


def run(params: dict[str, Any]) -> dict[str, Any]:
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise LaunchError("instructions needs valgrind (Debian package valgrind)")
    labels = {version: _label(version) for version in params["versions"]}
    jobs = [(version, kind) for version in params["versions"] for kind in params["kinds"]]
    cpus = sorted(os.sched_getaffinity(0))
    with ThreadPoolExecutor(max_workers=len(cpus)) as pool:
        futures = [
            pool.submit(_count, version, kind, params, cpus[index % len(cpus)])
            for index, (version, kind) in enumerate(jobs)
        ]
        totals = [future.result() for future in futures]
    rows = []
    baseline: dict[str, float] = {}
    for (version, kind), total in zip(jobs, totals, strict=True):
        per_request = total / params["requests"]
        baseline.setdefault(kind, per_request)
        rows.append(
            {
                "version": labels[version],
                "kind": kind,
                "instructions_per_request": round(per_request),
                "ratio_to_first": round(per_request / baseline[kind], 4),
            }
        )
    return {
        "results": {"rows": rows},
        "leak_check": {"checked": False, "passed": None, "reason": "counts only"},
        "warnings": [],
    }


def _label(version: str | None) -> str:
    """ "working tree", or the ref with the commit it names (HEAD moves; the commit does not)."""
    if version is None:
        return "working tree"
    commit = fitiq_spec(version).versions["fitiq_rt_commit"]
    return version if commit.startswith(version) else f"{version} ({commit[:9]})"


def headline(record: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (
            f"{row['kind']} @ {row['version']}",
            f"{row['instructions_per_request'] / 1e6:.3f} M  (× {row['ratio_to_first']:.3f})",
        )
        for row in record["results"]["rows"]
    ]
