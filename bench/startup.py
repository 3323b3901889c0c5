"""Start-up time and resident memory of `triage serve` (c): the bench's every-feature config.

    .venv/bin/python bench/startup.py [--spawns 7] [--requests 400] [--lane native]
        [--target passthrough]   (b), the bare FastAPI+aiohttp pass-through, for comparison
        [--cpu 9]                the server pinned to one core, as `make bench` pins it

Spawns `triage serve` `--spawns` times and prints each time from spawn to the first 200 from
/health and their median; then, on the last one, sends `--requests` requests (`model: auto`,
the bench client key, half of them streamed) through a fake upstream and prints VmRSS idle and
after that load, as bench/perf does ("start-up and memory"), plus the CPU seconds the server
spent starting (user+sys at the first 200, the figure the 2-core box does not squeeze).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from perf import procs  # noqa: E402 - needs bench/ on sys.path first
from perf.cells import body  # noqa: E402
from perf.servers import (  # noqa: E402
    CLIENT_HEADERS,
    CLIENT_KEY,
    CLIENT_KEY_ENV,
    _write,
    fake_argv,
    triage_argv,
    triage_config,
)


def _spawn(
    argv: list[str], port: int, env: dict[str, str], log: Path, cpu: int | None
) -> procs.Server:
    return procs.spawn("server", argv, port, env, None if cpu is None else [cpu], log)


def _post(port: int, payload: bytes) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = {"Content-Type": "application/json", **CLIENT_HEADERS}
        conn.request("POST", "/v1/chat/completions", payload, headers)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def _load(port: int, requests: int, model: str) -> int:
    """Sequential requests, alternating plain and streamed; returns how many failed."""
    payloads = [json.dumps(body(model, stream)).encode() for stream in (False, True)]
    return sum(_post(port, payloads[i % 2]) != 200 for i in range(requests))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spawns", type=int, default=7)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--lane", choices=["native", "litellm"], default="native")
    parser.add_argument("--target", choices=["triage", "passthrough"], default="triage")
    parser.add_argument("--cpu", type=int, help="pin the server to this core")
    args = parser.parse_args()
    env = {**os.environ, CLIENT_KEY_ENV: CLIENT_KEY, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    with tempfile.TemporaryDirectory(prefix="triage-startup-") as folder:
        work = Path(folder)
        fake_port = procs.free_port()
        fake = procs.spawn("fake", fake_argv(fake_port), fake_port, env, None, work / "fake.log")
        procs.wait_ready(fake, "/health", time.perf_counter())
        backend = f"http://127.0.0.1:{fake_port}"
        config = _write(work / "c.yaml", triage_config(backend, work / "c.db", args.lane))
        port = procs.free_port()
        argv = [*triage_argv(), "serve", "--config", str(config), "--port", str(port)]
        if args.target == "passthrough":
            script = str(Path(__file__).resolve().parent / "passthrough.py")
            argv = [sys.executable, script, "--upstream", backend + "/v1", "--port", str(port)]
        times, cpu = [], []
        server = None
        try:
            for attempt in range(args.spawns):
                if server is not None:
                    procs.stop(server)
                started = time.perf_counter()
                server = _spawn(argv, port, env, work / f"serve-{attempt}.log", args.cpu)
                times.append(procs.wait_ready(server, "/health", started))
                cpu.append(procs.cpu_seconds(server.pid))
            assert server is not None
            time.sleep(0.2)
            idle = procs.rss_mb(server.pid)
            model = "auto" if args.target == "triage" else "fake-model"
            failed = _load(port, args.requests, model)
            after = procs.rss_mb(server.pid)
            peak = procs.rss_mb(server.pid, "VmHWM")
        finally:
            for running in (server, fake):
                if running is not None:
                    procs.stop(running)
    print("start-up s (each): " + ", ".join(f"{t:.3f}" for t in times))
    print(f"start-up median s: {statistics.median(times):.3f}")
    print(f"start-up CPU s median (user+sys at first 200): {statistics.median(cpu):.3f}")
    print(f"RSS idle MB: {idle:.1f}  after {args.requests} requests: {after:.1f}  peak: {peak:.1f}")
    if failed:
        print(f"WARNING: {failed} of {args.requests} requests did not answer 200")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
