"""Real servers for tests: in-process Hypercorn on a free port, or a `fitiq-rt serve` subprocess.

Both are the production code path (Hypercorn, the ASGI app, the store); only the port, the data
directory and the database are the test's. `database_url=None` is the default SQLite file in the
data directory; a `postgresql://` URL (from `fresh_database()`, or the `store_backend` fixture in
tests/conftest.py) becomes FITIQ_DATABASE_URL.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
import httpx
import orjson
import trio
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.chaos import services
from fitiq_rt.app import Services, build_services
from fitiq_rt.auth import mint_token
from fitiq_rt.config import Settings, load_settings
from fitiq_rt.server import serve

REPO_ROOT = Path(__file__).resolve().parent.parent
SECRET = "test-secret-that-is-long-enough-for-hs256-0123456789"
POSTGRES_ADMIN_URL = os.environ.get(
    "FITIQ_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


@contextmanager
def fresh_database() -> Iterator[str]:
    """A fresh, empty `fitiq_test_<random>` database on the test server, dropped afterwards
    (benchmarks/chaos/services.py: the fault runs of `python -m benchmarks chaos` use it too)."""
    with services.fresh_database(POSTGRES_ADMIN_URL) as url:
        yield url


def make_settings(data_dir: Path, database_url: str | None = None, **overrides: str) -> Settings:
    env = {
        "FITIQ_PORT": "0",
        "FITIQ_DATA_DIR": str(data_dir),
        "FITIQ_JWT_SECRET": SECRET,
        "FITIQ_LOG_FORMAT": "json",
    }
    if database_url is not None:
        env["FITIQ_DATABASE_URL"] = database_url
    env.update(overrides)
    return load_settings(env)


def token_for(user_id: str, *, admin: bool = False, ttl: float = 3600, **extra: Any) -> str:
    return mint_token(SECRET, user_id, ttl=ttl, admin=admin, extra=extra or None)


@attrs.define
class InProcessServer:
    port: int
    settings: Settings
    services: Services
    stop: trio.Event

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def ws_url(self, token: str | None = None, **query: Any) -> str:
        params = dict(query)
        if token is not None:
            params = {"token": token, **params}
        tail = "&".join(f"{k}={v}" for k, v in params.items())
        return f"ws://127.0.0.1:{self.port}/ws/meal-logs" + (f"?{tail}" if tail else "")


async def scraped(server: InProcessServer, sample: str, **labels: str) -> float:
    """One sample of the server's `GET /metrics`, read as Prometheus reads it (0 if absent)."""
    async with httpx.AsyncClient() as http:
        text = (await http.get(server.url("/metrics"))).text
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == sample and found.labels == labels:
                return float(found.value)
    return 0.0


async def start_in_process(
    nursery: trio.Nursery,
    data_dir: Path,
    processor: Any = None,
    *,
    database_url: str | None = None,
    **overrides: str,
) -> InProcessServer:
    settings = make_settings(data_dir, database_url, **overrides)
    services = build_services(settings, processor=processor)
    stop = trio.Event()

    async def run(task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        await serve(settings, stop=stop, services=services, task_status=task_status)

    port = await nursery.start(run)
    return InProcessServer(port=port, settings=settings, services=services, stop=stop)


class SubprocessServer:
    """`fitiq-rt serve` in its own process; stderr is collected line by line as JSON."""

    def __init__(
        self,
        data_dir: Path,
        env: Mapping[str, str] | None = None,
        port: int = 0,
        *,
        database_url: str | None = None,
    ) -> None:
        self.data_dir = data_dir
        inherited = {k: v for k, v in os.environ.items() if k != "FITIQ_DATABASE_URL"}
        self.env = {
            **inherited,  # not the shell's FITIQ_DATABASE_URL: the test picks the database
            **({"FITIQ_DATABASE_URL": database_url} if database_url is not None else {}),
            "FITIQ_PORT": str(port),
            "FITIQ_DATA_DIR": str(data_dir),
            "FITIQ_JWT_SECRET": SECRET,
            "FITIQ_LOG_FORMAT": "json",
            "FITIQ_LOG_LEVEL": "debug",
            "PYTHONPATH": str(REPO_ROOT),  # FITIQ_PROCESSOR=tests.processors:... imports
            **(env or {}),
        }
        self.lines: list[str] = []
        self.port: int | None = None
        self._started = threading.Event()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fitiq_rt.cli", "serve"],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._started.wait(20):
            self.kill()
            raise RuntimeError("server did not start:\n" + "\n".join(self.lines[-20:]))

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip("\n")
            self.lines.append(line)
            if self.port is None and '"server.started"' in line:
                self.port = orjson.loads(line)["port"]
                self._started.set()

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        out = []
        for line in list(self.lines):
            try:
                event = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if name is None or event.get("event") == name:
                out.append(event)
        return out

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def ws_url(self, token: str, **query: Any) -> str:
        tail = "".join(f"&{k}={v}" for k, v in query.items())
        return f"ws://127.0.0.1:{self.port}/ws/meal-logs?token={token}{tail}"

    def terminate(self, timeout: float = 20) -> int:
        self.proc.terminate()
        code = self.proc.wait(timeout)
        self._reader.join(5)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._reader.join(5)

    def wait_for_event(
        self, name: str, count: int = 1, timeout: float = 10
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.events(name)
            if len(found) >= count:
                return found
            time.sleep(0.02)
        raise AssertionError(f"{count} x {name} not logged within {timeout}s")


def running_subprocess(
    data_dir: Path, database_url: str | None = None, **env: str
) -> Iterator[SubprocessServer]:
    server = SubprocessServer(data_dir, env, database_url=database_url)
    try:
        yield server
    finally:
        server.kill()
