"""Every way `fitiq-rt serve` can fail to start is one line naming the problem, with exit
status 2 for a bad setting value and 1 for an environment problem, and no traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import REPO_ROOT, SECRET


def _cli(
    tmp_path: Path, *argv: str, without: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """`fitiq-rt ARGV` in tmp_path on the test defaults, optionally as if the module `without`
    (an optional extra's) were not installed."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("FITIQ_")}
    base.update(
        {
            "FITIQ_PORT": "0",
            "FITIQ_DATA_DIR": str(tmp_path / "data"),
            "FITIQ_JWT_SECRET": SECRET,
            "FITIQ_LOG_FORMAT": "json",
            "PYTHONPATH": str(REPO_ROOT / "src"),
            **env,
        }
    )
    block = f"sys.modules[{without!r}] = None; " if without else ""
    code = f"import sys; {block}from fitiq_rt.cli import main; sys.exit(main({list(argv)!r}))"
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=base,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _serve(tmp_path: Path, *flags: str, **env: str) -> subprocess.CompletedProcess[str]:
    return _cli(tmp_path, "serve", *flags, **env)


def _one_line(done: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("fitiq-rt: ")]
    assert len(lines) == 1, done.stderr
    return lines[0]


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_port_in_use(tmp_path: Path, busy_port: int) -> None:
    done = _serve(tmp_path, FITIQ_PORT=str(busy_port))
    assert done.returncode == 1
    assert _one_line(done) == (
        f"fitiq-rt: cannot listen on 127.0.0.1:{busy_port}: the address is already in use "
        "(another server? FITIQ_PORT / --port)"
    )


def test_a_host_that_does_not_resolve(tmp_path: Path) -> None:
    done = _serve(tmp_path, FITIQ_HOST="no-such-host.invalid")
    assert done.returncode == 1
    assert "the host 'no-such-host.invalid' does not resolve (FITIQ_HOST)" in _one_line(done)


def test_a_host_that_is_not_this_machine(tmp_path: Path) -> None:
    done = _serve(tmp_path, FITIQ_HOST="192.0.2.1")  # TEST-NET-1: never a local address
    assert done.returncode == 1
    assert "not an address of this machine (FITIQ_HOST / --host)" in _one_line(done)


def test_a_processor_that_cannot_be_loaded(tmp_path: Path) -> None:
    done = _serve(tmp_path, FITIQ_PROCESSOR="nosuch:thing")
    assert done.returncode == 2
    assert _one_line(done) == "fitiq-rt: FITIQ_PROCESSOR: no module named 'nosuch' (nosuch:thing)"


def test_a_data_directory_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("not a directory")
    done = _serve(tmp_path, FITIQ_JWT_SECRET="")  # the secret file would go there
    assert done.returncode == 1
    assert _one_line(done).startswith(
        f"fitiq-rt: cannot use the data directory {(tmp_path / 'data').resolve()} (FITIQ_DATA_DIR)"
    )


def test_a_data_directory_that_cannot_be_created(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("a file where a directory should be")
    done = _serve(tmp_path, FITIQ_DATA_DIR=str(tmp_path / "blocker" / "data"))
    assert done.returncode == 1
    assert "(FITIQ_DATA_DIR)" in _one_line(done)


def test_an_unreachable_database_names_it_without_the_password(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"postgresql://fitiq:hunter2@127.0.0.1:{port}/fitiq"
    done = _serve(tmp_path, FITIQ_DATABASE_URL=url)
    assert done.returncode == 1
    line = _one_line(done)
    assert line.startswith(
        f"fitiq-rt: cannot open the database postgresql://fitiq:***@127.0.0.1:{port}/fitiq "
        "(FITIQ_DATABASE_URL): "
    )
    assert "hunter2" not in done.stderr


def test_a_bad_flag_value_names_the_flag(tmp_path: Path) -> None:
    done = _serve(tmp_path, "--port", "abc")
    assert done.returncode == 2
    assert _one_line(done) == "fitiq-rt: FITIQ_PORT (--port) must be an integer, got 'abc'"


def test_postgres_without_its_extra_names_the_extra(tmp_path: Path) -> None:
    url = "postgresql://fitiq@127.0.0.1:5432/fitiq"
    done = _cli(tmp_path, "serve", without="psycopg", FITIQ_DATABASE_URL=url)
    assert done.returncode == 1
    assert _one_line(done) == (
        "fitiq-rt: a postgresql:// FITIQ_DATABASE_URL needs the postgres extra: "
        "pip install 'fitiq_rt[postgres]'"
    )


def test_redis_without_its_extra_names_the_extra(tmp_path: Path) -> None:
    url = "redis://127.0.0.1:6379/0"
    done = _cli(tmp_path, "serve", without="coredis", FITIQ_REDIS_URL=url)
    assert done.returncode == 1
    assert _one_line(done) == (
        "fitiq-rt: FITIQ_REDIS_URL needs the redis extra: pip install 'fitiq_rt[redis]'"
    )


def test_the_html_report_without_its_extra_names_the_extra(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text('{"event":"server.started","timestamp":"2026-12-01T10:00:00Z","level":"info"}\n')
    html = str(tmp_path / "r.html")
    done = _cli(tmp_path, "logs", "report", str(log), "--html", html, without="matplotlib")
    assert done.returncode == 1
    hint = "the HTML report's charts needs the report extra: pip install 'fitiq_rt[report]'"
    assert done.stderr.strip().splitlines()[-1].endswith(f"--html: {hint}")


def _apns_env(key_file: Path) -> dict[str, str]:
    return {
        "FITIQ_APNS_KEY_FILE": str(key_file),
        "FITIQ_APNS_KEY_ID": "ABC123DEFG",
        "FITIQ_APNS_TEAM_ID": "TEAM123456",
        "FITIQ_APNS_TOPIC": "com.example.fitiq",
    }


def test_a_missing_apns_key_file(tmp_path: Path) -> None:
    missing = tmp_path / "AuthKey.p8"
    done = _serve(tmp_path, **_apns_env(missing))
    assert done.returncode == 1
    assert _one_line(done) == (
        f"fitiq-rt: FITIQ_APNS_KEY_FILE: cannot read {missing}: No such file or directory"
    )


def test_an_apns_key_file_that_is_not_a_p256_key(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    not_pem = tmp_path / "garbage.p8"
    not_pem.write_text("-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n")
    other_curve = tmp_path / "p384.p8"
    other_curve.write_bytes(
        ec.generate_private_key(ec.SECP384R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    for key_file in (not_pem, other_curve):
        done = _serve(tmp_path, **_apns_env(key_file))
        assert done.returncode == 2
        assert _one_line(done) == (
            f"fitiq-rt: FITIQ_APNS_KEY_FILE: {key_file} is not an APNs auth key "
            "(a P-256 private key in PEM, as the .p8 file Apple hands out)"
        )


def test_an_apns_key_file_without_its_ids(tmp_path: Path) -> None:
    done = _serve(tmp_path, FITIQ_APNS_KEY_FILE=str(tmp_path / "k.p8"), FITIQ_APNS_TOPIC="x")
    assert done.returncode == 2
    assert _one_line(done) == (
        "fitiq-rt: FITIQ_APNS_KEY_FILE is set, so FITIQ_APNS_KEY_ID, FITIQ_APNS_TEAM_ID must be too"
    )


@pytest.mark.parametrize("module", ["httpx", "cryptography"])
def test_push_without_its_extra_names_the_extra(tmp_path: Path, module: str) -> None:
    done = _cli(tmp_path, "serve", without=module, **_apns_env(tmp_path / "k.p8"))
    assert done.returncode == 1
    assert _one_line(done) == (
        "fitiq-rt: FITIQ_APNS_KEY_FILE (push) needs the push extra: pip install 'fitiq_rt[push]'"
    )
