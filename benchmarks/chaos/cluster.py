"""Two (or more) `fitiq-rt serve` nodes on one PostgreSQL (through a cuttable proxy) and one
private Redis, and the load balancer in front of them, in miniature.

A node keeps its data directory and port across restarts, as a node behind a load balancer
would: same directory, same node name, so a restarted node takes back its own claims. Its log
goes to one file per incarnation (a pipe nobody drains would block it).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import trio

from ..launch import free_port, log_events, log_tail
from ..targets import REPO_ROOT

START_TIMEOUT = 30.0
WS_PATH = "/ws/meal-logs"


class NodeFailed(Exception):
    """A node did not start (the message carries the tail of its log)."""


class Node:
    """One `fitiq-rt serve` process that the run can kill, freeze, thaw and restart."""

    def __init__(self, name: str, data_dir: Path, env: Mapping[str, str]) -> None:
        self.name = name
        self.data_dir = data_dir
        self.port = free_port()
        self.env = dict(env)
        self.proc: subprocess.Popen[bytes] | None = None
        self.frozen = False
        self.incarnations: list[Path] = []

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_base(self) -> str:
        return f"ws://127.0.0.1:{self.port}{WS_PATH}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def serving(self) -> bool:
        """Running and not frozen: what a load balancer's health check would see."""
        return self.running and not self.frozen

    def start(self) -> None:
        """Start an incarnation and wait for `server.started` (blocking: run it in a thread)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.data_dir / f"serve-{len(self.incarnations) + 1}.log"
        self.incarnations.append(log_path)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("FITIQ_")},
            "FITIQ_HOST": "127.0.0.1",
            "FITIQ_PORT": str(self.port),
            "FITIQ_DATA_DIR": str(self.data_dir),
            "FITIQ_LOG_FORMAT": "json",
            "PYTHONPATH": str(REPO_ROOT),  # FITIQ_PROCESSOR=benchmarks.chaos.processor:…
            **self.env,
        }
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "fitiq_rt.cli", "serve"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        self.frozen = False
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise NodeFailed(f"node {self.name} exited {self.proc.returncode}:\n{self._tail()}")
            if self.events("server.started", current_only=True):
                return
            time.sleep(0.05)
        raise NodeFailed(f"node {self.name} did not start in {START_TIMEOUT:.0f}s:\n{self._tail()}")

    def kill(self) -> None:
        """SIGKILL: nothing flushed, nothing drained (a thawed process first, so it can die)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.frozen = False

    def freeze(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)
        self.frozen = False

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM (the graceful drain), SIGKILL if it hangs; the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGCONT)
                self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def events(
        self, name: str | None = None, *, current_only: bool = False
    ) -> list[dict[str, Any]]:
        """The JSON log events of every incarnation (or only the running one), in order."""
        paths = self.incarnations[-1:] if current_only else self.incarnations
        found: list[dict[str, Any]] = []
        for path in paths:
            with contextlib.suppress(OSError):
                found.extend(log_events(path, name))
        return found

    def _tail(self, lines: int = 20) -> str:
        return log_tail(self.incarnations[-1], lines) if self.incarnations else "(no log)"


class Cluster:
    """The nodes, and the choice a load balancer makes for each new connection."""

    def __init__(self, nodes: list[Node]) -> None:
        self.nodes = nodes

    def pick(self, preferred: int) -> Node:
        """The preferred node when it is serving, else the next one that is (else the
        preferred one anyway: the caller's connect fails and it retries)."""
        count = len(self.nodes)
        for step in range(count):
            node = self.nodes[(preferred + step) % count]
            if node.serving:
                return node
        return self.nodes[preferred % count]

    async def start_all(self) -> None:
        async with trio.open_nursery() as nursery:  # both migrate at once: the lock decides
            for node in self.nodes:
                nursery.start_soon(trio.to_thread.run_sync, node.start)

    def stop_all(self) -> dict[str, int | None]:
        return {node.name: node.stop() for node in self.nodes}
