"""Shared fixtures: real servers (in-process and subprocess) on free ports, on either store."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import psycopg
import pytest
from psycopg import sql

from benchmarks.chaos.services import RedisProcess
from fitiq_rt.meals.postgres_store import migrate
from tests.servers import POSTGRES_ADMIN_URL, SubprocessServer, fresh_database, running_subprocess


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def database() -> Iterator[str]:
    """A PostgreSQL database of its own for one multi-node test, dropped afterwards."""
    with fresh_database() as url:
        yield url


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisProcess]:
    """A private redis-server on a free port, so killing it never disturbs another test."""
    server = RedisProcess(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()


def pytest_collection_finish(session: pytest.Session) -> None:
    """Say in one line what is missing for the selected tests, instead of many failures.

    Tests marked `postgres` need the server at FITIQ_TEST_POSTGRES_URL and tests marked `redis`
    the `redis-server` binary; CI provides both (.ci/run). Locally, `-m "not postgres and not
    redis"` deselects them on purpose; they never skip by themselves.
    """
    marks = {mark.name for item in session.items for mark in item.iter_markers()}
    if "postgres" in marks:
        try:
            psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=3).close()
        except psycopg.OperationalError:
            pytest.exit(
                f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL} (.ci/run starts it); "
                "to run without it: pytest -m 'not postgres and not redis'",
                returncode=1,
            )
    if "redis" in marks and shutil.which("redis-server") is None:
        pytest.exit(
            "the redis-server binary is not installed (.ci/run needs it too); "
            "to run without it: pytest -m 'not redis'",
            returncode=1,
        )


def _postgres_down(error: psycopg.Error) -> NoReturn:
    pytest.fail(f"PostgreSQL at {POSTGRES_ADMIN_URL} is unreachable (CI starts it): {error}")


@pytest.fixture(scope="session")
def server_database() -> Iterator[str]:
    """One `fitiq_test_<random>` database for the session's server tests, migrated once with
    the production migrations and dropped at the end; `store_backend` empties it per test."""
    try:
        with fresh_database() as url:
            with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
                migrate(conn)
            yield url
    except psycopg.OperationalError as error:
        _postgres_down(error)


def empty_tables(url: str) -> None:
    """TRUNCATE every table of the schema except `schema_version`: the state of a database that
    was just migrated. Listed from the catalog, so a table added by a later migration is emptied
    too. A lock still held by an earlier test's server fails the test instead of hanging it."""
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        conn.execute("SET lock_timeout = '5s'")
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT tablename FROM pg_tables "
                "WHERE schemaname = current_schema() AND tablename <> 'schema_version'"
            )
        ]
        if tables:
            conn.execute(
                sql.SQL("TRUNCATE {}").format(sql.SQL(", ").join(map(sql.Identifier, tables)))
            )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_backend(request: pytest.FixtureRequest) -> str | None:
    """The FITIQ_DATABASE_URL a server-starting test runs on; every such test runs on both.

    - `sqlite`: None, the default SQLite file in the test's own data directory;
    - `postgres`: the session's PostgreSQL database (`server_database`), emptied before the test
      (every table truncated, the schema kept), so each test starts as on a freshly migrated
      database and nothing a previous test or a killed server left behind is visible.

    Why truncate rather than CREATE DATABASE per test: measured on this machine, a create +
    drop cycle (`TEMPLATE template0`) costs 180-300 ms and the server's migration at start
    another ~40 ms, i.e. ~13 s more for the 54 server tests; the TRUNCATE costs ~20 ms. Nodes
    migrating an empty database at start are covered by test_postgres_store and test_scale_out.

    Design: a test asks for this fixture by name and hands the value on explicitly,
    `start_in_process(..., database_url=store_backend)` or `SubprocessServer(...,
    database_url=store_backend)`, so reading a test tells which database its servers use, and a
    server started without it is visibly SQLite-only. (An autouse fixture setting
    FITIQ_DATABASE_URL in the environment would reach subprocesses but not the settings built
    in-process, and would parametrise tests that start no server; folding the URL into
    `data_dir` would hide it in a value that reads as a path.)

    PostgreSQL down is a failure, not a skip: CI starts it (`.ci/run`), and a skip would hide a
    broken PostgreSQL path. `-m "not postgres"` deselects these cases deliberately.
    """
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("server_database")
    try:
        empty_tables(url)
    except psycopg.OperationalError as error:
        _postgres_down(error)
    return url


@pytest.fixture
def subprocess_server(data_dir: Path, store_backend: str | None) -> Iterator[SubprocessServer]:
    yield from running_subprocess(data_dir, store_backend)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def module_backend(request: pytest.FixtureRequest) -> str:
    """The store a module-wide server runs on (both, like every server test: see store_backend)."""
    return str(request.param)


@pytest.fixture(scope="module")
def module_server(
    module_backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SubprocessServer]:
    """One `fitiq-rt serve` for a whole module (the fuzzers), on a clean store."""
    database_url = None
    if module_backend == "postgres":
        database_url = request.getfixturevalue("server_database")
        empty_tables(database_url)
    server = SubprocessServer(tmp_path_factory.mktemp("module-server"), database_url=database_url)
    try:
        yield server
    finally:
        server.kill()
