"""Named servers under test: fitiq_rt itself and the three peers in ../shared/peers.

Every server reads FITIQ_HOST, FITIQ_PORT and FITIQ_JWT_SECRET (and fitiq_rt FITIQ_DATA_DIR); the
launcher sets them, so a named target and `--server "any command"` are started the same way.
"""

from __future__ import annotations

import io
import json
import os
import shlex
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

FITIQ = "fitiq"
PEERS = ("starlette_uvicorn", "node_ws", "quart_trio_min")
KNOWN = (FITIQ, *PEERS)
REPO_ROOT = Path(__file__).resolve().parent.parent


class TargetUnavailable(Exception):
    """A named target cannot be started here (peers not built, node missing)."""


@dataclass
class ServerSpec:
    """How to start one server: argv, extra environment, and the versions worth recording."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    needs_data_dir: bool = False


def peers_dir() -> Path:
    """The peers' sources (read-only): $FITIQ_PEERS_DIR or ../shared/peers next to the repo."""
    return Path(os.environ.get("FITIQ_PEERS_DIR", REPO_ROOT.parent / "shared" / "peers"))


def peers_home() -> Path:
    """Where `setup.sh` built the peers' environment: $PEERS_HOME or /tmp/fitiq-peers."""
    return Path(os.environ.get("PEERS_HOME", "/tmp/fitiq-peers"))


def _dist_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _pinned(names: tuple[str, ...]) -> dict[str, str]:
    """Versions the peers' requirements.txt pins (what setup.sh installed)."""
    pins: dict[str, str] = {}
    try:
        lines = (peers_dir() / "requirements.txt").read_text().splitlines()
    except OSError:
        return pins
    for line in lines:
        name, _, version = line.partition("==")
        if name.strip().lower() in names:
            pins[name.strip().lower()] = version.strip()
    return pins


def _node_versions(home: Path) -> dict[str, str]:
    versions = {"node": "unknown", "ws": "unknown"}
    try:
        done = subprocess.run(["node", "--version"], capture_output=True, text=True, timeout=10)
        versions["node"] = done.stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    try:
        lock = json.loads((home / "node_ws" / "package-lock.json").read_text())
        versions["ws"] = lock["packages"]["node_modules/ws"]["version"]
    except (OSError, KeyError, ValueError):
        pass
    return versions


def export_source(ref: str) -> tuple[str, Path]:
    """`src/` of a commit, extracted once under the temp dir: (commit, path to put on PYTHONPATH).

    Why: other engineers edit this tree while a long compare runs; benchmarking a commit keeps
    the numbers tied to one known version of the server. Read-only for the repository.
    """
    done = subprocess.run(
        ["git", "rev-parse", "--verify", f"{ref}^{{commit}}"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise TargetUnavailable(f"--fitiq-ref {ref!r} is not a commit: {done.stderr.strip()}")
    commit = done.stdout.strip()
    root = Path(tempfile.gettempdir()) / "fitiq-bench-src" / commit
    if not (root / "src" / "fitiq_rt").is_dir():
        archive = subprocess.run(
            ["git", "archive", "--format=tar", commit, "src"],
            cwd=REPO_ROOT,
            capture_output=True,
            check=True,
        ).stdout
        root.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{commit[:12]}-", dir=root.parent))
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(staging, filter="data")
        try:
            staging.rename(root)
        except OSError:  # another run extracted it meanwhile
            pass
    return commit, root / "src"


def fitiq_spec(ref: str | None = None) -> ServerSpec:
    """fitiq_rt from the working tree, or from commit `ref` (see export_source)."""
    env = {"FITIQ_LOG_FORMAT": "json"}
    versions = {
        name: _dist_version(name)
        for name in ("fitiq_rt", "hypercorn", "quart", "quart-trio", "trio", "wsproto", "h11")
    }
    if ref:
        commit, source = export_source(ref)
        env["PYTHONPATH"] = str(source)
        versions["fitiq_rt_commit"] = commit
    else:
        versions["fitiq_rt_source"] = "working tree"
    return ServerSpec(
        name=FITIQ,
        argv=[sys.executable, "-m", "fitiq_rt.cli", "serve"],
        env=env,
        versions=versions,
        needs_data_dir=True,
    )


def peer_spec(name: str) -> ServerSpec:
    source, home = peers_dir(), peers_home()
    setup = f"bash {source / 'setup.sh'}"
    if name == "node_ws":
        script = home / "node_ws" / "server.js"
        if not (home / "node_ws" / "node_modules").is_dir():
            raise TargetUnavailable(f"node_ws is not built under {home}: run `{setup}`")
        return ServerSpec(name, ["node", str(script)], versions=_node_versions(home))
    python = home / "venv" / "bin" / "python"
    app = source / name / "app.py"
    if not python.exists():
        raise TargetUnavailable(f"the peers' venv is missing under {home}: run `{setup}`")
    if not app.exists():
        raise TargetUnavailable(f"{app} does not exist (set FITIQ_PEERS_DIR)")
    wanted: tuple[str, ...] = ("starlette", "uvicorn", "uvloop", "httptools", "websockets")
    if name == "quart_trio_min":
        wanted = ("quart", "quart-trio", "hypercorn", "trio", "wsproto", "h11")
    return ServerSpec(name, [str(python), str(app)], versions=_pinned(wanted))


def resolve_server(server: str, fitiq_ref: str | None = None) -> ServerSpec:
    """A named target, or any command line (it must read FITIQ_PORT and FITIQ_JWT_SECRET).

    `fitiq@REF` is fitiq_rt at commit REF beside the working tree's, so one compare measures
    before and after in interleaved runs.
    """
    if server == FITIQ:
        return fitiq_spec(fitiq_ref)
    if server.startswith(f"{FITIQ}@"):
        spec = fitiq_spec(server.partition("@")[2])
        spec.name = server
        return spec
    if server in PEERS:
        return peer_spec(server)
    argv = shlex.split(server)
    if not argv:
        raise TargetUnavailable("--server needs a target name or a command")
    return ServerSpec(name=Path(argv[0]).name, argv=argv, needs_data_dir=True)
