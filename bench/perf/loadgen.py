"""The load generator: a separate process driven over stdin/stdout, one JSON object per line.

    {"op": "run", "url": ..., "body": {...}, "stream": bool, "concurrency": N, "seconds": S,
     "headers": {...} (optional, e.g. the bench client key),
     "urls": [...] (optional: replicas; client i of this process, numbered from "offset",
     talks to urls[i % len(urls)], so the clients spread evenly over them)}
        -> {"count", "errors", "first_error", "elapsed", "latency": [s...], "ttfb": [s...],
            "cpu": seconds of this process's own CPU during the run}
    {"op": "affinity", "cpus": [1]}  -> {"ok": true}
    {"op": "quit"}

One aiohttp ClientSession (kept across runs, so its pool stays warm) and N closed-loop worker
coroutines; each worker starts a new request only before the deadline, and a run ends when
every worker has finished its last one. Standalone on purpose: it imports nothing from the
project, so its cost is the same whatever is being measured.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

HEADERS = {"Content-Type": "application/json"}
# Below uvicorn's 5 s keep-alive: a connection idle while other configurations run is dropped
# here first, so a POST is never sent on a socket the server is closing.
KEEPALIVE_SECONDS = 3.0


@dataclass
class Tally:
    latency: list[float] = field(default_factory=list)
    ttfb: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str | None = None

    def fail(self, message: str) -> None:
        self.errors += 1
        if self.first_error is None:
            self.first_error = message


async def _one(
    session: aiohttp.ClientSession, url: str, body: bytes, stream: bool, headers: dict[str, str]
) -> float:
    """Send one request; return the time to the first body byte (stream) or to the headers."""
    start = time.perf_counter()
    async with session.post(url, data=body, headers=headers) as response:
        first = time.perf_counter()
        if stream:
            got_first = False
            async for _ in response.content.iter_any():
                if not got_first:
                    first, got_first = time.perf_counter(), True
        else:
            await response.read()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}")
    return first - start


async def _worker(
    session: aiohttp.ClientSession, job: dict[str, Any], body: bytes, deadline: float, out: Tally
) -> None:
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        try:
            ttfb = await _one(session, job["url"], body, job["stream"], job["headers"])
        except (TimeoutError, aiohttp.ClientError, OSError, RuntimeError) as exc:
            out.fail(f"{type(exc).__name__}: {exc}")
            continue
        out.latency.append(time.perf_counter() - start)
        out.ttfb.append(ttfb)


def _cpu() -> float:
    times = os.times()
    return times.user + times.system


async def run(session: aiohttp.ClientSession, job: dict[str, Any]) -> dict[str, Any]:
    body = json.dumps(job["body"]).encode()
    job = {**job, "headers": {**HEADERS, **job.get("headers", {})}}
    tally = Tally()
    cpu0, start = _cpu(), time.perf_counter()
    deadline = start + float(job["seconds"])
    urls = job.get("urls") or [job["url"]]
    offset = int(job.get("offset", 0))
    workers = [
        _worker(session, {**job, "url": urls[(offset + i) % len(urls)]}, body, deadline, tally)
        for i in range(job["concurrency"])
    ]
    await asyncio.gather(*workers)
    elapsed = time.perf_counter() - start
    return {
        "count": len(tally.latency),
        "errors": tally.errors,
        "first_error": tally.first_error,
        "elapsed": elapsed,
        "latency": tally.latency,
        "ttfb": tally.ttfb,
        "cpu": _cpu() - cpu0,
    }


def _session() -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=KEEPALIVE_SECONDS)
    return aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=60), trust_env=False
    )


async def serve() -> None:
    loop = asyncio.get_running_loop()
    async with _session() as session:
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                return
            command = json.loads(line)
            if command["op"] == "quit":
                return
            if command["op"] == "affinity":
                os.sched_setaffinity(0, command["cpus"])
                reply: dict[str, Any] = {"ok": True}
            else:
                reply = await run(session, command)
            sys.stdout.write(json.dumps(reply) + "\n")
            sys.stdout.flush()


def main() -> None:
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    with runner:
        runner.run(serve())


if __name__ == "__main__":
    main()
