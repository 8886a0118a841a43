"""Process and machine numbers from /proc: server RSS and CPU, system CPU, machine facts.

RSS and CPU are summed over the server's process tree, so a server started through a wrapper
(`sh -c`, `npm start`) is still measured, not the wrapper alone.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants that are alive now."""
    children = _children_map()
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, ()))
    return tree


def rss_kib(pid: int) -> int:
    """Resident set size of the process tree in KiB (VmRSS from /proc/<pid>/status)."""
    total = 0
    for member in process_tree(pid):
        try:
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
                    break
        except OSError:
            continue
    return total


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process tree (live members only), in seconds."""
    ticks = 0
    for member in process_tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / CLOCK_TICKS


def system_busy_seconds() -> float:
    """CPU time the whole machine spent in processes (all CPUs), from /proc/stat's first line."""
    # user nice system idle iowait irq softirq steal: irq and softirq are left out because
    # loopback networking for our own load lands there, attributed to no process.
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system = fields[0], fields[1], fields[2]
    return (user + nice + system) / CLOCK_TICKS


@dataclass
class CpuWindow:
    """CPU used by the server and by the whole machine between `open` and `close`.

    Why: on a shared 2-core box another process's work skews every number; the window reports
    how much CPU went to neither the server nor our client, so a noisy run is visible.
    """

    pid: int | None
    wall0: float = 0.0
    server0: float = 0.0
    system0: float = 0.0
    stopped: tuple[float, float, float] | None = None

    def open(self) -> CpuWindow:
        self.wall0 = time.monotonic()
        self.server0 = cpu_seconds(self.pid) if self.pid else 0.0
        self.system0 = system_busy_seconds()
        return self

    def stop(self) -> None:
        """Sample the end now (the load finished); `close` may come after the bookkeeping."""
        server = cpu_seconds(self.pid) if self.pid else 0.0
        self.stopped = (time.monotonic(), server, system_busy_seconds())

    def close(self, client_cpu_seconds: float | None) -> dict[str, float | None]:
        """Server CPU % over the window; `other_cpu_pct` needs the client's CPU seconds."""
        if self.stopped is None:
            self.stop()
        assert self.stopped is not None
        end, server_end, system_end = self.stopped
        wall = max(end - self.wall0, 1e-9)
        server = (server_end - self.server0) if self.pid else None
        other = None  # without the server's pid its CPU cannot be told apart from others'
        if client_cpu_seconds is not None and self.pid:
            busy = system_end - self.system0 - (server or 0.0) - client_cpu_seconds
            other = round(max(busy, 0.0) * 100 / wall, 1)
        return {
            "wall_seconds": round(wall, 3),
            "server_cpu_pct": None if server is None else round(100 * server / wall, 1),
            "client_cpu_pct": (
                None if client_cpu_seconds is None else round(100 * client_cpu_seconds / wall, 1)
            ),
            "other_cpu_pct": other,
        }


def wait_quiet(max_wait: float, busy_cores: float = 0.25, sample: float = 1.0) -> dict[str, Any]:
    """Wait (up to `max_wait` s) until other processes use under `busy_cores` CPUs.

    Why: on a box shared with other people's test runs, starting a measurement while something
    else burns a core measures that something. Returns what was seen, for the record.
    """
    started = time.monotonic()
    while True:
        before = system_busy_seconds()
        time.sleep(sample)
        busy = (system_busy_seconds() - before) / sample
        waited = time.monotonic() - started
        if busy < busy_cores or waited >= max_wait:
            return {"busy_cores": round(busy, 2), "waited_seconds": round(waited, 1)}


def machine_facts() -> dict[str, object]:
    cpu_model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kib = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    except OSError:
        pass
    try:
        loadavg = Path("/proc/loadavg").read_text().split()[:3]
    except OSError:
        loadavg = []
    return {
        "cpu_model": cpu_model,
        "nproc": os.cpu_count(),
        "usable_cpus": sorted(os.sched_getaffinity(0)),
        "mem_total_mib": mem_kib // 1024,
        "kernel": platform.release(),
        "os": platform.platform(),
        "loadavg_at_start": [float(x) for x in loadavg],
    }
