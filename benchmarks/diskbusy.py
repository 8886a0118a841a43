"""A second process keeping the server's disk busy: write a chunk, fsync it, again, until stopped.

Why: a durable store's tail depends on what else the disk is doing. This is the scripted form of
`while true; do dd if=/dev/zero of=F bs=1M count=64 conv=fsync; done` on the filesystem of the
server's data directory, so the "disk busy" e2e variant can be repeated by anyone. Run alone:
`python -m benchmarks.diskbusy DIR`; SIGTERM (or SIGINT) stops it, and it prints one JSON object
with what it wrote and how long its fsyncs took.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

import orjson

from .stats import summarize_ms

MIB = 1 << 20
FILE_NAME = "disk-busy.bin"
DEFAULT_CHUNK_MIB = 64  # `dd bs=1M count=64 conv=fsync`
DEFAULT_MIB_PER_SECOND = 0.0  # flat out, like the dd loop


def write_until_stopped(directory: Path, chunk_mib: int, mib_per_second: float) -> dict[str, Any]:
    """Loop: truncate, write `chunk_mib` MiB of zeros, fsync (dd's conv=fsync), until a signal.

    Paced to `mib_per_second` (0: flat out, the default, like the dd loop). Flat out it uses
    most of a CPU (the load generator's, see DiskBusy): its `cpu_pct` is reported so a run can
    tell its CPU from other people's load.
    """
    stop = False

    def on_signal(_sig: int, _frame: FrameType | None) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    block = bytes(MIB)
    path = directory / FILE_NAME
    fsync_ms: list[float] = []
    written = 0
    started = time.monotonic()
    try:
        while not stop:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                for _ in range(chunk_mib):
                    written += os.write(fd, block)
                    if stop:
                        break
                begun = time.perf_counter()
                os.fsync(fd)
                fsync_ms.append((time.perf_counter() - begun) * 1000)
            finally:
                os.close(fd)
            if mib_per_second > 0 and not stop:
                due = started + written / MIB / mib_per_second
                time.sleep(max(0.0, due - time.monotonic()))
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
    seconds = time.monotonic() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "cpu_pct": round((usage.ru_utime + usage.ru_stime) / max(seconds, 1e-9) * 100, 1),
        "directory": str(directory),
        "chunk_mib": chunk_mib,
        "paced_mib_per_second": mib_per_second,
        "seconds": round(seconds, 2),
        "mib_written": round(written / MIB, 1),
        "mib_per_second": round(written / MIB / max(seconds, 1e-9), 1),
        "fsyncs": len(fsync_ms),
        "fsync_ms": summarize_ms(fsync_ms),
    }


class DiskBusy:
    """The writer as a child process: started before a run, stopped (and its report read) after."""

    def __init__(
        self, directory: Path, chunk_mib: int, mib_per_second: float, cpus: frozenset[int] | None
    ) -> None:
        self.directory = directory
        self.chunk_mib = chunk_mib
        self.mib_per_second = mib_per_second
        self.cpus = cpus  # the client CPUs: the writer competes for the disk, not the server's CPU
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> DiskBusy:
        cpus = self.cpus

        def pin() -> None:
            if cpus:
                os.sched_setaffinity(0, cpus)

        self._proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "benchmarks.diskbusy", str(self.directory)),
                *("--chunk-mib", str(self.chunk_mib)),
                *("--mib-per-second", str(self.mib_per_second)),
            ],
            stdout=subprocess.PIPE,
            preexec_fn=pin,
            cwd=Path(__file__).resolve().parent.parent,
        )
        return self

    def stop(self) -> dict[str, Any]:
        """SIGTERM, then its JSON report (the chunk in flight is finished and fsynced first)."""
        proc = self._proc
        if proc is None:
            return {}
        self._proc = None
        proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
            return {"error": "the disk-busy writer did not stop within 60 s"}
        try:
            report: dict[str, Any] = orjson.loads(out)
        except orjson.JSONDecodeError:
            return {"error": f"the disk-busy writer exited with {proc.returncode}"}
        return report

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.diskbusy", description=__doc__)
    parser.add_argument("directory", type=Path, help="a directory on the disk to keep busy")
    parser.add_argument(
        "--chunk-mib", type=int, default=DEFAULT_CHUNK_MIB, help="MiB written per fsync"
    )
    parser.add_argument(
        "--mib-per-second",
        type=float,
        default=DEFAULT_MIB_PER_SECOND,
        help="pace (0: as fast as the disk takes it)",
    )
    args = parser.parse_args(argv)
    report = write_until_stopped(args.directory, max(1, args.chunk_mib), args.mib_per_second)
    sys.stdout.buffer.write(orjson.dumps(report) + b"\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
