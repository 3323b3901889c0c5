"""The protocol's header and body deadlines hold for every request of a kept-alive connection,
and a body deadline shorter than the header deadline is not stretched to it (api/server.py keeps
one lazy timer per connection). Real uvicorn with `triage serve`'s protocol, raw sockets."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from tests.integration.test_disconnects import MSG
from tests.integration.test_hangups import _request, served
from triage.fakeupstream import FakeUpstreamThread

SLACK = 3.0  # generous: a 2-core machine shared with other work


def _answer(sock: socket.socket, limit: float) -> tuple[float, bytes]:
    """What the server sends until it closes the connection, and how long that took."""
    start, answer = time.monotonic(), b""
    sock.settimeout(limit)
    try:
        while chunk := sock.recv(65536):
            answer += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return time.monotonic() - start, answer


def _first_answer(sock: socket.socket) -> bytes:
    answer = b""
    while b'"choices"' not in answer:
        chunk = sock.recv(65536)
        assert chunk, answer
        answer += chunk
    return answer


def test_a_body_deadline_shorter_than_the_header_deadline_holds(
    fake: FakeUpstreamThread, tmp_path: Path
) -> None:
    with served(fake, tmp_path / "l.db", header_timeout=30, body_timeout=0.5) as url:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(_request({"model": "m", "messages": MSG})[:-5])  # the body, short
            took, answer = _answer(sock, 30)
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert took < 0.5 + SLACK


def test_the_second_request_of_a_kept_alive_connection_has_its_own_deadlines(
    fake: FakeUpstreamThread, tmp_path: Path
) -> None:
    with served(fake, tmp_path / "l.db", header_timeout=1, body_timeout=1) as url:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(_request({"model": "m", "messages": MSG}))
            assert _first_answer(sock).startswith(b"HTTP/1.1 200")
            time.sleep(1.5)  # idle past both deadlines: no request is due yet, none fires
            sock.sendall(_request({"model": "m", "messages": MSG}))
            assert _first_answer(sock).startswith(b"HTTP/1.1 200")
            sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\n")
            took, answer = _answer(sock, 30)  # the third one's headers never finish
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert took < 1 + SLACK
