"""positions: what one position check pass costs with N local sockets, on a real store.

In-process and without network: a registry of N connections (one per user unless --users says
fewer), each user with a stored seq the socket has already sent (the steady state, where the
pass finds nobody behind), and `PositionCheck.check()` timed over several rounds. The pass is the
one `latest_seqs` query for every local user plus the comparison with every socket, which is
everything a node does every FITIQ_POSITION_CHECK_INTERVAL when nothing was lost.
SQLite by default (a fresh file); `--database-url postgresql://…` runs it on PostgreSQL.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import trio

from ..argtypes import positive_int

NAME = "positions"


def add_arguments(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    p = f"--{prefix}"
    parser.add_argument(f"{p}sockets", type=positive_int, default=10000, help="local sockets")
    parser.add_argument(
        f"{p}users", type=positive_int, help="distinct users among them (default: one each)"
    )
    parser.add_argument(f"{p}rounds", type=positive_int, default=20, help="passes timed")
    parser.add_argument(
        f"{p}database-url", help="postgresql://… to measure PostgreSQL (default: a SQLite file)"
    )


def params_from(args: argparse.Namespace, prefix: str = "") -> dict[str, Any]:
    p = prefix.replace("-", "_")
    sockets = getattr(args, f"{p}sockets")
    return {
        "sockets": sockets,
        "users": min(getattr(args, f"{p}users") or sockets, sockets),
        "rounds": getattr(args, f"{p}rounds"),
        "database": "postgresql" if getattr(args, f"{p}database_url") else "sqlite",
        "database_url": getattr(args, f"{p}database_url"),
    }


def _seed_sqlite(path: Path, users: list[str]) -> None:
    import sqlite3

    with sqlite3.connect(path) as db:
        db.executemany(
            "INSERT INTO user_seq (user_id, last_seq) VALUES (?, 7)", [(u,) for u in users]
        )


def _seed_postgres(url: str, users: list[str]) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO user_seq (user_id, last_seq) SELECT u, 7 FROM unnest(%s::text[]) AS u",
            (users,),
        )


def _unseed_postgres(url: str, users: list[str]) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM user_seq WHERE user_id = ANY(%s)", (users,))


async def _measure(params: dict[str, Any], workdir: Path) -> list[float]:
    from fitiq_rt.meals.store import open_store
    from fitiq_rt.observability.metrics import Metrics
    from fitiq_rt.realtime.connection import Connection
    from fitiq_rt.realtime.positions import PositionCheck
    from fitiq_rt.realtime.registry import Registry

    url = params["database_url"] or f"sqlite:///{workdir / 'positions.sqlite3'}"
    store = open_store(url, data_dir=workdir)
    await store.open()
    run = uuid.uuid4().hex[:8]
    users = [f"bench-{run}-{i}" for i in range(params["users"])]
    if params["database_url"]:
        await trio.to_thread.run_sync(_seed_postgres, url, users)
    else:
        await trio.to_thread.run_sync(_seed_sqlite, workdir / "positions.sqlite3", users)
    registry = Registry()
    for i in range(params["sockets"]):
        conn = Connection.open(uuid.uuid4().hex, users[i % len(users)], None, 256, time.time())
        conn.welcomed(7)  # what the welcome said: nobody is behind
        registry.add(conn)
    check = PositionCheck(registry, store, Metrics(), interval=10.0)
    try:
        assert await check.check() == 0  # the first pass warms the statement cache
        per_pass = []
        for _ in range(params["rounds"]):
            started = time.perf_counter()
            found = await check.check()
            per_pass.append((time.perf_counter() - started) * 1000)
            assert found == 0
        return per_pass
    finally:
        if params["database_url"]:
            await trio.to_thread.run_sync(_unseed_postgres, url, users)
        await store.close()


def run(params: dict[str, Any]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="fitiq-positions-") as workdir:
        per_pass = trio.run(_measure, params, Path(workdir))
    ordered = sorted(per_pass)
    median = statistics.median(per_pass)
    return {
        "results": {
            "pass_ms_median": round(median, 3),
            "pass_ms_max": round(ordered[-1], 3),
            "pass_ms_rounds": [round(x, 3) for x in per_pass],
            "us_per_socket": round(median * 1000 / params["sockets"], 3),
            "share_of_one_core_at_10s_interval": f"{median / 10_000:.3%}",
        },
        "leak_check": {"checked": False, "passed": None, "reason": "no server in this scenario"},
        "warnings": [],
    }


def headline(record: dict[str, Any]) -> list[tuple[str, str]]:
    r, p = record["results"], record["parameters"]
    return [
        ("store", p["database"]),
        ("sockets / users", f"{p['sockets']} / {p['users']}"),
        ("pass ms (median)", f"{r['pass_ms_median']:.2f}"),
        ("pass ms (max)", f"{r['pass_ms_max']:.2f}"),
        ("µs per socket", f"{r['us_per_socket']:.2f}"),
        ("one core, every 10 s", r["share_of_one_core_at_10s_interval"]),
    ]
