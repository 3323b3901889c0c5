"""A keyless loopback server against what a web page can make a browser send: cross-origin
form and text/plain POSTs (no CORS preflight), a foreign `Host` after DNS rebinding, and
`Sec-Fetch-Site: cross-site` reads. Each is refused before any route runs, and nothing reaches
the upstream; the openai SDK and same-origin or listed origins keep working."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.helpers import config_from, deployment, serve
from triage.api import create_app
from triage.api.gate import allowed_hosts
from triage.fakeupstream import FakeUpstreamThread

CHAT = '{"model": "local", "messages": [{"role": "user", "content": "hi"}]}'
FORM = "model=local&messages=hi"
PAGE = "http://evil.example"
TARGETS = [
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/triage/explain"),
    ("POST", "/admin/reload"),
    ("GET", "/admin/keys"),
    ("GET", "/metrics"),
    ("GET", "/v1/triage/usage"),
    ("GET", "/v1/models"),
]


def _config(fake: FakeUpstreamThread, tmp_path: Path, **server: Any) -> Any:
    return config_from(
        {
            "model_list": [deployment("local", "hosted_vllm/small", fake.url + "/v1")],
            "triage": {"ledger": {"path": str(tmp_path / "usage.db")}},
            "server": server,
        }
    )


@pytest.fixture
def gateway(fake: FakeUpstreamThread, tmp_path: Path) -> Iterator[str]:
    config = _config(fake, tmp_path, cors_origins=["http://app.example"])
    with serve(create_app(config, config_source=lambda: config)) as url:
        yield url


def _send(url: str, method: str, path: str, **headers: str) -> httpx.Response:
    body = CHAT if method == "POST" else None
    return httpx.request(method, url + path, content=body, headers=headers)


ATTACKS: dict[str, dict[str, str]] = {
    "cross-origin form": {"origin": PAGE, "content-type": "application/x-www-form-urlencoded"},
    "cross-origin text/plain": {"origin": PAGE, "content-type": "text/plain;charset=UTF-8"},
    "cross-origin json": {"origin": PAGE, "content-type": "application/json"},
    "origin null": {"origin": "null", "content-type": "text/plain"},
    "other port of localhost": {"origin": "http://localhost:9999"},
    "cross-site fetch without origin": {"sec-fetch-site": "cross-site"},
    "rebound host": {"host": "evil.example", "content-type": "application/json"},
    "rebound host with port": {"host": "evil.example:4000", "origin": "http://evil.example:4000"},
    "loopback as a subdomain": {"host": "127.0.0.1.evil.example"},
    "localhost as a prefix": {"host": "localhost.evil.example"},
}


@pytest.mark.parametrize("attack", ATTACKS)
def test_browser_attacks_are_refused_and_reach_nothing(
    gateway: str, fake: FakeUpstreamThread, attack: str
) -> None:
    for method, path in TARGETS:
        response = _send(gateway, method, path, **ATTACKS[attack])
        assert 400 <= response.status_code < 500, (method, path, response.status_code)
        assert response.status_code in (403, 415, 421)
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
    assert fake.requests() == []


def test_a_plain_text_post_without_origin_is_415(gateway: str, fake: FakeUpstreamThread) -> None:
    for content_type in (
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/jsonx",
        "text/json",
    ):
        for path in ("/v1/chat/completions", "/admin/reload", "/v1/embeddings"):
            response = _send(gateway, "POST", path, **{"content-type": content_type})
            assert response.status_code == 415, (content_type, path)
            assert response.json()["error"]["code"] == "unsupported_media_type"
    assert fake.requests() == []


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "APPLICATION/JSON",
        "application/x+json",
    ],
)
def test_json_content_types_are_served(gateway: str, content_type: str) -> None:
    response = _send(gateway, "POST", "/v1/chat/completions", **{"content-type": content_type})
    assert response.status_code == 200


@pytest.mark.parametrize(
    "host", ["localhost", "LOCALHOST:1234", "127.0.0.1", "[::1]:80", "localhost."]
)
def test_loopback_host_names_are_served(gateway: str, host: str) -> None:
    assert _send(gateway, "GET", "/v1/models", host=host).status_code == 200


def test_same_origin_and_listed_origins_are_served(gateway: str) -> None:
    authority = gateway.removeprefix("http://")
    same = _send(gateway, "GET", "/v1/models", origin=gateway, **{"sec-fetch-site": "same-origin"})
    assert same.status_code == 200
    listed = _send(
        gateway,
        "POST",
        "/v1/chat/completions",
        origin="http://app.example",
        **{"content-type": "application/json", "sec-fetch-site": "cross-site"},
    )
    assert listed.status_code == 200
    assert listed.headers["access-control-allow-origin"] == "http://app.example"
    # The page's own origin must name this very host and port.
    other = _send(gateway, "GET", "/v1/models", origin="http://" + authority + "0")
    assert other.status_code == 403


def test_liveness_answers_any_host(gateway: str) -> None:
    assert _send(gateway, "GET", "/health", host="10.1.2.3:4000").status_code == 200
    assert _send(gateway, "GET", "/health/ready", host="10.1.2.3:4000").status_code == 421


def test_the_openai_sdk_still_works(gateway: str) -> None:
    client = openai.OpenAI(base_url=gateway + "/v1", api_key="unused", max_retries=0)
    answer = client.chat.completions.create(
        model="local", messages=[{"role": "user", "content": "hi"}]
    )
    assert answer.choices[0].message.content
    assert [m.id for m in client.models.list()] == ["auto", "local"]


def test_configured_hosts_replace_the_defaults(fake: FakeUpstreamThread, tmp_path: Path) -> None:
    config = _config(fake, tmp_path, allowed_hosts=["gateway.internal"])
    with serve(create_app(config)) as url:
        assert _send(url, "GET", "/v1/models", host="gateway.internal:8").status_code == 200
        assert _send(url, "GET", "/v1/models", host="localhost").status_code == 421
    config = _config(fake, tmp_path, allowed_hosts=["*"])
    with serve(create_app(config)) as url:
        assert _send(url, "GET", "/v1/models", host="anything.example").status_code == 200


def test_default_hosts_follow_the_bind_and_the_keys() -> None:
    loopback = {b"localhost", b"127.0.0.1", b"[::1]"}
    assert allowed_hosts(None, bind_host="127.0.0.1", keyed=False) == loopback
    assert allowed_hosts(None, bind_host="10.0.0.5", keyed=False) == loopback | {b"10.0.0.5"}
    assert allowed_hosts(None, bind_host="gw.example.", keyed=True) == loopback | {b"gw.example"}
    assert allowed_hosts(None, bind_host="fd00::1", keyed=False) == loopback | {b"[fd00::1]"}
    # Every interface: keys protect a public server; a keyless one must list its names.
    assert allowed_hosts(None, bind_host="0.0.0.0", keyed=True) is None
    assert allowed_hosts(None, bind_host="::", keyed=False) == loopback
    assert allowed_hosts(["GW.example", "*"], bind_host="127.0.0.1", keyed=False) is None
