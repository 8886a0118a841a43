"""Fixtures several integration test files share (the suite-wide ones: tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from fitiq_rt.meals.sqlite_store import SqliteStore


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    """An open SQLite store on a fresh file. test_postgres_store.py defines its own `store`,
    run on both databases."""
    opened = SqliteStore(tmp_path / "fitiq.sqlite3")
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()
