"""`fitiq-rt listen` as a person runs it: notifications alone on stdout, diagnostics on stderr
with their reason, and Ctrl-C as a clean exit."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson

from tests.servers import REPO_ROOT, SECRET, SubprocessServer, token_for


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _listen(url: str, token: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "fitiq_rt.cli", "listen", "--json", "--token", token, "--url", url],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _stop(proc: subprocess.Popen[bytes]) -> tuple[int, str, str]:
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    return proc.returncode, out.decode(), err.decode()


def test_a_refused_connection_is_explained_on_stderr_and_ctrl_c_exits_cleanly() -> None:
    url = f"ws://127.0.0.1:{_free_port()}/ws/meal-logs"  # nothing listens there
    proc = _listen(url, token_for("nobody"))
    time.sleep(2.0)  # a few retries with backoff
    code, out, err = _stop(proc)
    assert code == 0, err
    assert out == ""  # stdout is for notifications only
    assert "Traceback" not in err
    failures = [orjson.loads(line) for line in err.splitlines() if "client.connect_failed" in line]
    assert failures, err
    assert all(f["error"] and "Error" in f["error"] for f in failures)  # the reason, named
    assert all(f["retry_in"] > 0 for f in failures)


def test_connected_is_said_on_stderr_and_notifications_come_on_stdout(data_dir: Path) -> None:
    server = SubprocessServer(data_dir)
    try:
        assert server.port is not None
        proc = _listen(f"ws://127.0.0.1:{server.port}/ws/meal-logs", token_for("lena"))
        deadline = time.monotonic() + 20
        while not server.events("ws.connected") and time.monotonic() < deadline:
            time.sleep(0.05)
        response = httpx.post(
            server.url("/api/v1/meal-logs/natural"),
            json={"raw_input": "2 eggs"},
            headers={"Authorization": f"Bearer {token_for('lena')}"},
        )
        assert response.status_code == 201
        server.wait_for_event("notification.delivered")
        time.sleep(0.3)
        code, out, err = _stop(proc)
        assert code == 0, err
        frames = [orjson.loads(line) for line in out.splitlines()]
        assert [f["type"] for f in frames] == ["meal_log.completed"]
        assert any('"client.connected"' in line for line in err.splitlines())
        assert "Traceback" not in err
    finally:
        server.kill()


def test_a_token_command_refreshes_the_socket_instead_of_a_4001(data_dir: Path) -> None:
    """Tokens of 4 s, warned 3 s ahead: listen fetches new ones and stays on one socket."""
    server = SubprocessServer(data_dir, {"FITIQ_TOKEN_WARNING": "3"})
    try:
        assert server.port is not None
        command = f"{sys.executable} -m fitiq_rt.cli token lena --ttl 4"
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "fitiq_rt.cli",
                "listen",
                "--json",
                "--token-command",
                command,
                "--url",
                f"ws://127.0.0.1:{server.port}/ws/meal-logs",
            ],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "FITIQ_JWT_SECRET": SECRET},
        )
        time.sleep(7.0)  # the first token's exp and at least one more pass by meanwhile
        code, out, err = _stop(proc)
        assert (code, out) == (0, ""), err
        lines = err.splitlines()
        assert sum('"client.connected"' in line for line in lines) == 1, err
        assert sum('"client.token_refreshed"' in line for line in lines) >= 2, err
        assert server.events("ws.token_refreshed")
        expired = [e for e in server.events("ws.disconnected") if e["code"] == 4001]
        assert expired == []
        assert "eyJ" not in str(server.events()) + err  # no JWT in any log line
    finally:
        server.kill()


def test_an_http_url_is_one_clear_line() -> None:
    proc = _listen("http://127.0.0.1:8080/ws/meal-logs", token_for("nobody"))
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 2
    assert err.decode().strip().splitlines() == [
        "fitiq-rt: --url must start with ws:// or wss://, got 'http' "
        "(e.g. ws://127.0.0.1:8080/ws/meal-logs)"
    ]
    assert out == b""
