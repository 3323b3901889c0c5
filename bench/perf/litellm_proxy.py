"""Configuration (e): LiteLLM's own proxy, in its own virtualenv (bench/.litellm-venv), at the
same litellm version pyproject.toml pins for Triage.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from perf.servers import BENCH_DIR

VENV = BENCH_DIR / ".litellm-venv"
PYPROJECT = BENCH_DIR.parent / "pyproject.toml"
STAMP_NAME = ".installed"


def pinned_version() -> str:
    match = re.search(r'"litellm==([^"]+)"', PYPROJECT.read_text())
    if match is None:
        raise RuntimeError("no litellm==X pin in pyproject.toml")
    return match.group(1)


def _run(argv: list[str], log: Path) -> None:
    with log.open("ab") as sink:
        subprocess.run(argv, check=True, stdout=sink, stderr=subprocess.STDOUT)


def ensure(log: Path) -> tuple[Path | None, str]:
    """The proxy's `litellm` executable and a note, or None and why the install failed."""
    spec = f"litellm[proxy]=={pinned_version()}"
    stamp = VENV / STAMP_NAME
    binary = VENV / "bin" / "litellm"
    if stamp.exists() and stamp.read_text() == spec and binary.exists():
        return binary, f"{spec} (already installed in {VENV})"
    print(f"installing {spec} into {VENV} (log: {log}) ...", flush=True)
    try:
        _run([sys.executable, "-m", "venv", str(VENV)], log)
        _run([str(VENV / "bin" / "pip"), "install", "-q", "--upgrade", "pip"], log)
        _run([str(VENV / "bin" / "pip"), "install", "-q", spec], log)
    except (subprocess.CalledProcessError, OSError) as exc:
        tail = log.read_text(errors="replace")[-1500:] if log.exists() else ""
        return None, f"install of {spec} failed ({exc}); skipping (e)\n{tail}"
    if not binary.exists():
        return None, f"{spec} installed but {binary} is missing; skipping (e)"
    stamp.write_text(spec)
    return binary, f"{spec} (installed into {VENV})"
