"""The server's one-write answers (api/cycle.py) put on the wire exactly what uvicorn's own
cycle puts there: the same ASGI app is served by `triage serve`'s protocol and by plain uvicorn,
each answer is read raw from a socket, and the two must be byte-identical (but for `date`), for
plain answers and every case that must fall back to uvicorn's own path: streams, HEAD, 204,
HTTP/1.0, `connection: close`, a body in parts, a body longer or shorter than declared, a
header that fails uvicorn's checks, messages out of order.
"""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers import serve
from triage.api.server import server_options
from triage.config.schema import ServerSettings

Head = list[tuple[bytes, bytes]]
JSON = b'{"ok":true}'
LENGTH: Head = [(b"content-type", b"application/json"), (b"content-length", b"11")]


async def _plain(send: Any, headers: Head = LENGTH, status: int = 200) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": JSON})


async def _parts(send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": LENGTH})
    await send({"type": "http.response.body", "body": JSON[:4], "more_body": True})
    await send({"type": "http.response.body", "body": JSON[4:]})


async def _stream(send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    for part in (b"data: 1\n\n", b"data: 2\n\n"):
        await send({"type": "http.response.body", "body": part, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def _stream_empty_first(send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"", "more_body": True})
    await send({"type": "http.response.body", "body": b"data: 1\n\n"})


async def _stream_whole(send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"data: all\n\n"})


async def _stream_twice(send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.start", "status": 200, "headers": []})


async def _twice(send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": LENGTH})
    await send({"type": "http.response.start", "status": 200, "headers": LENGTH})


async def _long(send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": LENGTH})
    await send({"type": "http.response.body", "body": JSON + b"extra"})


async def _short(send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": LENGTH})
    await send({"type": "http.response.body", "body": JSON[:3]})


async def app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await receive()
    path = scope["path"]
    if path == "/plain":
        await _plain(send)
    elif path == "/close":
        await _plain(send, [*LENGTH, (b"Connection", b"keep-alive, Close")])
    elif path == "/no-content":
        await _empty(send, 204)
    elif path == "/bad-value":
        await _plain(send, [*LENGTH, (b"x-evil", b"a\r\nset-cookie: b")])
    elif path == "/bad-name":
        await _plain(send, [*LENGTH, (b"x evil", b"a")])
    elif path == "/chunked-declared":
        await _plain(send, [*LENGTH, (b"transfer-encoding", b"chunked")])
    elif path == "/mixed-case":
        await _plain(send, [(b"Content-Length", b"11"), (b"X-Triage-Task", b"qa")], 201)
    else:
        await _OTHERS.get(path, _short)(send)


async def _empty(send: Any, status: int) -> None:
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": b""})


_OTHERS = {
    "/parts": _parts,
    "/stream": _stream,
    "/stream-empty-first": _stream_empty_first,
    "/stream-whole": _stream_whole,
    "/stream-twice": _stream_twice,
    "/twice": _twice,
    "/long": _long,
}


@pytest.fixture(scope="module")
def ports() -> Iterator[tuple[int, int]]:
    """(triage's protocol, uvicorn's own httptools protocol), same app, same defaults."""
    ours = server_options(ServerSettings())  # as `triage serve` runs it: no access log
    plain = {"http": "httptools", "proxy_headers": False}
    quiet = {"log_level": "critical", "lifespan": "off", "access_log": False}
    with serve(app, **ours, **quiet) as triage, serve(app, **plain, **quiet) as bare:
        yield _port(triage), _port(bare)


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def _exchange(port: int, request: bytes, requests: int = 1) -> bytes:
    """Send `request` `requests` times on one connection; what came back, read until the
    connection closes or stays quiet for a while after the last complete answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request * requests)
        sock.settimeout(0.5)
        received = b""
        while True:
            try:
                data = sock.recv(65536)
            except TimeoutError:
                break
            if not data:
                break
            received += data
    return re.sub(rb"date: [^\r]*\r\n", b"date: -\r\n", received)


CASES = [
    "/plain",
    "/close",
    "/no-content",
    "/bad-value",
    "/bad-name",
    "/chunked-declared",
    "/mixed-case",
    "/parts",
    "/stream",
    "/stream-empty-first",
    "/stream-whole",
    "/stream-twice",
    "/twice",
    "/long",
    "/short",
]


@pytest.mark.parametrize("path", CASES)
@pytest.mark.parametrize("version", ["1.1", "1.0"])
def test_answers_are_byte_identical_to_uvicorns(
    ports: tuple[int, int], path: str, version: str
) -> None:
    request = f"GET {path} HTTP/{version}\r\nhost: x\r\n\r\n".encode()
    triage, plain = ports
    ours, theirs = _exchange(triage, request), _exchange(plain, request)
    assert ours == theirs
    # uvicorn closes without a word on a header that fails its checks; else there is an answer
    assert (theirs == b"") == path.startswith("/bad")


@pytest.mark.parametrize("method", ["HEAD", "POST"])
def test_head_and_kept_alive_answers_are_identical(ports: tuple[int, int], method: str) -> None:
    body = b"" if method == "HEAD" else b"content-length: 2\r\n\r\n{}"
    request = f"{method} /plain HTTP/1.1\r\nhost: x\r\n".encode() + (body or b"\r\n")
    triage, plain = ports
    ours, theirs = _exchange(triage, request, 3), _exchange(plain, request, 3)
    assert ours == theirs
    assert theirs.count(b"HTTP/1.1 200 OK") == 3


def test_the_access_log_line_is_uvicorns(
    ports: tuple[int, int], caplog: pytest.LogCaptureFixture
) -> None:
    lines = []
    for port in ports:
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="uvicorn.access"):
            _exchange(port, b"GET /plain?q=1 HTTP/1.1\r\nhost: x\r\n\r\n")
        lines.append([re.sub(r":\d+ - ", ":PORT - ", r.getMessage()) for r in caplog.records])
    assert lines[0] == lines[1] == ['127.0.0.1:PORT - "GET /plain?q=1 HTTP/1.1" 200']
