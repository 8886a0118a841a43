"""`fitiq-rt token` mints with the secret the server uses, or says where it looked."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.servers import REPO_ROOT, SubprocessServer


def _token(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FITIQ_")}
    env["PYTHONPATH"] = str(REPO_ROOT / "src")
    return subprocess.run(
        [sys.executable, "-m", "fitiq_rt.cli", "token", "alice", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_without_a_secret_it_says_where_it_looked_and_creates_nothing(tmp_path: Path) -> None:
    done = _token(tmp_path)
    assert done.returncode == 1
    expected = (tmp_path / "fitiq-data" / "jwt-secret").resolve()
    assert done.stderr.splitlines() == [
        f"fitiq-rt token: no token secret: FITIQ_JWT_SECRET is unset and {expected} does not "
        "exist (start the server first, or point at its data directory with --data-dir DIR)"
    ]
    assert done.stdout == ""
    assert not (tmp_path / "fitiq-data").exists()  # no secret that no server would know


def test_a_token_minted_from_elsewhere_with_data_dir_is_accepted(tmp_path: Path) -> None:
    data_dir = tmp_path / "server-data"
    server = SubprocessServer(data_dir, env={"FITIQ_JWT_SECRET": ""})  # the generated secret
    try:
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        done = _token(elsewhere, "--data-dir", str(data_dir))
        assert done.returncode == 0, done.stderr
        response = httpx.get(
            server.url("/api/v1/meal-logs"),
            headers={"Authorization": f"Bearer {done.stdout.strip()}"},
        )
        assert response.status_code == 200, response.text
    finally:
        server.kill()
