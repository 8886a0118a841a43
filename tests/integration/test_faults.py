"""Faults while devices listen and meal logs are posted: two real nodes on PostgreSQL (through a
cuttable proxy) and a private redis-server, the reference client on every device.

One run of the operator's fault drill, shortened (benchmarks/chaos: the same machinery as
`python -m benchmarks chaos`): a node SIGKILLed and restarted, Redis killed and restarted, the
database cut for 4 s while a meal log is mid-processing, a node frozen for 4 s, then half the
devices restarted on the other node with their last seq. It FAILS (never skips) when PostgreSQL
or redis-server is missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from benchmarks.chaos.faults import Scheduled
from benchmarks.chaos.run import ChaosPlan, run_chaos

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

FAULT_BOUND = 5.0  # a meal log a fault caught is finished this long after the fault ended
PLAN = ChaosPlan(
    nodes=2,
    clients=10,
    users=4,
    posts=180,
    duration=22.5,  # 8 posts a second
    schedule=(
        Scheduled(2.0, "node_kill", seconds=1.0, node=0),
        Scheduled(6.5, "redis_kill", seconds=2.0),
        # longer than the pool's 3 s wait for a connection plus a meal log's processing, so the
        # save of the meal log the cut catches mid-processing fails for certain (at 3 s the wait
        # sometimes outlasts the cut, and the save just succeeds late)
        Scheduled(10.5, "pg_cut", seconds=4.0),
        Scheduled(16.0, "node_freeze", seconds=4.0, node=1),
        Scheduled(21.0, "client_restart"),
    ),
    processing_ms=300,  # a model call's time: the database cut finds meal logs mid-processing
    calm_bound=5.0,
    fault_bound=FAULT_BOUND,
    # generous for a loaded 2-core machine, and well under the 60 s lease a stuck claim waits
    drain_timeout=15.0,
    node_env=(("FITIQ_POSITION_CHECK_INTERVAL", "1"), ("FITIQ_LOG_LEVEL", "info")),
)


async def test_every_fault_in_turn_loses_nothing_and_finishes_everything(
    tmp_path: Path, database: str
) -> None:
    results = await run_chaos(PLAN, tmp_path, database)
    posts, meals, notes, delivery = (
        results["posts"],
        results["meal_logs"],
        results["notifications"],
        results["delivery"],
    )
    faults = {f["kind"]: f for f in results["faults"]}
    assert list(faults) == ["node_kill", "redis_kill", "pg_cut", "node_freeze", "client_restart"]
    assert faults["pg_cut"]["claimed"] > 0, "the cut found no meal log mid-processing"
    # every post is accepted (retries with its key), once
    assert posts["accepted"] == posts["sent"] == PLAN.posts, posts
    assert meals["accepted"] == PLAN.posts
    # every accepted meal log is finished, within its bound
    assert meals["unfinished_count"] == 0, _explain(results, "unfinished")
    assert meals["late_count"] == 0, _explain(results, "late")
    # exactly one notification each, seqs 1..n per user in the store
    assert notes == {
        "stored": PLAN.posts,
        "meal_logs_without": 0,
        "meal_logs_with_several": 0,
        "users_with_seq_gaps": 0,
    }
    # every device got every notification of its user once, in order; every socket was sent
    # consecutive seqs (no repeat, no gap the client had to reconnect for)
    assert delivery["expected"] == delivery["delivered"], delivery
    for key in ("missing", "duplicates", "out_of_order", "socket_repeats", "socket_gaps"):
        assert delivery[key] == 0, (key, delivery)
    assert delivery["restarts"] == PLAN.clients // 2
    assert delivery["connections"] > PLAN.clients  # the faults did move devices
    # every node's registry is back to 0 once the devices closed
    assert results["registry_after"] == {"a": 0, "b": 0}
    # the nodes met the faults as docs/deploy.md says, and none of it was an error
    nodes = results["nodes"]
    assert nodes["a"]["incarnations"] == 2
    assert any(n["fault_events"].get("dispatcher.save_retry") for n in nodes.values())
    assert all(n["fault_events"].get("broker.reconnected") for n in nodes.values())
    assert [n["errors"] for n in nodes.values()] == [[], []]


def _explain(results: dict[str, Any], what: str) -> str:
    meals = results["meal_logs"]
    return f"{meals[what + '_count']} {what}: {meals[what][:5]}; faults: {results['faults']}"
