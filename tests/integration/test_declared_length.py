"""A body whose declared content-length passes `server.max_body_bytes` is refused from its
headers alone: the 413 comes while the client has sent almost nothing, so nobody can make the
server wait for (or read) a body it will refuse anyway."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import pytest

from tests.helpers import config_from, deployment, serve
from triage.api import create_app
from triage.fakeupstream import FakeUpstreamThread

LIMIT = 4096


def _head(length_header: bytes) -> bytes:
    return (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\n"
        b"content-type: application/json\r\n" + length_header + b"\r\n"
    )


@pytest.mark.parametrize(
    "length_header",
    [
        b"content-length: %d\r\n" % (LIMIT + 1),
        b"Content-Length: %d\r\n" % (10**12),
    ],
)
def test_a_declared_length_over_the_cap_is_a_413_before_the_body_is_sent(
    fake: FakeUpstreamThread, length_header: bytes
) -> None:
    config = config_from(
        {
            "model_list": [deployment("m", "hosted_vllm/fake-model", fake.url + "/v1")],
            "server": {"max_body_bytes": LIMIT},
        }
    )
    with serve(create_app(config)) as url:
        where = urlsplit(url)
        with socket.create_connection((where.hostname, where.port), timeout=10) as sock:
            sock.sendall(_head(length_header) + b'{"model": "m"')  # and never the rest
            answer = b""
            while b"\r\n\r\n" not in answer:
                data = sock.recv(4096)  # the timeout above fails a server that waits
                if not data:
                    break
                answer += data
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert fake.requests() == []
