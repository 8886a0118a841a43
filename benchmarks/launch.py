"""Start the server under test (or attach to a deployment) and stop it afterwards.

A started server gets a free port, a generated secret, a temporary data directory and CPU 0 of
the usable set; the load generator takes the other CPUs, so server and client never fight for
one core on a 2-core machine. Its log goes to a file (a pipe nobody drains would block it).
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from .targets import ServerSpec
from .tokens import TokenSource, generate_secret
from .wsclient import Endpoint

HEALTH_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0


class LaunchError(Exception):
    """The server did not come up; the message carries the tail of its log."""


@dataclass(frozen=True)
class CpuPlan:
    """Which CPU the server gets and which the client processes get (None: no pinning)."""

    server: int | None
    client: frozenset[int] | None

    @classmethod
    def make(cls, pin: bool) -> CpuPlan:
        usable = sorted(os.sched_getaffinity(0))
        if not pin or len(usable) < 2:
            return cls(None, None)
        return cls(usable[0], frozenset(usable[1:]))

    def describe(self) -> dict[str, Any]:
        return {
            "server_cpu": self.server,
            "client_cpus": sorted(self.client) if self.client is not None else None,
        }


@dataclass
class Target:
    """A running server the scenarios talk to."""

    name: str
    base_url: str
    tokens: TokenSource
    pid: int | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    log_path: Path | None = None
    data_dir: Path | None = None  # a started server's temporary data directory

    @property
    def endpoint(self) -> Endpoint:
        return Endpoint.from_url(self.base_url)


def raise_fd_limit() -> int:
    """Lift the soft open-files limit to the hard one (inherited by the server and clients)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def log_tail(path: Path, lines: int = 25) -> str:
    """The last lines of a server log, for an error message ("(no log)" if unreadable)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def log_events(path: Path, name: str | None = None) -> Iterator[dict[str, Any]]:
    """The JSON events of a server log (only `name`'s, if given), skipping what is not JSON.

    Raises OSError when the file cannot be read. A named event is pre-filtered on its bytes, so
    scanning a large debug log for a rare event stays cheap.
    """
    marker = orjson.dumps(name) if name is not None else None
    for line in path.read_bytes().splitlines():
        if marker is not None and marker not in line:
            continue
        try:
            event = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(event, dict) and (name is None or event.get("event") == name):
            yield event


def wait_healthy(
    base_url: str,
    proc: subprocess.Popen[bytes] | None,
    log: Path | None,
    timeout: float = HEALTH_TIMEOUT,
) -> float:
    """Poll /healthz until 200; returns seconds waited. Fails fast if the process exits."""
    started = time.monotonic()
    with httpx.Client(timeout=2.0) as client:
        while True:
            if proc is not None and proc.poll() is not None:
                tail = log_tail(log) if log else ""
                raise LaunchError(f"server exited with {proc.returncode} before /healthz:\n{tail}")
            with contextlib.suppress(httpx.HTTPError):
                if client.get(f"{base_url}/healthz").status_code == 200:
                    return time.monotonic() - started
            if time.monotonic() - started > timeout:
                tail = log_tail(log) if log else ""
                raise LaunchError(f"/healthz not 200 after {timeout:.0f}s:\n{tail}")
            time.sleep(0.05)


@contextlib.contextmanager
def launched(
    spec: ServerSpec,
    plan: CpuPlan,
    extra_env: dict[str, str],
    log_dir: Path | None = None,
    *,
    health_timeout: float = HEALTH_TIMEOUT,
) -> Iterator[Target]:
    """Run `spec` on a free port until the block ends; stops it with SIGTERM (then SIGKILL).

    The server's log lives in its temporary data directory unless `log_dir` keeps it.
    """
    port = free_port()
    secret = generate_secret()
    with tempfile.TemporaryDirectory(prefix=f"bench-{spec.name}-") as data_dir:
        env = {
            **os.environ,
            **spec.env,
            "FITIQ_HOST": "127.0.0.1",
            "FITIQ_PORT": str(port),
            "FITIQ_JWT_SECRET": secret,
            **extra_env,
        }
        if spec.needs_data_dir:
            env.setdefault("FITIQ_DATA_DIR", data_dir)
        log_dir = log_dir or Path(data_dir)
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / f"{spec.name}-{port}.log"
        cpu = plan.server

        def pin() -> None:  # runs in the child before exec: every thread it starts inherits it
            if cpu is not None:
                os.sched_setaffinity(0, {cpu})

        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                spec.argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                preexec_fn=pin,
                start_new_session=True,
            )
        base_url = f"http://127.0.0.1:{port}"
        target = Target(
            name=spec.name,
            base_url=base_url,
            tokens=TokenSource(secret=secret),
            pid=proc.pid,
            log_path=log_path,
            data_dir=Path(env.get("FITIQ_DATA_DIR", data_dir)),
            facts={
                "target": spec.name,
                "command": spec.argv,
                "versions": spec.versions,
                "server_env": {k: v for k, v in extra_env.items() if "SECRET" not in k},
                "pinned_cpu": cpu,
            },
        )
        try:
            waited = wait_healthy(base_url, proc, log_path, health_timeout)
            target.facts["startup_seconds"] = round(waited, 2)
            yield target
        finally:
            target.facts["exit_code"] = stop(proc)


def stop(proc: subprocess.Popen[bytes]) -> int | None:
    """SIGTERM (graceful drain), then SIGKILL to the server's own process group if it hangs."""
    if proc.poll() is not None:
        return proc.returncode
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the group start_new_session gave this server
        return proc.wait(10)


def attached(url: str, tokens: TokenSource, pid: int | None) -> Target:
    """A deployment: nothing to start; RSS/CPU only when its pid is local and given."""
    base = url.rstrip("/")
    wait_healthy(base, None, None)
    return Target(
        name=Endpoint.from_url(base).host_header,
        base_url=base,
        tokens=tokens,
        pid=pid,
        facts={"target": "url", "url": base, "server_pid": pid},
    )
