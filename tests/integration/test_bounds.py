"""Bounds on clients, against a real `triage serve` process over raw loopback sockets: huge or
numerous headers are refused, clients that trickle their headers or body are answered 408 and
closed within the configured timeouts, and connections over the cap get a 503, each in OpenAI
shape, while everyone else keeps being served.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest

from tests.integration.bounds_support import HostileUpstream, memory, triage_serve

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 2.0
SLACK = 3.0  # generous: 400 connections on a 2-core machine shared with other work
MB = 1000 * 1000
CHAT = {"model": "ok", "messages": [{"role": "user", "content": "hi"}]}


def _config(upstream: HostileUpstream, **server: Any) -> dict[str, Any]:
    return {
        "model_list": [
            {
                "model_name": "ok",
                "litellm_params": {"model": "hosted_vllm/ok", "api_base": upstream.url + "/v1"},
            }
        ],
        "router_settings": {"num_retries": 0, "timeout": 10},
        "server": server,
    }


@pytest.fixture(scope="module")
def upstream() -> Iterator[HostileUpstream]:
    with HostileUpstream() as ordinary:  # only ever asked for model `ok`: a small answer
        yield ordinary


@pytest.fixture(scope="module")
def gateway(
    upstream: HostileUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, int]]:
    config = _config(upstream, header_timeout=HEADER_TIMEOUT, body_timeout=BODY_TIMEOUT)
    with triage_serve(tmp_path_factory.mktemp("bounds"), config) as served:
        assert httpx.post(served[0] + "/v1/chat/completions", json=CHAT).status_code == 200
        yield served


def _port(url: str) -> int:
    port = urlparse(url).port
    assert port is not None
    return port


def _error(answer: bytes) -> dict[str, Any]:
    """The OpenAI-shaped error of a raw HTTP answer."""
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in head.lower(), head
    assert b"connection: close" in head.lower(), head
    error: dict[str, Any] = json.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


async def _trickle(port: int, head: bytes, drip: bytes, limit: float) -> tuple[float, bytes]:
    """Send `head`, then `drip` every 0.25 s until the server closes the connection (at most
    `limit` seconds); returns how long that took and what the server answered."""
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    start = loop.time()
    writer.write(head)
    answer = b""
    try:
        while loop.time() - start < limit:
            try:
                data = await asyncio.wait_for(reader.read(65536), 0.25)
            except TimeoutError:
                writer.write(drip)
                await writer.drain()
                continue
            if not data:
                break
            answer += data
    except OSError:  # reset: closed too
        pass
    finally:
        writer.close()
    return loop.time() - start, answer


def _chat_head(length: int) -> bytes:
    return (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\n"
        b"content-type: application/json\r\ncontent-length: %d\r\n\r\n" % length
    )


async def _slow_clients(port: int, url: str) -> tuple[list[Any], list[Any], int]:
    """200 clients trickling headers and 200 trickling bodies, and meanwhile one ordinary
    request; returns both groups' results and the ordinary request's status."""
    partial = b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\n"
    limit = max(HEADER_TIMEOUT, BODY_TIMEOUT) + SLACK + 5
    headers = [_trickle(port, partial, b"x-slow: 1\r\n", limit) for _ in range(200)]
    bodies = [_trickle(port, _chat_head(10_000) + b"{", b" ", limit) for _ in range(200)]
    everything = asyncio.gather(*headers, *bodies)
    await asyncio.sleep(0.5)
    async with httpx.AsyncClient(timeout=10) as client:
        ordinary = await client.post(url + "/v1/chat/completions", json=CHAT)
    results = await everything
    return results[:200], results[200:], ordinary.status_code


def test_clients_trickling_headers_or_bodies_get_408_and_are_closed_in_time(
    gateway: tuple[str, int],
) -> None:
    url, _ = gateway
    headers, bodies, ordinary = asyncio.run(_slow_clients(_port(url), url))
    assert ordinary == 200  # the slow clients do not keep others out
    for timeout, group in ((HEADER_TIMEOUT, headers), (BODY_TIMEOUT, bodies)):
        slowest = max(seconds for seconds, _ in group)
        assert slowest < timeout + SLACK, f"a connection was held {slowest:.1f}s"
        # Each answer, where one was read before the close, is a 408; none is a 200.
        answers = [answer for _, answer in group if answer]
        assert answers, "no connection got an answer"
        for answer in answers:
            assert answer.startswith(b"HTTP/1.1 408 "), answer[:100]
            assert _error(answer)["code"] == "request_timeout"


def test_a_body_trickled_past_body_timeout_is_answered_408_not_200(
    gateway: tuple[str, int],
) -> None:
    url, _ = gateway
    body = json.dumps(CHAT).encode()
    head, rest = _chat_head(len(body)) + body[:10], body[10:]

    async def trickle() -> tuple[float, bytes]:
        # One byte of the body every 0.25 s: it would be complete in ~12 s.
        loop = asyncio.get_running_loop()
        reader, writer = await asyncio.open_connection("127.0.0.1", _port(url))
        start = loop.time()
        writer.write(head)
        reading = asyncio.ensure_future(reader.read())
        try:
            for byte in rest:
                if reading.done():
                    break
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(0.25)
        except OSError:
            pass
        answer = await asyncio.wait_for(reading, SLACK)
        writer.close()
        return loop.time() - start, answer

    seconds, answer = asyncio.run(trickle())
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    error = _error(answer)
    assert error["code"] == "request_timeout" and "server.body_timeout" in error["message"]
    assert error["type"] == "invalid_request_error"
    assert seconds < BODY_TIMEOUT + SLACK


def test_a_client_that_connects_and_says_nothing_is_closed_after_header_timeout(
    gateway: tuple[str, int],
) -> None:
    with socket.create_connection(("127.0.0.1", _port(gateway[0])), timeout=10) as sock:
        start = time.monotonic()
        assert sock.recv(100) == b""  # closed, without an answer to a request never made
        assert time.monotonic() - start < HEADER_TIMEOUT + SLACK


def _send_huge_header(port: int, size: int, results: list[bytes | str]) -> None:
    payload = memoryview(b"a" * size)
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        try:
            sock.sendall(b"GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\nx-big: ")
            for offset in range(0, size, MB):
                sock.sendall(payload[offset : offset + MB])
            sock.sendall(b"\r\n\r\n")
        except OSError:
            pass  # the server closed the connection while we were still sending
        try:
            results.append(sock.recv(65536) or "closed")
        except OSError:
            results.append("closed")


def test_eight_48_mib_headers_are_refused_while_health_keeps_answering(
    gateway: tuple[str, int],
) -> None:
    url, pid = gateway
    before = memory(pid)["VmHWM"]
    results: list[bytes | str] = []
    senders = [
        threading.Thread(target=_send_huge_header, args=(_port(url), 48 * 1024 * 1024, results))
        for _ in range(8)
    ]
    for sender in senders:
        sender.start()
    slowest_health = 0.0
    with httpx.Client(timeout=10) as client:
        while any(sender.is_alive() for sender in senders):
            start = time.monotonic()
            assert client.get(url + "/health").status_code == 200
            slowest_health = max(slowest_health, time.monotonic() - start)
            time.sleep(0.02)
    for sender in senders:
        sender.join()
    growth = memory(pid)["VmHWM"] - before
    assert len(results) == 8
    for result in results:  # refused with a 431, or cut off mid-send (a reset loses the 431)
        assert result == "closed" or (
            isinstance(result, bytes) and result.startswith(b"HTTP/1.1 431 ")
        ), result[:100]
    assert growth < 32 * MB, f"peak RSS grew {growth / MB:.0f} MB"
    assert slowest_health < 1.0, f"/health took {slowest_health:.2f}s during the flood"


def _raw(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer


def test_too_many_or_too_large_headers_get_431_in_openai_shape(gateway: tuple[str, int]) -> None:
    port = _port(gateway[0])
    many = b"".join(b"x-h%d: 1\r\n" % i for i in range(101))
    large = b"x-big: " + b"a" * (64 * 1024) + b"\r\n"
    for extra, words in ((many, "more than 100"), (large, "over 65536 bytes")):
        answer = _raw(port, b"GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\n" + extra + b"\r\n")
        assert answer.startswith(b"HTTP/1.1 431 "), answer[:100]
        error = _error(answer)
        assert error["code"] == "request_headers_too_large" and words in error["message"]
    # Just under both bounds is served.
    fine = b"".join(b"x-h%d: 1\r\n" % i for i in range(90))
    request = b"GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n" + fine + b"\r\n"
    answer = _raw(port, request)
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:100]


def test_connections_over_the_cap_get_503_until_some_close(
    upstream: HostileUpstream, tmp_path: Path
) -> None:
    config = _config(upstream, max_connections=20, header_timeout=30)
    with triage_serve(tmp_path, config) as (url, _):
        idle = [socket.create_connection(("127.0.0.1", _port(url))) for _ in range(20)]
        try:
            time.sleep(0.3)  # let the server accept them all
            refused = httpx.get(url + "/health", timeout=10)
            assert refused.status_code == 503
            assert refused.json()["error"]["code"] == "server_busy"
            assert refused.headers["retry-after"] == "1"
        finally:
            for sock in idle:
                sock.close()
        deadline = time.monotonic() + 10
        while httpx.get(url + "/health", timeout=10).status_code != 200:
            assert time.monotonic() < deadline, "the cap did not free up"
            time.sleep(0.1)
