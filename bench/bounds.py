"""Hostile clients and backends against a real `triage serve`, with figures (issue 18).

    .venv/bin/python bench/bounds.py upstream          # 100/300 MB answers, 100 MB SSE lines
    .venv/bin/python bench/bounds.py clients ['{"header_timeout": 1, "body_timeout": 2}']

`upstream`: peak RSS growth (/proc VmHWM) of a fresh gateway per attack, the answer, and how
much the upstream managed to send. `clients`: 8 x 48 MiB request headers (answers, peak RSS,
slowest /health meanwhile), then 200 clients trickling headers and 200 trickling bodies (how
long each was held, at most 40 s). The optional JSON is the config's `server` section.
For the figures before a change, run it against that commit's tree:
`git archive <commit> | tar -x -C /tmp/old` and `PYTHONPATH=/tmp/old/src:. python bench/bounds.py`.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from tests.integration import test_bounds as attacks
from tests.integration.bounds_support import HostileUpstream, memory, triage_serve

MB = 1000 * 1000


def _deployment(upstream: HostileUpstream, model: str) -> dict[str, Any]:
    params = {"model": f"hosted_vllm/{model}", "api_base": upstream.url + "/v1"}
    return {"model_name": model, "litellm_params": params}


def _ask(url: str, model: str, stream: bool = False) -> tuple[int, bytes]:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=120) as response:
        return response.status_code, response.read()


def upstream_attacks() -> None:
    cases = [(f"huge-{n * MB}", False) for n in (100, 300)]
    cases += [(f"line-{100 * MB}", True), (f"late-{100 * MB}", True)]
    with HostileUpstream() as upstream:
        for model, stream in cases:
            config = {
                "model_list": [_deployment(upstream, "ok"), _deployment(upstream, model)],
                "router_settings": {"num_retries": 0, "timeout": 120},
            }
            with tempfile.TemporaryDirectory() as tmp, triage_serve(Path(tmp), config) as served:
                url, pid = served
                _ask(url, "ok")
                _ask(url, "ok", True)
                before = memory(pid)
                started = time.monotonic()
                status, answer = _ask(url, model, stream)
                seconds = time.monotonic() - started
                peak = memory(pid)["VmHWM"]
                print(
                    f"{model:16} stream={stream!s:5} {status} in {seconds:4.1f}s; peak RSS "
                    f"{peak / MB:4.0f} MB (+{(peak - before['VmHWM']) / MB:.0f}); upstream sent "
                    f"{upstream.sent.get(model, 0) / MB:.0f} MB; ends {answer[-70:]!r}"
                )


def _huge_headers(url: str, pid: int) -> None:
    before = memory(pid)["VmHWM"]
    results: list[bytes | str] = []
    port = attacks._port(url)
    senders = [
        threading.Thread(target=attacks._send_huge_header, args=(port, 48 << 20, results))
        for _ in range(8)
    ]
    for sender in senders:
        sender.start()
    slowest = 0.0
    with httpx.Client(timeout=60) as client:
        while any(sender.is_alive() for sender in senders):
            started = time.monotonic()
            client.get(url + "/health")
            slowest = max(slowest, time.monotonic() - started)
            time.sleep(0.02)
    peak = memory(pid)["VmHWM"]
    kinds = sorted(r if isinstance(r, str) else r[:12].decode() for r in results)
    print(
        f"8 x 48 MiB headers: {kinds}; peak RSS +{(peak - before) / MB:.0f} MB; "
        f"slowest /health {slowest:.2f}s"
    )


async def _trickles(port: int, limit: float) -> tuple[list[Any], list[Any]]:
    partial = b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\n"
    heads = [attacks._trickle(port, partial, b"x-slow: 1\r\n", limit) for _ in range(200)]
    body_head = attacks._chat_head(10_000) + b"{"
    bodies = [attacks._trickle(port, body_head, b" ", limit) for _ in range(200)]
    results = await asyncio.gather(*heads, *bodies)
    return results[:200], results[200:]


def client_attacks(server: dict[str, Any]) -> None:
    limit = 40.0
    with HostileUpstream() as upstream, tempfile.TemporaryDirectory() as tmp:
        config = attacks._config(upstream)
        config["server"] = server
        with triage_serve(Path(tmp), config) as (url, pid):
            httpx.post(url + "/v1/chat/completions", json=attacks.CHAT, timeout=30)
            _huge_headers(url, pid)
            heads, bodies = asyncio.run(_trickles(attacks._port(url), limit))
            for name, group in (("header", heads), ("body", bodies)):
                held = sorted(seconds for seconds, _ in group)
                closed = sum(1 for seconds in held if seconds < limit - 0.5)
                codes = sorted({answer[:12].decode() for _, answer in group if answer})
                print(
                    f"200 {name} trickles: {closed}/200 closed; held median {held[100]:.1f}s, "
                    f"max {held[-1]:.1f}s (gave up at {limit:g}s); answers {codes}"
                )


if __name__ == "__main__":
    if sys.argv[1:2] == ["upstream"]:
        upstream_attacks()
    else:
        client_attacks(json.loads(sys.argv[2]) if len(sys.argv) > 2 else {})
