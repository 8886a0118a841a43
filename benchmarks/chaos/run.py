"""One fault run from start to end: services, nodes, devices, posts and faults, then the verdict.

1. a private redis-server, a proxy in front of PostgreSQL, `nodes` nodes on both;
2. `clients` devices over `users` users (every user has devices on more than one node);
3. `posts` meal logs at a steady rate while the faults run one after another;
4. wait until every accepted meal log is finished and every device has every notification
   (or `drain_timeout` passes: the verdict then says what is missing);
5. close the devices, check every node's registry is back to 0, stop the nodes (SIGTERM).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import httpx
import trio

from ..leaks import DEBUG_PATH
from ..progress import Progress
from ..tokens import TokenSource, generate_secret
from . import processor
from .cluster import Cluster, Node
from .faults import Faults, Scheduled
from .services import CuttableProxy, RedisProcess
from .traffic import Listener, Poster
from .verdict import judge, read_store


@attrs.frozen
class ChaosPlan:
    nodes: int = 2
    clients: int = 20
    users: int = 5
    posts: int = 400
    duration: float = 40.0  # seconds over which the posts are spread
    schedule: tuple[Scheduled, ...] = ()
    processing_ms: float = 200.0
    calm_bound: float = 5.0  # seconds from stored to finished when no fault intervenes
    fault_bound: float = 5.0  # seconds after a fault ends by which what it caught is finished
    drain_timeout: float = 30.0  # after the last post and fault: wait this long for the rest
    registry_timeout: float = 10.0
    node_env: tuple[tuple[str, str], ...] = ()


def default_schedule(duration: float) -> tuple[Scheduled, ...]:
    """The operator's run, spread over `duration`: kill, Redis, database, freeze, restarts."""
    at = [duration * share for share in (0.1, 0.3, 0.5, 0.7, 0.9)]
    return (
        Scheduled(at[0], "node_kill", seconds=1.0, node=0),
        Scheduled(at[1], "redis_kill", seconds=2.0),
        Scheduled(at[2], "pg_cut", seconds=3.0),
        Scheduled(at[3], "node_freeze", seconds=4.0, node=1),
        Scheduled(at[4], "client_restart"),
    )


async def run_chaos(
    plan: ChaosPlan,
    workdir: Path,
    database_url: str,
    *,
    progress: bool = False,
) -> dict[str, Any]:
    """Run `plan` against a fresh, empty database at `database_url`; the record's results."""
    secret = generate_secret()
    tokens = TokenSource(secret=secret)
    redis = RedisProcess(workdir)
    await trio.to_thread.run_sync(redis.start)
    proxy = CuttableProxy()
    try:
        async with trio.open_nursery() as services:
            proxy_port = await services.start(proxy.serve)
            env = {
                "FITIQ_DATABASE_URL": proxy.url_for(database_url, proxy_port),
                "FITIQ_REDIS_URL": redis.url,
                "FITIQ_JWT_SECRET": secret,
                "FITIQ_PROCESSOR": processor.SPEC,
                processor.DELAY_VARIABLE: f"{plan.processing_ms:g}",
                **dict(plan.node_env),
            }
            nodes = [Node(chr(ord("a") + i), workdir / f"node-{i}", env) for i in range(plan.nodes)]
            cluster = Cluster(nodes)
            try:
                await cluster.start_all()
                results = await _traffic(
                    plan, cluster, tokens, redis, proxy, database_url, progress
                )
            finally:
                exits = await trio.to_thread.run_sync(cluster.stop_all)
            services.cancel_scope.cancel()
    finally:
        redis.kill()
    results["nodes"] = {node.name: _node_summary(node, exits[node.name]) for node in nodes}
    return results


async def _traffic(
    plan: ChaosPlan,
    cluster: Cluster,
    tokens: TokenSource,
    redis: RedisProcess,
    proxy: CuttableProxy,
    database_url: str,
    progress: bool,
) -> dict[str, Any]:
    users = [tokens.user(i) for i in range(plan.users)]
    # device i: user i % users, and its node alternates every `users` devices, so each user
    # with two or more devices has them on different nodes
    listeners = [
        Listener(f"device-{i}", *users[i % plan.users], (i // plan.users) % plan.nodes, cluster)
        for i in range(plan.clients)
    ]
    poster = Poster(cluster, users, total=plan.posts, rate=plan.posts / plan.duration)
    faults = Faults(cluster, redis, proxy, database_url, listeners)
    shown = Progress("chaos", plan.posts, "posts", enabled=progress, rate=False)
    async with trio.open_nursery() as nursery:
        for listener in listeners:
            await nursery.start(listener.run)
        await _until(
            lambda: all(device.client and device.client.connections for device in listeners), 20
        )
        nursery.start_soon(_show, shown, poster, listeners, faults)
        started = trio.current_time()
        async with trio.open_nursery() as load:
            load.start_soon(poster.run)
            load.start_soon(faults.run, list(plan.schedule), started)
        drain_started = time.time()
        ids = [p.meal_id for p in poster.posts if p.meal_id is not None]
        await _until(lambda: _all_delivered(listeners, poster), plan.drain_timeout)
        drained_s = time.time() - drain_started
        nursery.cancel_scope.cancel()  # every device closes its socket
    shown.close()
    registry = await _registry_after(cluster, tokens, plan.registry_timeout)
    meals, notes = await trio.to_thread.run_sync(read_store, database_url, ids)
    results = judge(
        poster.posts,
        listeners,
        faults.windows,
        meals,
        notes,
        calm_bound=plan.calm_bound,
        fault_bound=plan.fault_bound,
    )
    zero = min((post.first_attempt for post in poster.posts), default=time.time())
    results["faults"] = [
        {
            "window": w.name,
            "kind": w.kind,
            "start_s": round(w.start - zero, 3),
            "seconds": round(w.end - w.start, 3),
            **{k: v for k, v in w.detail.items() if k != "at"},
        }
        for w in faults.windows
    ]
    results["drain_seconds"] = round(drained_s, 3)
    results["registry_after"] = registry
    return results


# What each node did about the faults, from its log (docs/deploy.md, "Faults and what the nodes do")
FAULT_EVENTS = (
    "broker.disconnected",
    "broker.reconnected",
    "broker.caught_up",
    "dispatcher.save_retry",
    "dispatcher.recovered",
    "store.claims_released",
    "ws.position_behind",
    "ws.resumed",
)


def _node_summary(node: Node, exit_code: int | None) -> dict[str, Any]:
    events = node.events()
    return {
        "incarnations": len(node.incarnations),
        "exit_code": exit_code,
        "errors": [
            {k: e.get(k) for k in ("event", "error", "timestamp") if k in e}
            for e in events
            if e.get("level") in ("error", "critical")
        ][:20],
        "fault_events": dict(Counter(e["event"] for e in events if e.get("event") in FAULT_EVENTS)),
        "logs": [str(path) for path in node.incarnations],
    }


def _all_delivered(listeners: list[Listener], poster: Poster) -> bool:
    """Every device has as many notifications as its user has accepted posts."""
    per_user: dict[str, int] = {}
    for post in poster.posts:
        if post.meal_id is not None:
            per_user[post.user] = per_user.get(post.user, 0) + 1
    return all(device.last_seq >= per_user.get(device.user, 0) for device in listeners)


async def _until(check: Callable[[], bool], seconds: float) -> bool:
    with trio.move_on_after(seconds):
        while not check():
            await trio.sleep(0.05)
        return True
    return False


async def _show(shown: Progress, poster: Poster, listeners: list[Listener], faults: Faults) -> None:
    while True:
        delivered = sum(len(device.deliveries) for device in listeners)
        fault = f"  fault: {faults.current}" if faults.current else ""
        shown.update(len(poster.posts), f"accepted {poster.accepted}  delivered {delivered}{fault}")
        await trio.sleep(0.25)


async def _registry_after(cluster: Cluster, tokens: TokenSource, seconds: float) -> dict[str, Any]:
    """Each node's own count of open sockets once every device closed (polled until 0)."""
    token = tokens.admin_token()
    found: dict[str, Any] = {}
    async with httpx.AsyncClient(timeout=5) as http:
        for node in cluster.nodes:
            deadline = trio.current_time() + seconds
            count: int | None = None
            while True:
                try:
                    response = await http.get(
                        node.base_url + DEBUG_PATH, headers={"Authorization": f"Bearer {token}"}
                    )
                    count = int(response.json()["total_connections"])
                except (httpx.HTTPError, ValueError, KeyError):
                    count = None
                if count == 0 or trio.current_time() > deadline:
                    break
                await trio.sleep(0.1)
            found[node.name] = count
    return found
