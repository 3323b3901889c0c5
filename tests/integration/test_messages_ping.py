"""Messages streams send `ping` events while they wait (`server.sse_ping_interval`): before the
first chunk (the stream then starts at once) and between chunks, for translated and native
streams alike; the anthropic SDK ignores them and still assembles the message. A failure while
waiting ends the started stream with an `error` event. Against the real app on a real server,
with a slow fake upstream and a short interval."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest

from tests.helpers import config_from, deployment, serve
from tests.integration.test_messages import _events, validate_events
from triage.api import create_app
from triage.fakeupstream import FakeUpstreamThread
from triage.ledger import Ledger

INTERVAL = 0.1


def _config(fake: FakeUpstreamThread, tmp_path: Path) -> Any:
    return config_from(
        {
            "model_list": [
                deployment("local", "hosted_vllm/tiny", fake.url + "/v1"),
                deployment("claude", "anthropic/claude-sonnet-4-5", fake.url),
                deployment(
                    "impatient", "hosted_vllm/tiny", fake.url + "/v1", first_token_timeout=1.0
                ),
            ],
            "router_settings": {"num_retries": 0, "timeout": 20},
            "server": {"sse_ping_interval": INTERVAL},
            "triage": {"ledger": {"path": str(tmp_path / "ledger.db")}, "default_route": ["local"]},
        }
    )


@pytest.fixture
def gateway(fake: FakeUpstreamThread, tmp_path: Path) -> Iterator[str]:
    with serve(create_app(_config(fake, tmp_path))) as url:
        yield url


def _stream(gateway: str, model: str) -> httpx.Response:
    body = {"model": model, "max_tokens": 64, "stream": True, "messages": [_user("count")]}
    headers = {"x-api-key": "unused", "anthropic-version": "2023-06-01"}
    return httpx.post(gateway + "/v1/messages", json=body, headers=headers, timeout=30)


def _user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def _kinds(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


def _pings_before(kinds: list[str], kind: str) -> int:
    return kinds.index(kind) if all(k == "ping" for k in kinds[: kinds.index(kind)]) else -1


@pytest.mark.parametrize("model", ["local", "claude"])
def test_pings_flow_before_a_slow_first_chunk(
    gateway: str, fake: FakeUpstreamThread, model: str
) -> None:
    fake.configure(ttft_ms=1500)  # fifteen intervals before anything comes
    response = _stream(gateway, model)
    assert response.status_code == 200
    events = _events(response.text)
    kinds = _kinds(events)
    assert _pings_before(kinds, "message_start") >= 3
    assert kinds[-2:] == ["message_delta", "message_stop"]
    if model == "local":
        validate_events(events)
    text = "".join(e["delta"]["text"] for e in events if e["type"] == "content_block_delta")
    assert text.startswith("fake reply from")
    client = anthropic.Anthropic(base_url=gateway, api_key="unused", max_retries=0)
    with client.messages.stream(model=model, max_tokens=64, messages=[_user("count")]) as s:
        final = s.get_final_message()
    assert final.content[0].type == "text" and final.content[0].text == text


@pytest.mark.parametrize("model", ["local", "claude"])
def test_pings_flow_between_slow_chunks(gateway: str, fake: FakeUpstreamThread, model: str) -> None:
    fake.configure(tokens_per_second=2, completion_tokens=4)  # half a second between tokens
    events = _events(_stream(gateway, model).text)
    kinds = _kinds(events)
    deltas = [i for i, k in enumerate(kinds) if k == "content_block_delta"]
    assert len(deltas) == 4
    gaps = [kinds[a + 1 : b] for a, b in zip(deltas, deltas[1:], strict=False)]
    assert all(gap and set(gap) == {"ping"} for gap in gaps), kinds
    assert kinds[-2:] == ["message_delta", "message_stop"]


def test_a_fast_stream_sends_no_extra_pings_and_keeps_its_headers(
    fake: FakeUpstreamThread, tmp_path: Path
) -> None:
    config = _config(fake, tmp_path).model_dump(mode="json")
    config["server"]["sse_ping_interval"] = 10.0  # the default: far beyond this stream's gaps
    with serve(create_app(config_from(config))) as gateway:
        response = _stream(gateway, "local")
    kinds = _kinds(_events(response.text))
    assert kinds.count("ping") == 1  # the one after message_start, as Anthropic sends it
    assert response.headers["x-triage-route"] == "local"


def test_a_failure_while_pinging_ends_the_stream_with_an_error_event(
    gateway: str, fake: FakeUpstreamThread, tmp_path: Path
) -> None:
    fake.configure(ttft_ms=5000)  # past the deployment's first-token timeout of 1 s
    response = _stream(gateway, "impatient")
    assert response.status_code == 200
    events = _events(response.text)
    kinds = _kinds(events)
    assert _pings_before(kinds, "error") >= 3
    assert kinds[-1] == "error" and events[-1]["error"]["type"] == "timeout_error"
    assert "message_start" not in kinds
    with Ledger(tmp_path / "ledger.db") as ledger:
        (row,) = ledger.rows()
    assert (row.route, row.status) == ("impatient", 504)


def test_a_client_that_leaves_while_pinging_ends_the_upstream_call(
    gateway: str, fake: FakeUpstreamThread, tmp_path: Path
) -> None:
    fake.configure(ttft_ms=8000)
    body = {"model": "local", "max_tokens": 64, "stream": True, "messages": [_user("count")]}
    with httpx.stream("POST", gateway + "/v1/messages", json=body, timeout=30) as response:
        assert response.status_code == 200
        first = next(response.iter_raw())
        assert first.startswith(b"event: ping")
    rows: list[Any] = []
    for _ in range(100):  # bounded: the row is written once the upstream call is cancelled
        with Ledger(tmp_path / "ledger.db") as ledger:
            rows = ledger.rows()
        if rows:
            break
        time.sleep(0.05)
    assert [(r.route, r.status) for r in rows] == [("local", 499)]
