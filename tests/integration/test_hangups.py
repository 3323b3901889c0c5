"""Under `triage serve`'s own protocol (api/server.py) a client that goes away is noticed
through the request's `Hangup`, with no watcher task: the upstream call is cancelled and the
ledger records a 499, for plain and streamed requests, one request of a kept-alive connection
at a time, and among many clients leaving at once while others stay."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from tests.helpers import config_from, deployment, free_port
from tests.integration.test_disconnects import MSG, PRICED, leave_early, rows, wait_for
from triage.api import create_app
from triage.api.server import server_options
from triage.fakeupstream import FakeUpstreamThread


@contextmanager
def served(fake: FakeUpstreamThread, ledger: Path, **server: Any) -> Iterator[str]:
    """The app under uvicorn with the options `triage serve` passes (BoundedProtocol)."""
    config = config_from(
        {
            "model_list": [
                deployment("m", "hosted_vllm/fake-model", fake.url + "/v1", params=PRICED)
            ],
            "router_settings": {"num_retries": 0, "timeout": 60},
            "triage": {"ledger": {"enabled": True, "path": str(ledger)}},
            "server": server,
        }
    )
    port = free_port()
    options = server_options(config.server)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(config), host="127.0.0.1", port=port, log_level="warning", **options
        )
    )
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _request(body: dict[str, Any]) -> bytes:
    raw = json.dumps(body).encode()
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\n"
        f"content-type: application/json\r\ncontent-length: {len(raw)}\r\n\r\n"
    )
    return head.encode() + raw


def test_a_plain_client_that_leaves_cancels_the_upstream_call(
    fake: FakeUpstreamThread, tmp_path: Path
) -> None:
    ledger = tmp_path / "l.db"
    body = {"model": "m", "messages": MSG}
    with served(fake, ledger) as url:
        assert httpx.post(url + "/v1/chat/completions", json=body, timeout=30).status_code == 200
        fake.configure(latency_ms=30_000)
        leave_early(url, "/v1/chat/completions", body, fake)
        assert wait_for(lambda: fake.stats()["cancelled"] == 1), fake.stats()
        assert wait_for(lambda: len(rows(ledger)) == 2)
    row = rows(ledger)[1]
    assert (row.status, row.error, row.cost_usd) == (499, "client_disconnected", 0)


def test_a_stream_client_that_leaves_before_or_during_the_stream_cancels_it(
    fake: FakeUpstreamThread, tmp_path: Path
) -> None:
    ledger = tmp_path / "l.db"
    body = {"model": "m", "messages": MSG, "stream": True}
    with served(fake, ledger) as url:
        fake.configure(ttft_ms=30_000)
        leave_early(url, "/v1/chat/completions", body, fake)
        assert wait_for(lambda: fake.stats()["cancelled"] == 1), fake.stats()
        fake.configure(ttft_ms=0, tokens_per_second=20, completion_tokens=400)
        with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=10) as answer:
            seen = 0
            for line in answer.iter_lines():
                seen += line.startswith("data: {")
                if seen == 3:
                    break
        assert wait_for(lambda: fake.stats()["cancelled"] == 2), fake.stats()
        assert wait_for(lambda: len(rows(ledger)) == 2)
    before, midway = rows(ledger)
    assert (before.status, before.completion_tokens) == (499, 0)
    assert (midway.status, midway.error) == (499, "client_disconnected")
    assert 0 < midway.completion_tokens < 400 and midway.cost_usd > 0


def test_only_the_request_in_flight_on_a_kept_alive_connection_is_ended(
    fake: FakeUpstreamThread, tmp_path: Path
) -> None:
    ledger = tmp_path / "l.db"
    body = {"model": "m", "messages": MSG}
    with served(fake, ledger) as url:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(_request(body))
            first = b""
            while b'"choices"' not in first:  # the whole first answer, connection kept
                chunk = sock.recv(65536)
                assert chunk, first
                first += chunk
            assert first.startswith(b"HTTP/1.1 200")
            fake.configure(latency_ms=30_000)
            seen = fake.stats()["requests"]
            sock.sendall(_request(body))
            assert wait_for(lambda: fake.stats()["requests"] > seen)
        assert wait_for(lambda: fake.stats()["cancelled"] == 1), fake.stats()
        assert wait_for(lambda: len(rows(ledger)) == 2)
    assert [row.status for row in rows(ledger)] == [200, 499]


def test_many_clients_leaving_at_once_end_only_their_own_requests(
    fake: FakeUpstreamThread, tmp_path: Path
) -> None:
    ledger = tmp_path / "l.db"
    body = {"model": "m", "messages": MSG}
    leaving, staying = 12, 6
    with served(fake, ledger) as url:
        port = int(url.rsplit(":", 1)[1])
        fake.configure(latency_ms=1_500)
        socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(leaving)]
        with httpx.Client(timeout=30) as client:

            def stay() -> int:
                return client.post(url + "/v1/chat/completions", json=body).status_code

            threads: list[int] = []
            workers = [
                threading.Thread(target=lambda: threads.append(stay())) for _ in range(staying)
            ]
            for worker in workers:
                worker.start()
            for sock in socks:
                sock.sendall(_request(body))
            assert wait_for(lambda: fake.stats()["requests"] >= leaving + staying)
            for sock in socks:
                sock.close()
            for worker in workers:
                worker.join(timeout=30)
        assert threads == [200] * staying
        assert wait_for(lambda: len(rows(ledger)) == leaving + staying)
    statuses = sorted(row.status for row in rows(ledger))
    assert statuses == [200] * staying + [499] * leaving
    assert fake.stats()["cancelled"] == leaving
