"""CPU per request of the app itself (no HTTP server): the bench config of `make bench` (every
feature on, the SQLite ledger, a client key with limits), driven through ASGI in this process
against the fake upstream in a child process, `--concurrency` requests at a time.

    LITELLM_LOCAL_MODEL_COST_MAP=True python bench/path_cpu.py [--stream] [--rounds 5]
    ... --profile 30 [--sort cumtime]   # cProfile (CPU time) of one more run: the top 30

Prints the median over rounds of this process's CPU time (user+sys, every thread) per request,
which the shared 2-core box disturbs far less than req/s.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from perf.procs import free_port  # noqa: E402
from perf.servers import CLIENT_KEY, CLIENT_KEY_ENV, fake_argv, triage_config  # noqa: E402
from perf.settings import PROMPT  # noqa: E402

from triage.api.app import create_app  # noqa: E402
from triage.config.loader import build_config  # noqa: E402


def _scope(path: str, body: bytes) -> dict[str, Any]:
    headers = [
        (b"host", b"127.0.0.1:4000"),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"authorization", f"Bearer {CLIENT_KEY}".encode()),
    ]
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 4000),
        "state": {},
    }


async def _one(app: Any, body: bytes) -> int:
    status = 0
    sent = False
    done = asyncio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif not message.get("more_body"):
            done.set()

    await app(_scope("/v1/chat/completions", body), receive, send)
    return status


async def _drive(app: Any, body: bytes, total: int, concurrency: int) -> None:
    left = total

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            status = await _one(app, body)
            if status != 200:
                raise SystemExit(f"status {status}")

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def _main(args: argparse.Namespace, base: str, ledger: Path) -> None:
    data = triage_config(base, ledger, "native")
    app = create_app(build_config(data, {CLIENT_KEY_ENV: CLIENT_KEY}, source="bench"))
    request = {"model": "auto", "messages": [{"role": "user", "content": PROMPT}]}
    if args.stream:
        request["stream"] = True
    body = json.dumps(request).encode()
    async with app.router.lifespan_context(app):
        await _drive(app, body, 300, args.concurrency)  # warm-up
        figures = []
        for _ in range(args.rounds):
            before = time.process_time()
            await _drive(app, body, args.requests, args.concurrency)
            figures.append((time.process_time() - before) / args.requests * 1e6)
        print("us CPU per request, by round:", " ".join(f"{f:.0f}" for f in figures))
        print(f"median {statistics.median(figures):.0f} us")
        if args.profile:
            profiler = cProfile.Profile(time.process_time)
            profiler.enable()
            await _drive(app, body, args.requests, args.concurrency)
            profiler.disable()
            stats = pstats.Stats(profiler).strip_dirs().sort_stats(args.sort)
            stats.print_stats(args.profile)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--profile", type=int, default=0)
    parser.add_argument("--sort", default="tottime", help="pstats order: tottime, cumtime")
    args = parser.parse_args()
    port = free_port()
    fake = subprocess.Popen(fake_argv(port), stdout=subprocess.DEVNULL)
    try:
        time.sleep(1.5)
        with tempfile.TemporaryDirectory() as tmp:
            asyncio.run(_main(args, f"http://127.0.0.1:{port}", Path(tmp) / "ledger.db"))
    finally:
        fake.terminate()
        fake.wait(10)


if __name__ == "__main__":
    main()
