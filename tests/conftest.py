"""Shared fixtures: real servers (in-process and subprocess) on free ports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import SubprocessServer, running_subprocess


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def subprocess_server(data_dir: Path) -> Iterator[SubprocessServer]:
    yield from running_subprocess(data_dir)
