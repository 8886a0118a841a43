"""The services a fault run breaks on purpose: a private redis-server and a cuttable PG link.

Both belong to the run alone, so killing Redis or cutting PostgreSQL never disturbs anyone else
using the machine's shared servers (6379, 5432).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import trio

from ..launch import free_port


@contextmanager
def fresh_database(admin_url: str, prefix: str = "fitiq_test") -> Iterator[str]:
    """Create `<prefix>_<random>` on the server of `admin_url`, yield its URL, drop it. Raises
    when PostgreSQL is down.

    From `template0` (measured here, create + drop in turn: 180-300 ms, against ~360 ms from the
    default template1); empty, so the store's migrations create the schema, as in production.
    `WITH (FORCE)` drops it even while a killed server's connection lingers.
    """
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    try:
        yield admin_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class RedisProcess:
    """A private redis-server the run can kill and start again on the same port."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        args = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "no", "--dir", str(self.workdir)]
        self.proc = subprocess.Popen(
            [binary, *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


class CuttableProxy:
    """A TCP proxy to PostgreSQL that can be cut and restored, as a network fault would."""

    def __init__(self, target_port: int = 5432) -> None:
        self.target_port = target_port
        self.up = True
        self._links: set[trio.CancelScope] = set()

    def url_for(self, database_url: str, port: int) -> str:
        """`database_url` (on 127.0.0.1:target_port) reached through this proxy on `port`."""
        return database_url.replace(f"127.0.0.1:{self.target_port}", f"127.0.0.1:{port}")

    async def serve(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        task_status.started(listeners[0].socket.getsockname()[1])
        await trio.serve_listeners(self._handle, listeners)

    async def _handle(self, client: trio.SocketStream) -> None:
        async with client:
            if not self.up:
                return
            with trio.CancelScope() as link:
                self._links.add(link)
                try:
                    upstream = await trio.open_tcp_stream("127.0.0.1", self.target_port)
                    async with upstream, trio.open_nursery() as nursery:
                        nursery.start_soon(_pipe, client, upstream)
                        nursery.start_soon(_pipe, upstream, client)
                finally:
                    self._links.discard(link)

    def cut(self) -> None:
        """Drop every open connection and refuse new ones."""
        self.up = False
        for link in list(self._links):
            link.cancel()

    def restore(self) -> None:
        self.up = True


async def _pipe(source: trio.SocketStream, sink: trio.SocketStream) -> None:
    try:
        async for chunk in source:
            await sink.send_all(chunk)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
