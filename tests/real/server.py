"""A real llama-cpp-python server (`python -m llama_cpp.server`) on a free loopback port.

It serves the tiny chat model under two aliases (`tiny-a`, `tiny-b`) and the embedding variant
as `tiny-embed`. llama-cpp-python keeps one model loaded at a time, so naming another alias
reloads it (milliseconds for these models). `interrupt_requests` is off: a waiting request must
not cut a running stream short, or the disconnect test could not tell who stopped it.
Everything the server prints goes to a log file the tests read.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from tests.helpers import free_port

if TYPE_CHECKING:
    from tests.real.make_model import TinyModels

CHAT_ALIASES = ("tiny-a", "tiny-b")
# What llama-cpp-python prints when a streaming client goes away, and after every generation
# that ran to its end (its llama.cpp timings).
DISCONNECTED = "Disconnected from client"
GENERATION_DONE = "llama_perf_context_print:       total time"
EMBED_ALIAS = "tiny-embed"
START_TIMEOUT = 60.0


@dataclass(frozen=True)
class LlamaServer:
    url: str
    log_path: Path
    process: subprocess.Popen[bytes]

    @property
    def api_base(self) -> str:
        return self.url + "/v1"

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def disconnects(self) -> int:
        """Streams the server saw its client leave."""
        return self.log().count(DISCONNECTED)

    def generations(self) -> int:
        """Generations that ran to their end (max_tokens, a stop, or end of turn)."""
        return self.log().count(GENERATION_DONE)


def server_config(models: TinyModels, port: int) -> dict[str, Any]:
    common = {"n_ctx": 512, "n_batch": 512, "n_threads": 1, "n_threads_batch": 1, "seed": 0}
    chat = [{"model": str(models.chat), "model_alias": a, **common} for a in CHAT_ALIASES]
    embed = {"model": str(models.embed), "model_alias": EMBED_ALIAS, "embedding": True, **common}
    return {
        "host": "127.0.0.1",
        "port": port,
        "interrupt_requests": False,
        "models": [*chat, embed],
    }


@contextmanager
def llama_server(models: TinyModels, workdir: Path) -> Iterator[LlamaServer]:
    """Start the server, wait until `/v1/models` answers, stop it on exit."""
    port = free_port()
    config_path = workdir / "llama-server.json"
    config_path.write_text(json.dumps(server_config(models, port), indent=2), encoding="utf-8")
    log_path = workdir / "llama-server.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "llama_cpp.server", "--config_file", str(config_path)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    server = LlamaServer(f"http://127.0.0.1:{port}", log_path, process)
    try:
        _wait_ready(server)
        yield server
    finally:
        _stop(process)


def _wait_ready(server: LlamaServer) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"llama_cpp.server exited:\n{server.log()[-4000:]}")
        try:
            if httpx.get(server.api_base + "/models", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"llama_cpp.server did not answer in {START_TIMEOUT}s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
