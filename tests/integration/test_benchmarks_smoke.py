"""Smoke of the benchmark harness: every scenario, tiny numbers, against fitiq_rt only.

It proves `python -m benchmarks` starts the server, drives it, stops it, passes its leak check
(the registry back to 0) and writes the JSON record. Nothing here asserts a speed: CI machines
vary, and the numbers belong in benchmarks/README.md, not in a test. The peers are not needed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

REPO = Path(__file__).resolve().parents[2]
COMMON = ["--server", "fitiq", "--quiet", "--warmup", "5"]

SCENARIOS: dict[str, list[str]] = {
    "churn": ["churn", "--sessions", "50", "--in-flight", "10", *COMMON],
    "idle": [
        "idle",
        "--sockets",
        "50",
        "--settle",
        "0.2",
        # Heartbeats every 0.5 s and a 2 s idle timeout, held 2.5 s: a client that did not
        # answer the server's pings would be dropped; the harness's clients must not be.
        "--hold",
        "2.5",
        "--ping-interval",
        "0.5",
        "--idle-timeout",
        "2",
        *COMMON,
    ],
    "e2e": ["e2e", "--users", "5", "--rate", "20", "--duration", "1", *COMMON],
    "fanout": ["fanout", "--background-users", "3", "--posts", "5", "--rate", "10", *COMMON],
    "logs": ["logs", "--lines", "10000", "--repeat", "1"],
    "positions": ["positions", "--sockets", "300", "--users", "100", "--rounds", "2"],
    "push": ["push", "--notifications", "20", "--users", "5", "--rate", "50"],
    "compare": [
        "compare",
        "--targets",
        "fitiq",
        "--churn-sessions",
        "20",
        "--idle-sockets",
        "20",
        "--e2e-users",
        "3",
        "--e2e-rate",
        "10",
        "--e2e-duration",
        "1",
        "--quiet",
        "--warmup",
        "5",
    ],
}


def run_harness(args: list[str], json_out: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", *args, "--json-out", str(json_out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return orjson.loads(json_out.read_bytes())


def assert_record_basics(record: dict[str, Any], scenario: str) -> None:
    assert record["scenario"] == scenario
    machine = record["machine"]
    for key in ("cpu_model", "nproc", "mem_total_mib", "kernel"):
        assert machine[key], key
    for key in ("python", "trio", "hypercorn"):
        assert record["versions"][key], key
    assert "commit" in record["git"]
    assert record["parameters"]


def assert_leak_check_passed(leak: dict[str, Any]) -> None:
    assert leak["checked"] is True
    assert leak["passed"] is True
    assert leak["total_connections_after"] == 0
    assert leak["rss_before_kib"] and leak["rss_after_kib"]


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_scenario_runs_and_passes_its_leak_check(scenario: str, tmp_path: Path) -> None:
    record = run_harness(SCENARIOS[scenario], tmp_path / f"{scenario}.json")
    assert_record_basics(record, scenario)
    if scenario == "logs":
        results = record["results"]
        assert results["lines"] > 0
        assert results["lines_per_second"] > 0
        assert results["error_anomalies"] == 0
        return
    if scenario == "positions":
        assert record["parameters"] == {
            "sockets": 300,
            "users": 100,
            "rounds": 2,
            "database": "sqlite",
        }
        assert len(record["results"]["pass_ms_rounds"]) == 2
        assert record["results"]["pass_ms_median"] > 0
        return
    if scenario == "push":
        assert (record["queued"], record["pushed"], record["push_failed"]) == (20, 20, 0)
        assert record["standin_problems"] == []
        assert record["queued_to_200_ms"]["count"] == 20
        assert record["queued_to_200_ms"]["p99"] > 0
        return
    if scenario == "compare":
        assert record["leak_check"]["passed"] is True
        for run in record["runs"]:
            assert_leak_check_passed(run["leak_check"])
        assert record["parameters"]["targets"] == ["fitiq"]
        assert {r["scenario"] for r in record["runs"]} == {"churn", "idle", "e2e"}
        assert record["summary"]["churn sessions/s"]["fitiq"] > 0
        return
    assert_leak_check_passed(record["leak_check"])
    assert record["target"]["target"] == "fitiq"
    assert record["target"]["exit_code"] == 0  # stopped gracefully by the harness
    assert "saturated" in record["client"]
    check_results(scenario, record["results"])


def check_results(scenario: str, results: dict[str, Any]) -> None:
    if scenario == "churn":
        assert results["sessions_ok"] == 50
        assert results["sessions_failed"] == 0
        assert results["session_ms"]["count"] == 50
    elif scenario == "idle":
        assert results["sockets_opened"] == 50
        assert results["server_connections_reported"] == 50
        assert results["rss_kib_per_socket"] is not None
        assert results["dropped"] == 0
    elif scenario == "e2e":
        assert results["posts_ok"] == 20
        assert results["notified"] == 20
        assert results["missing"] == 0
        assert results["latency_ms"]["p99"] is not None
    elif scenario == "fanout":
        assert results["delivered_to_all"] == 5
        assert results["missing"] == 0
        assert results["all_sockets_ms"]["count"] == 5


@pytest.mark.postgres
@pytest.mark.redis
def test_chaos_runs_its_faults_and_writes_the_verdict(tmp_path: Path) -> None:
    """Two faults over 4 s (the whole drill is tests/integration/test_faults.py)."""
    args = ["chaos", "--posts", "20", "--duration", "4", "--clients", "2", "--users", "1"]
    args += ["--faults", "redis_kill,client_restart", "--quiet"]
    record = run_harness(args, tmp_path / "chaos.json")
    assert_record_basics(record, "chaos")
    assert "postgres_url" not in record["parameters"]  # it may hold a password
    assert [fault["kind"] for fault in record["schedule"]] == ["redis_kill", "client_restart"]
    results = record["results"]
    assert results["broken_promises"] == []
    assert results["posts"]["accepted"] == 20
    assert results["meal_logs"]["finished_within_bound"] == 20
    assert results["delivery"]["delivered"] == results["delivery"]["expected"] == 40
    assert results["delivery"]["delay_ms"]["count"] == 40
    assert [fault["kind"] for fault in results["faults"]] == ["redis_kill", "client_restart"]
    assert results["registry_after"] == {"a": 0, "b": 0}
    assert {node["exit_code"] for node in results["nodes"].values()} == {0}
