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
from triage.api import render
from triage.api.render import raw_headers
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


# An answer's headers as Triage's own answers carry them (render.Head), and hostile variants.
OURS = {
    "x-request-id": "6c980a4b7ddcaabe29ee05a38f7f6c1a",
    "x-triage-task": "qa",
    "x-triage-reason": "model",
    "x-triage-cost-usd": "0.000123",
}
JSON_TYPE = ((b"content-type", b"application/json"),)


def _head(headers: dict[str, str], length: int | None = len(JSON)) -> Head:
    return raw_headers(headers, JSON_TYPE, length)


def _changed(edit: str) -> Head:
    """A Head changed in place after it was built, as a middleware holding it might."""
    head = _head(OURS)
    assert type(head) is render.Head
    if edit == "append":
        head.append((b"x-added", b"1"))
    elif edit == "evil":
        head[0] = (b"x-request-id", b"a\r\nset-cookie: b")
    elif edit == "length":
        head[len(OURS)] = (b"content-length", b"4")
    else:
        del head[1]
    return head


HEADS = {
    "/head": lambda: _head(OURS),
    "/head-empty": lambda: _head({}),
    "/head-bad-value": lambda: _head({**OURS, "x-request-id": "a\r\nset-cookie: b"}),
    "/head-tab": lambda: _head({**OURS, "x-triage-reason": "a\tb"}),
    "/head-bad-del": lambda: _head({**OURS, "x-triage-reason": "a\x7f"}),
    "/head-mixed-case": lambda: _head({"X-Triage-Task": "qa", **OURS}),
    "/head-unknown-name": lambda: _head({"x evil": "a", **OURS}),
    "/head-latin-1": lambda: _head({**OURS, "x-triage-reason": "caf\xe9"}),
    "/head-appended": lambda: _changed("append"),
    "/head-made-evil": lambda: _changed("evil"),
    "/head-length-changed": lambda: _changed("length"),
    "/head-shortened": lambda: _changed("delete"),
}


async def _streamed_head(send: Any) -> None:
    headers = raw_headers(OURS, ((b"content-type", b"text/event-stream"),))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
    await send({"type": "http.response.body", "body": b""})


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
    elif path in HEADS:
        await _plain(send, HEADS[path]())
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
    "/head-stream": _streamed_head,
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
    *HEADS,
    "/head-stream",
]
REFUSED = {"/bad-value", "/bad-name", "/head-unknown-name", "/head-made-evil"}
REFUSED |= {"/head-bad-value", "/head-bad-del"}


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
    assert (theirs == b"") == (path in REFUSED)


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
