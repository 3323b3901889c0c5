"""The chaos run: 1,000 requests (a third streamed) through a group of three flaky deployments
(20% 500s, 10% 429s with Retry-After: 1, 5% hangs, 5% streams cut mid-way) with one healthy
fallback deployment, against `triage serve` as a real process.

`python -m tests.chaos [--requests N] [--lane native|litellm]` prints the figures (`make chaos`);
tests/integration/test_chaos.py asserts them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.helpers import free_port
from triage.fakeupstream import FakeSettings, FakeUpstreamThread

DEADLINE = 6.0
CHAOS = {"status_500": 0.2, "status_429": 0.1, "hang": 0.05, "cut_stream": 0.05, "retry_after": 1}


@dataclass
class ChaosReport:
    requests: int = 0
    plain: int = 0
    streams: int = 0
    plain_ok: int = 0
    streams_completed: int = 0
    stream_errors_well_formed: int = 0
    malformed: int = 0
    latencies: list[float] = field(default_factory=list)
    deadline: float = DEADLINE
    rss_after_100_mb: float = 0.0
    rss_after_all_mb: float = 0.0

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)
        data = asdict(self)
        del data["latencies"]
        data["successes"] = self.plain_ok + self.streams_completed
        data["p50_ms"] = round(ordered[len(ordered) // 2] * 1000, 1) if ordered else 0
        data["p99_ms"] = round(ordered[int(len(ordered) * 0.99) - 1] * 1000, 1) if ordered else 0
        data["longest_s"] = round(ordered[-1], 3) if ordered else 0
        data["memory_growth_pct"] = (
            round(100 * (self.rss_after_all_mb / self.rss_after_100_mb - 1), 1)
            if self.rss_after_100_mb
            else 0
        )
        return data


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _config(flaky: list[str], steady: str, ledger: Path, lane: str) -> dict[str, Any]:
    def dep(group: str, url: str) -> dict[str, Any]:
        return {
            "model_name": group,
            "litellm_params": {"model": "hosted_vllm/m", "api_base": url + "/v1"},
        }

    return {
        "model_list": [dep("flaky", url) for url in flaky] + [dep("steady", steady)],
        "router_settings": {
            "num_retries": 2,
            "timeout": 1.0,
            "retry_after": 0.05,
            "fallbacks": [{"flaky": ["steady"]}],
            "allowed_fails": 3,
            "cooldown_time": 2,
        },
        "triage": {
            "deadline": DEADLINE,
            "max_attempts": 6,
            "first_token_timeout": 1.0,
            "lane": lane,
            "ledger": {"path": str(ledger)},
        },
        "server": {"log_level": "warning"},
    }


def _judge_stream(lines: list[str], report: ChaosReport) -> None:
    frames = [line[6:] for line in lines if line.startswith("data: ")]
    if not frames or frames[-1] != "[DONE]":
        report.malformed += 1
        return
    bodies = [json.loads(f) for f in frames[:-1]]
    errors = [b for b in bodies if "error" in b]
    if not errors:
        report.streams_completed += 1
    elif (
        len(errors) == 1
        and "error" in bodies[-1]
        and set(bodies[-1]["error"]) == {"message", "type", "param", "code"}
    ):
        report.stream_errors_well_formed += 1
    else:
        report.malformed += 1


async def _one(client: httpx.AsyncClient, i: int, report: ChaosReport) -> None:
    stream = i % 3 == 0
    body = {"model": "flaky", "stream": stream, "messages": [{"role": "user", "content": f"q{i}"}]}
    started = time.monotonic()
    try:
        if stream:
            report.streams += 1
            async with client.stream("POST", "/v1/chat/completions", json=body) as response:
                lines = [line async for line in response.aiter_lines() if line]
            _judge_stream(lines, report)
        else:
            report.plain += 1
            response = await client.post("/v1/chat/completions", json=body)
            report.plain_ok += response.status_code == 200
    except httpx.HTTPError:
        report.malformed += 1
    report.latencies.append(time.monotonic() - started)
    report.requests += 1


async def _drive(url: str, n: int, pid: int, report: ChaosReport, concurrency: int) -> None:
    queue = list(range(n))
    async with httpx.AsyncClient(base_url=url, timeout=DEADLINE * 3) as client:

        async def worker() -> None:
            while queue:
                await _one(client, queue.pop(0), report)
                if report.requests == 100 and not report.rss_after_100_mb:
                    report.rss_after_100_mb = _rss_mb(pid)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    report.rss_after_all_mb = _rss_mb(pid)


def run(n: int = 1000, *, lane: str = "native", concurrency: int = 16) -> ChaosReport:
    work = Path(tempfile.mkdtemp(prefix="triage-chaos-"))
    fakes = [FakeUpstreamThread(FakeSettings(chaos={**CHAOS, "seed": s})) for s in (1, 2, 3)]
    steady = FakeUpstreamThread(FakeSettings(record_requests=False))
    for fake in (*fakes, steady):
        fake.start()
    config = work / "chaos.yaml"
    config.write_text(
        yaml.safe_dump(_config([f.url for f in fakes], steady.url, work / "usage.db", lane))
    )
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "triage.cli", "serve", "--config", str(config), "--port", str(port)],
        env=dict(os.environ),
    )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait(url)
        report = ChaosReport()
        asyncio.run(_drive(url, n, proc.pid, report, concurrency))
        return report
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        for fake in (*fakes, steady):
            fake.stop()


def _wait(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError("triage did not start")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--lane", choices=["native", "litellm"], default="native")
    args = parser.parse_args()
    summary = run(args.requests, lane=args.lane).summary()
    width = max(len(k) for k in summary)
    for key, value in summary.items():
        print(f"{key:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
