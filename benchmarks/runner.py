"""Run one scenario on a freshly started server, retrying runs that other load spoiled.

Why retries: this project's 2-core machine is shared with other people's test runs. A run during
which other processes burned ≥ 20 % of a CPU measures them as much as the server, so with
`--retry-noisy N` such a run is discarded and repeated (fresh server) up to N times; the record
says how many were discarded, and the last run's noise is still reported. Scenarios whose
headline does not depend on CPU share (idle's RSS per socket) set NOISE_SENSITIVE = False.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from .launch import launched
from .scenarios.common import BUSY_MACHINE_PCT, RunOptions
from .targets import ServerSpec


def run_on_fresh_server(
    spec: ServerSpec,
    module: ModuleType,
    params: Any,
    opts: RunOptions,
    server_env: dict[str, str],
    log_dir: Path | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(scenario outcome, target facts) of the last attempt."""
    discarded: list[float] = []
    while True:
        quiet = opts.settle_machine()
        with launched(spec, opts.plan, server_env, log_dir) as target:
            outcome = module.run(target, params, opts)
        outcome["machine_quiet_before"] = quiet
        other = outcome.get("cpu", {}).get("other_cpu_pct") or 0.0
        sensitive = getattr(module, "NOISE_SENSITIVE", True)
        if not sensitive or other < BUSY_MACHINE_PCT or len(discarded) >= opts.retry_noisy:
            outcome["noisy_runs_discarded"] = discarded
            return outcome, target.facts
        discarded.append(other)
        print(
            f"benchmarks: {module.NAME} on {spec.name}: other processes used {other:.0f}% of a "
            "CPU; discarding the run and repeating it",
            file=sys.stderr,
        )
