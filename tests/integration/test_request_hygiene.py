"""What a client controls in the request line and headers never comes back as ours: a client
`x-request-id` is used only when it is a plain id, and a stray trailing slash is a 404, never a
redirect built from the client's Host header. Real uvicorn server on loopback."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import config_from, deployment, serve
from triage.api import create_app
from triage.fakeupstream import FakeUpstreamThread
from triage.ledger import Ledger

MSG = [{"role": "user", "content": "hi"}]
GENERATED = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
def gateway(fake: FakeUpstreamThread, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    ledger = tmp_path / "l.db"
    config = config_from(
        {
            "model_list": [deployment("m", "hosted_vllm/fake-model", fake.url + "/v1")],
            "triage": {"ledger": {"enabled": True, "path": str(ledger)}},
        }
    )
    with serve(create_app(config)) as url:
        yield url, ledger


def _chat(url: str, rid: bytes) -> httpx.Response:
    return httpx.post(
        url + "/v1/chat/completions",
        json={"model": "m", "messages": MSG},
        headers=[(b"x-request-id", rid)],
        timeout=30,
    )


@pytest.mark.parametrize(
    "rid",
    [b"3f2b9c1e-8d4a-4b7e-9f00-123456789abc", b"01HZX3J6K8M9N0PQRSTVWXYZ12", b"trace:a.b_c-1"],
)
def test_a_plain_client_request_id_is_kept(gateway: tuple[str, Path], rid: bytes) -> None:
    url, _ = gateway
    assert _chat(url, rid).headers["x-request-id"] == rid.decode()


@pytest.mark.parametrize(
    "rid",
    [
        b"",
        b"a" * 129,
        b"has space",
        b"tab\there",
        b"<script>alert(1)</script>",
        b'quote"d',
        b"abc%0d%0aSet-Cookie:%20x=1",
        b"\\r\\nInjected: 1",
        b"caf\xc3\xa9",  # non-ASCII bytes
        b"id;drop table usage",
        b"../../etc/passwd",
    ],
)
def test_a_hostile_request_id_is_replaced(gateway: tuple[str, Path], rid: bytes) -> None:
    url, ledger = gateway
    response = _chat(url, rid)
    assert response.status_code == 200
    echoed = response.headers["x-request-id"]
    assert GENERATED.fullmatch(echoed), echoed
    with Ledger(ledger) as rows:
        assert [row.request_id for row in rows.rows()] == [echoed]


def test_hostile_ids_get_distinct_replacements(gateway: tuple[str, Path]) -> None:
    url, _ = gateway
    ids = {_chat(url, b"not an id").headers["x-request-id"] for _ in range(3)}
    assert len(ids) == 3


@pytest.mark.parametrize("path", ["/v1/chat/completions/", "/v1/models/", "/health/"])
def test_a_trailing_slash_is_a_404_not_a_redirect_to_the_clients_host(
    gateway: tuple[str, Path], path: str
) -> None:
    url, _ = gateway
    for host in ("evil.example", None):
        headers = {"host": host} if host else {}
        response = httpx.request(
            "POST" if "chat" in path else "GET",
            url + path,
            json={"model": "m", "messages": MSG},
            headers=headers,
            follow_redirects=False,
            timeout=30,
        )
        assert not response.is_redirect, (host, response.headers.get("location"))
        assert "location" not in response.headers
        assert "evil.example" not in response.text
        if host is None:
            assert response.status_code == 404
            assert response.json()["error"]["type"] == "invalid_request_error"
