"""What the hot routes' dispatch costs per request: the app's fast path (api/fastpath.py)
against the full FastAPI/Starlette stack, in one process, on this thread's CPU clock.

    LITELLM_LOCAL_MODEL_COST_MAP=True python bench/fastpath_cpu.py

Each case is a POST to /v1/chat/completions that the app answers without waiting on anything,
timed in a running loop (handlers need one): a response-cache hit (the whole service path but
the upstream call: a 200; the cache is filled first from the fake upstream), a body that fails
validation (the handler parses and raises; the error handler renders the 400) and a refused
content type (the Gate's 415). The difference between the two apps is the layers the fast path
skips, which every request pays, answered or refused.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from timing import WARMUP_CALLS, report  # noqa: E402

from triage.api.app import create_app  # noqa: E402
from triage.config.loader import build_config  # noqa: E402
from triage.fakeupstream import FakeUpstreamThread  # noqa: E402

N = 20_000
GOOD = b'{"model": "local", "messages": [{"role": "user", "content": "hello there"}]}'
BODY = b'{"model": "local", "messages": "not a list"}'
HEADERS = [
    (b"host", b"127.0.0.1:4000"),
    (b"accept", b"application/json"),
    (b"content-type", b"application/json"),
    (b"user-agent", b"OpenAI/Python 1.82.0"),
    (b"content-length", str(len(BODY)).encode()),
]
TEXT = [(b"content-type", b"text/plain") if n == b"content-type" else (n, v) for n, v in HEADERS]


def _app(hot: bool, upstream: str) -> Any:
    deployment = {"model_name": "local", "litellm_params": {"model": "hosted_vllm/fake-model"}}
    deployment["litellm_params"]["api_base"] = upstream + "/v1"
    triage = {"ledger": {"enabled": False}, "cache": {"enabled": True}}
    config = build_config({"model_list": [deployment], "triage": triage}, {}, source="-")
    app = create_app(config)
    if not hot:
        app.hot_paths = frozenset()  # type: ignore[attr-defined]
    return app


async def _fill(app: Any) -> None:
    """One request to the upstream, so that the timed ones are cache hits."""
    import httpx

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:4000") as client:
        response = await client.post("/v1/chat/completions", content=GOOD, headers=dict(HEADERS))
        assert response.headers.get("x-triage-cache") == "miss", response.text


async def _timed(
    app: Any, headers: list[tuple[bytes, bytes]], body: bytes, status: int
) -> list[int]:
    """N timings (ns of this thread's CPU) of one request, in a running loop (handlers need
    one), after a warm-up and with GC paused, sorted."""
    length = str(len(body)).encode()
    headers = [(n, length if n == b"content-length" else v) for n, v in headers]
    sent: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            sent.append(message["status"])

    timings = []
    gc.disable()
    try:
        for i in range(-WARMUP_CALLS, N):
            scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions"}
            scope |= {"headers": headers, "query_string": b"", "root_path": ""}
            start = time.thread_time_ns()
            await app(scope, receive, send)
            if i >= 0:
                timings.append(time.thread_time_ns() - start)
            if sent.pop() != status:
                raise AssertionError("unexpected status")
    finally:
        gc.enable()
    return sorted(timings)


def main() -> None:
    with FakeUpstreamThread() as fake:
        apps = {"fast path": _app(True, fake.url), "full stack": _app(False, fake.url)}
        for app in apps.values():
            asyncio.run(_fill(app))
    cases = (("200 hit", HEADERS, GOOD, 200), ("400", HEADERS, BODY, 400))
    cases += (("415", TEXT, BODY, 415),)
    for _ in range(3):  # alternated: a busy machine drifts
        for case, headers, body, status in cases:
            for name, app in apps.items():
                timings = asyncio.run(_timed(app, headers, body, status))
                print(report(f"{name}, {case}", timings))


if __name__ == "__main__":
    main()
