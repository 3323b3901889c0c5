"""Micro-benchmark of the request side of one plain bench request (issue 16): the body read,
strict JSON and validation (`api.deps.parse`), the headers (`meta`), the caps, the stream flag,
the plan for a classified task (`Planner.for_task`) and the upstream body (`forwarded`).

    LITELLM_LOCAL_MODEL_COST_MAP=True .venv/bin/python bench/request_path_cpu.py

The bench's own config and request (bench/perf); the steps run N times in one event loop and
the least CPU µs per request over rounds is reported (time.process_time). To compare two trees,
run it with PYTHONPATH=<tree>/src for each, back to back.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from perf.servers import triage_config  # noqa: E402
from perf.settings import PROMPT  # noqa: E402
from starlette.requests import Request  # noqa: E402

from triage.api import deps  # noqa: E402
from triage.classify import Classification  # noqa: E402
from triage.config.loader import build_config  # noqa: E402
from triage.policy import Planner  # noqa: E402
from triage.protocol import (  # noqa: E402
    CHAT_FIELDS,
    ChatCompletionRequest,
    check_caps,
    declared,
    forwarded,
)

N, ROUNDS = 5000, 9


def _setup() -> tuple[dict[str, Any], Any, Planner, Classification]:
    data = triage_config("http://127.0.0.1:1", Path(tempfile.mkdtemp()) / "l.db", "native")
    data["auth"] = {"keys": []}
    config = build_config(data, {}, source="<bench>")
    raw = json.dumps({"model": "auto", "messages": [{"role": "user", "content": PROMPT}]})
    headers = [
        (b"host", b"127.0.0.1:8001"),
        (b"user-agent", b"bench"),
        (b"accept", b"*/*"),
        (b"content-type", b"application/json"),
        (b"authorization", b"Bearer sk-bench-0123456789abcdef"),
        (b"content-length", str(len(raw)).encode()),
    ]
    app = SimpleNamespace(state=SimpleNamespace(triage=SimpleNamespace(config=config)))
    scope = {"type": "http", "method": "POST", "headers": headers, "path": "/", "app": app}
    scope["body"] = raw.encode()
    task = Classification("classification", {"classification": 1.0}, 0.9, "light", 0.1, "model")
    return scope, config, Planner(config), task


async def _round(n: int, setup: tuple[dict[str, Any], Any, Planner, Classification]) -> float:
    scope, config, planner, task = setup
    message = {"type": "http.request", "body": scope["body"], "more_body": False}

    async def receive() -> dict[str, Any]:
        return message

    started = time.process_time()
    for _ in range(n):
        request = Request(scope, receive)
        body = await deps.parse(request, ChatCompletionRequest)
        deps.meta(request)
        check_caps(config.server, body)
        declared(body, "stream")
        planner.for_task(task)
        forwarded(body, CHAT_FIELDS)
    return (time.process_time() - started) / n * 1e6


async def main() -> None:
    setup = _setup()
    gc.freeze()  # as `triage serve` does once started (cli.py)
    await _round(N // 2, setup)  # warm-up
    best = min([await _round(N, setup) for _ in range(ROUNDS)])
    print(f"request path (parse, meta, caps, plan, forwarded): {best:.2f} us CPU per request")


if __name__ == "__main__":
    asyncio.run(main())
