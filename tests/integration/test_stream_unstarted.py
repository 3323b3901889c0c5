"""A stream whose client leaves while the response headers are being sent (the server's `send`
blocks, as it does when the client stopped reading, and the request is then cancelled): the
body generator never starts, so only the response's own cleanup can close what it reads from.
The upstream must be released (the deployment slot given back), the key's hold settled and
the request accounted, each on its own — not whenever the garbage collector gets to it.

Driven at the ASGI boundary, because only there can `send` be made to block on the headers;
the upstream is the project's fake on loopback, the ledger a real SQLite file.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import config_from, deployment
from triage.api import create_app
from triage.fakeupstream import FakeUpstreamThread
from triage.state import MemoryStore

KEY, ADMIN = "tk-team-0123456789", "ak-admin-0123456789"
MSG = [{"role": "user", "content": "hi"}]
PATHS = {
    "chat": ("/v1/chat/completions", {"messages": MSG}),
    "responses": ("/v1/responses", {"input": "hi"}),
    "messages": ("/v1/messages", {"max_tokens": 50, "messages": MSG}),
}


def _scope(path: str, body: bytes) -> dict[str, Any]:
    headers = [
        (b"host", b"127.0.0.1"),
        (b"content-type", b"application/json"),
        (b"authorization", f"Bearer {KEY}".encode()),
        (b"content-length", str(len(body)).encode()),
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
        "server": ("127.0.0.1", 80),
    }


async def _leave_during_headers(app: Any, path: str, body: bytes) -> None:
    sent = False
    headers_out = asyncio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # no disconnect message: the server cancels instead
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            headers_out.set()
            await asyncio.Event().wait()  # the client stopped reading: the write blocks

    task = asyncio.create_task(app(_scope(path, body), receive, send))
    await asyncio.wait_for(headers_out.wait(), 20)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@pytest.mark.parametrize("kind", sorted(PATHS))
def test_a_stream_left_before_its_first_write_is_released_and_accounted(
    fake: FakeUpstreamThread, tmp_path: Path, kind: str
) -> None:
    fake.configure(completion_tokens=40, latency_ms=50)  # the answer takes several reads
    ledger = tmp_path / "ledger.db"
    priced = {"input_cost_per_token": "0.000001", "output_cost_per_token": "0.000002"}
    config = config_from(
        {
            "model_list": [
                deployment("m", "openai/gpt-4o", fake.url + "/v1", id="a", params=priced)
            ],
            "router_settings": {"routing_strategy": "least-busy"},
            "auth": {
                "keys": [{"id": "team", "key": "os.environ/K", "budget": {"daily_usd": 10}}],
                "admin_key": "os.environ/A",
            },
            "triage": {"ledger": {"path": str(ledger)}},
        },
        {"K": KEY, "A": ADMIN},
    )
    store = MemoryStore()
    app = create_app(config, store=store)
    path, extra = PATHS[kind]
    body = json.dumps({"model": "m", "stream": True, **extra}).encode()

    async def run() -> dict[str, Any]:
        await _leave_during_headers(app, path, body)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            keys = await client.get("/admin/keys", headers={"authorization": f"Bearer {ADMIN}"})
        assert keys.status_code == 200
        team: dict[str, Any] = next(k for k in keys.json()["data"] if k["id"] == "team")
        return team

    team = asyncio.run(run())
    assert store.in_flight("a") == 0  # the slot came back
    assert team["in_flight"] == 0 and float(team["spend"]["reserved_usd"]) == 0  # the hold settled
    with sqlite3.connect(ledger) as db:
        statuses = [row[0] for row in db.execute("SELECT status FROM usage")]
    assert statuses == [499]  # accounted, as a request whose client left
