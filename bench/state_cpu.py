"""CPU per request of the shared state store (Redis/Valkey) against the in-memory one (issue 15).

    PYTHONPATH=. .venv/bin/python bench/state_cpu.py [requests]   # default 1000 a round, 5 rounds
    PYTHONPATH=. .venv/bin/python bench/state_cpu.py calls        # the store calls alone

One process, the app driven in-process over ASGI (no sockets on the client side), a key with
rpm, tpm and a daily budget (so every request reserves and settles), the fake upstream in a
process of its own (in a thread of this one, its GIL hand-offs at every socket call of the
store client would be billed to the gateway). For each backend it reports the gateway process's
CPU time per request (user + system), and for redis also the Valkey server's CPU per request
(/proc/<pid>/stat). The difference is the shared store's cost: per request a reserve script
and the breaker refresh (latency samples ride on it) sent in one write, and a settle script
written behind (it leaves with the next request's write), on one loopback connection. The
backends alternate (the machine's load drifts): both apps live in one event loop and take
turns in blocks of 100 requests; the median of the per-block-pair differences is reported,
with its quartiles.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from tests.helpers import config_from, deployment, free_port  # noqa: E402
from tests.redis_server import ValkeyServer  # noqa: E402

from triage.api import create_app  # noqa: E402
from triage.state.breaker import MemoryStore  # noqa: E402
from triage.state.limits import Ask, MemoryLimits  # noqa: E402
from triage.state.redis_breaker import RedisStore  # noqa: E402
from triage.state.redis_limits import RedisLimits  # noqa: E402
from triage.state.redis_wire import Wire  # noqa: E402

KEY = "tk-bench-0123456789"
TICKS = os.sysconf("SC_CLK_TCK")
ROUNDS = 5
BLOCK = 100


def _server_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def _config(fake: str, state: dict[str, Any], url: str) -> Any:
    data = {
        "model_list": [deployment("chat", "hosted_vllm/small", fake + "/v1")],
        "auth": {
            "keys": [
                {
                    "id": "bench",
                    "key": "os.environ/BENCH_KEY",
                    "rpm": 10**8,
                    "tpm": 10**12,
                    "budget": {"daily_usd": "1000000"},
                }
            ]
        },
        "state": state,
    }
    return config_from(data, {"BENCH_KEY": KEY, "STATE_URL": url})


async def _drive(apps: dict[str, Any], count: int) -> dict[str, list[float]]:
    """Blocks of BLOCK requests, alternating between the backends' apps in one event loop, so
    that the machine's drifting load falls on both alike; CPU seconds per request per block."""
    body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
    headers = {"authorization": f"Bearer {KEY}"}
    clients = {
        name: httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1")
        for name, app in apps.items()
    }

    async def block(client: httpx.AsyncClient, size: int) -> float:
        start = time.process_time()
        for _ in range(size):
            response = await client.post("/v1/chat/completions", json=body, headers=headers)
            assert response.status_code == 200, response.text
        return (time.process_time() - start) / size

    for client in clients.values():  # warm-up: connections, scripts loaded
        await block(client, 50)
    out: dict[str, list[float]] = {name: [] for name in apps}
    for _ in range(max(count // BLOCK, 1)):
        for name, client in clients.items():
            out[name].append(await block(client, BLOCK))
    for client in clients.values():
        await client.aclose()
    return out


@contextmanager
def _fake_upstream() -> Iterator[str]:
    port = free_port()
    command = [sys.executable, "-m", "triage.cli", "fake-upstream", "--port", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(400):
            try:
                httpx.get(url + "/v1/models", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)


async def _calls(url: str, count: int = 2000) -> None:
    """CPU of the store calls of one request without the app, in the order the service and
    the runner make them: breaker refresh sent ahead, reserve, sync, a success, settle."""
    stores = {"memory": MemoryStore(), "redis": RedisStore(Wire(url, 1.0))}
    limits: dict[str, Any] = {
        "memory": MemoryLimits(),
        "redis": RedisLimits(stores["redis"].client),
    }
    ask = Ask("k", 10, Decimal("0.001"), rpm=10**8, tpm=10**12, daily_usd=Decimal(10**6))

    async def request(backend: str) -> None:
        store = stores[backend]
        store.prefetch(["a", "b"])
        held = await limits[backend].reserve(ask, time.time())
        await store.sync(["a", "b"], time.monotonic())
        store.record_success("a", 0.0, latency=0.1, ttft=None)
        await limits[backend].settle(held, 5, Decimal("0.0005"), time.time())

    for backend in ("memory", "redis"):
        for _ in range(200):
            await request(backend)
        start = time.process_time()
        for _ in range(count):
            await request(backend)
        cpu = (time.process_time() - start) / count * 1000
        print(f"one request's store calls, {backend}: {cpu:.3f} ms CPU")


def main() -> None:
    if sys.argv[1:] == ["calls"]:
        with tempfile.TemporaryDirectory() as tmp, ValkeyServer(Path(tmp)) as store:
            asyncio.run(_calls(store.url))
        return
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    with (
        tempfile.TemporaryDirectory() as tmp,
        ValkeyServer(Path(tmp)) as store,
        _fake_upstream() as fake,
    ):
        assert store.process is not None
        results: dict[str, list[float]] = {"memory": [], "redis": []}
        server: list[float] = []
        for _ in range(ROUNDS):
            redis = {"backend": "redis", "url": "os.environ/STATE_URL"}
            apps = {
                "memory": create_app(_config(fake, {"backend": "memory"}, store.url)),
                "redis": create_app(_config(fake, redis, store.url)),
            }
            before = _server_cpu(store.process.pid)
            blocks = asyncio.run(_drive(apps, count))
            server.append((_server_cpu(store.process.pid) - before) / count)
            for name, values in blocks.items():
                results[name] += values
    _report(count, results, server)


def _report(count: int, results: dict[str, list[float]], server: list[float]) -> None:
    pairs = zip(results["redis"], results["memory"], strict=True)
    differences = sorted((r - m) * 1000 for r, m in pairs)
    memory, shared = (statistics.median(results[k]) * 1000 for k in ("memory", "redis"))
    quartiles = statistics.quantiles(differences, n=4)
    print(f"{count} requests per backend per round in blocks of {BLOCK}, {ROUNDS} rounds; medians:")
    print(f"memory state: {memory:.3f} ms CPU per request (gateway process)")
    print(f"redis state:  {shared:.3f} ms CPU per request (gateway process)")
    print(
        f"difference:   {statistics.median(differences):+.3f} ms per request (median of "
        f"{len(differences)} block pairs, quartiles {quartiles[0]:+.3f} .. {quartiles[2]:+.3f}; "
        "target <= 0.3 ms)"
    )
    print(f"valkey-server: {statistics.median(server) * 1000:.3f} ms CPU per request (its own)")


if __name__ == "__main__":
    main()
