"""Processes: spawn one pinned to a CPU set, time it to its first 200, read its CPU and memory
from /proc (summed over the process and its descendants, for `--workers N`), stop it.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
READY_TIMEOUT_S = 30.0
POLL_S = 0.01


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    """A spawned process and what it answers on."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def spawn(
    name: str,
    argv: Sequence[str],
    port: int,
    env: Mapping[str, str],
    cpus: Iterable[int] | None,
    log: Path,
) -> Server:
    """Start `argv` in its own session (so it can be stopped with its children)."""
    allowed = set(cpus) if cpus is not None else None

    def pin() -> None:  # runs in the child before exec: children inherit the CPU set
        if allowed is not None:
            os.sched_setaffinity(0, allowed)

    with log.open("ab") as sink:
        proc = subprocess.Popen(
            list(argv),
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=pin,  # safe: this orchestrator is single-threaded
        )
    return Server(name, proc, port, log)


def _status(port: int, path: str) -> int | None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    except OSError:
        return None
    finally:
        conn.close()


def wait_ready(
    server: Server, path: str, started: float, timeout: float = READY_TIMEOUT_S
) -> float:
    """Seconds from `started` (just before spawn) to the first 200 on `path`."""
    deadline = started + timeout
    while time.perf_counter() < deadline:
        if server.proc.poll() is not None:
            tail = server.log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{server.name} exited with {server.proc.returncode}:\n{tail}")
        if _status(server.port, path) == 200:
            return time.perf_counter() - started
        time.sleep(POLL_S)
    raise RuntimeError(f"{server.name} not ready on {path} after {timeout:.0f} s")


def stop(server: Server, timeout: float = 10.0) -> None:
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGTERM)
    try:
        server.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)  # the session this script created
        server.proc.wait(timeout)


def _children_by_ppid() -> dict[int, list[int]]:
    """Every process's children from /proc/*/stat: for kernels without .../children (gVisor)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            text = stat.read_text()
            ppid = int(text[text.rindex(")") + 2 :].split()[1])
            children.setdefault(ppid, []).append(int(stat.parent.name))
    return children


def children(pid: int) -> list[int]:
    """`pid`'s direct children (the ppid scan works on every kernel), oldest first."""
    return sorted(_children_by_ppid().get(pid, []))


def descendants(pid: int) -> list[int]:
    """`pid` and every live descendant, from /proc/<pid>/task/*/children (or the ppid scan)."""
    if not Path(f"/proc/{pid}/task/{pid}/children").exists():
        table = _children_by_ppid()
        found, queue = [], [pid]
        while queue:
            current = queue.pop()
            found.append(current)
            queue.extend(table.get(current, []))
        return found
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            with contextlib.suppress(OSError):
                queue.extend(int(c) for c in (task / "children").read_text().split())
    return found


def _cpu_of(pid: int) -> float:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()  # comm may contain spaces
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of `pid` and its live descendants."""
    return sum(_cpu_of(p) for p in descendants(pid))


def _status_kb(pid: int, field: str) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def rss_mb(pid: int, field: str = "VmRSS", descend: bool = True) -> float:
    """Resident memory of `pid` and (`descend`) its live descendants in MiB: now (VmRSS) or at
    its peak (VmHWM)."""
    return sum(_status_kb(p, field) for p in (descendants(pid) if descend else [pid])) / 1024


def busy_cores_seconds() -> float:
    """CPU seconds the whole machine spent busy (every process, every core), from /proc/stat."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / TICKS


def set_affinity(pid: int, cpus: Iterable[int]) -> None:
    """Move every thread of `pid` and its descendants onto `cpus`."""
    allowed = set(cpus)
    for member in descendants(pid):
        for task in Path(f"/proc/{member}/task").glob("*"):
            with contextlib.suppress(OSError, ValueError):
                os.sched_setaffinity(int(task.name), allowed)
