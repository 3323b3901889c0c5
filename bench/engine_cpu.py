"""CPU per request of the engine alone (runner + native lane + aiohttp, and the stream relay),
next to a bare pooled aiohttp session doing the same calls: the part of issue 16's profile that
the engine owns, measured in-process with `time.process_time()` so the 2-core box's contention
does not blur it. The fake upstream runs in its own process, as in `make bench`.

    LITELLM_LOCAL_MODEL_COST_MAP=True .venv/bin/python bench/engine_cpu.py [--requests 4000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))

from perf.procs import free_port  # noqa: E402
from perf.servers import fake_argv  # noqa: E402

from triage.config.loader import build_config  # noqa: E402
from triage.engine.base import Call, Relayed, Timeouts  # noqa: E402
from triage.engine.lanes import Lanes  # noqa: E402
from triage.engine.runner import Engine  # noqa: E402
from triage.normalize import StreamNormalizer  # noqa: E402
from triage.policy import RoutePlan  # noqa: E402
from triage.relay import Tally, convert  # noqa: E402
from triage.state import MemoryStore  # noqa: E402
from triage.wire import dumps  # noqa: E402

PROMPT = "Summarise the following text in one sentence: " + "lorem ipsum " * 40
BODY = {"messages": [{"role": "user", "content": PROMPT}]}
PLAN = RoutePlan(("g",), timeout=30, first_token_timeout=10, deadline=60, max_attempts=3)


def _engine(base: str) -> Engine:
    config = build_config(
        {
            "model_list": [
                {
                    "model_name": "g",
                    "litellm_params": {
                        "model": "hosted_vllm/fake-model",
                        "api_base": base + "/v1",
                        "api_key": "bench-not-a-secret",
                    },
                }
            ],
            "router_settings": {"routing_strategy": "latency-based-routing", "num_retries": 1},
            "triage": {"ledger": {"enabled": False}},
        },
        {},
        source="<bench>",
    )
    return Engine(config, Lanes(config).for_deployment, MemoryStore())


def _frame(batch: Relayed) -> bytes:
    encoded = [chunk if type(chunk) is bytes else dumps(chunk) for chunk in batch]
    return b"data: " + b"\n\ndata: ".join(encoded) + b"\n\n" if encoded else b""


def triage_call(engine: Engine, stream: bool) -> Callable[[], Awaitable[int]]:
    call = Call("chat", BODY, stream=stream, prompt_chars=len(PROMPT))

    async def plain() -> int:
        reply, _ = await engine.complete(PLAN, call)
        return len(dumps(reply.body))

    async def streamed() -> int:
        start = await engine.stream(PLAN, call)
        normalizer = StreamNormalizer(start.outcome.deployment, keep_usage=False)
        tally, size, batch = Tally(), 0, start.first
        rest = aiter(start.rest)
        try:
            while batch is not None:
                out, failure = convert(normalizer, batch, tally)
                assert failure is None
                size += len(_frame(out))
                if batch.last:
                    break
                batch = await anext(rest, None)
        finally:
            await rest.aclose()  # type: ignore[attr-defined]
        return size

    return streamed if stream else plain


def lane_call(engine: Engine) -> Callable[[], Awaitable[int]]:
    """The native lane alone (no runner): one `send` per request."""
    call = Call("chat", BODY, prompt_chars=len(PROMPT))
    deployment = engine.config.model_list[0]
    lane = engine.lane(deployment)
    timeouts = Timeouts(connect=5.0, first_token=None, total=30.0)

    async def plain() -> int:
        reply = await lane.send(deployment, call, timeouts)
        return len(reply.body)

    return plain


def bare_call(
    session: aiohttp.ClientSession, url: str, stream: bool
) -> Callable[[], Awaitable[int]]:
    body = {"model": "fake-model", **BODY}
    if stream:
        body["stream"] = True
    data = dumps(body)
    headers = {"Content-Type": "application/json"}

    async def call() -> int:
        response = await session.post(url, data=data, headers=headers)
        size = 0
        try:
            async for part in response.content.iter_any():
                size += len(part)
        finally:
            response.release()
        return size

    return call


async def _drive(call: Callable[[], Awaitable[int]], requests: int, concurrency: int) -> float:
    """Microseconds of this process's CPU per request, `concurrency` requests at a time."""
    for _ in range(50):
        await call()
    left = requests

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await call()

    cpu = time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return (time.process_time() - cpu) / requests * 1e6


async def _measure(base: str, args: argparse.Namespace) -> dict[str, list[float]]:
    engine = _engine(base)
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=1000, keepalive_timeout=4.0), trust_env=False
    )
    url = base + "/v1/chat/completions"
    cells = {
        f"{who} {kind}": fn
        for kind, stream in (("plain", False), ("stream", True))
        for who, fn in (
            ("bare", bare_call(session, url, stream)),
            ("triage", triage_call(engine, stream)),
        )
    }
    cells["lane plain"] = lane_call(engine)
    if args.only:
        cells = {name: fn for name, fn in cells.items() if args.only in name}
    results: dict[str, list[float]] = {name: [] for name in cells}
    try:
        for _ in range(args.rounds):
            for name, fn in cells.items():
                results[name].append(await _drive(fn, args.requests, args.concurrency))
    finally:
        await session.close()
        for lane in {engine.lane(d) for d in engine.config.model_list}:
            await lane.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", help="run only the cells whose name contains this")
    args = parser.parse_args()
    port = free_port()
    fake = subprocess.Popen(fake_argv(port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(base + "/health", timeout=1).read()
                break
            except OSError:
                time.sleep(0.05)
        results = uvloop.run(_measure(base, args))
    finally:
        fake.terminate()
        fake.wait(timeout=10)
    for name, runs in results.items():
        shown = " ".join(f"{r:6.1f}" for r in runs)
        print(f"{name:14s} median {statistics.median(runs):6.1f} us CPU/request  ({shown})")


if __name__ == "__main__":
    main()
