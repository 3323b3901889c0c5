"""Messages requests to Anthropic deployments go natively (engine/anthropic_lane.py): the
client's own body reaches the deployment with `cache_control` and thinking signatures intact,
the answer and the event stream reach the anthropic SDK as the deployment sent them, and the
ledger prices them from the native usage. Against the real app on a real server in front of
the project's fake upstream, which serves Anthropic's `/v1/messages`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest

from tests.helpers import config_from, deployment, serve
from tests.integration.test_messages import _events
from triage.api import create_app
from triage.fakeupstream import FakeUpstreamThread
from triage.ledger import Ledger

SECRET = "sk-ant-deployment-secret"
IN_PRICE, OUT_PRICE = Decimal("0.000003"), Decimal("0.000015")
SIGNED: Any = {"type": "thinking", "thinking": "The user wants a count.", "signature": "EqQBsig=="}
CACHED: Any = {"type": "ephemeral", "ttl": "5m"}
CARD = "4111 1111 1111 1111"  # a test card number: the sensitive scan pins it local


def _config(fake: FakeUpstreamThread, tmp_path: Path) -> Any:
    claude = deployment(
        "claude",
        "anthropic/claude-sonnet-4-5",
        fake.url,
        params={
            "api_key": "os.environ/ANT_KEY",
            "input_cost_per_token": str(IN_PRICE),
            "output_cost_per_token": str(OUT_PRICE),
        },
    )
    return config_from(
        {
            "model_list": [claude, deployment("local", "hosted_vllm/tiny", fake.url + "/v1")],
            "router_settings": {"num_retries": 0, "timeout": 10},
            "triage": {
                "ledger": {"path": str(tmp_path / "ledger.db")},
                "default_route": ["local"],
            },
        },
        env={"ANT_KEY": SECRET},
    )


@pytest.fixture
def gateway(fake: FakeUpstreamThread, tmp_path: Path) -> Iterator[str]:
    with serve(create_app(_config(fake, tmp_path))) as url:
        yield url


def _body(**extra: Any) -> dict[str, Any]:
    """A second turn as Claude Code sends it: cached system prompt and tools, the previous
    turn's signed thinking block passed back, interleaved thinking on."""
    return {
        "model": "claude",
        "max_tokens": 4096,
        "system": [{"type": "text", "text": "You are terse.", "cache_control": CACHED}],
        "tools": [
            {
                "name": "count",
                "description": "count things",
                "input_schema": {"type": "object", "properties": {}},
                "cache_control": CACHED,
            }
        ],
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "count to three"}]},
            {
                "role": "assistant",
                "content": [SIGNED, {"type": "text", "text": "1 2 3"}],
            },
            {
                "role": "user",
                "content": [{"type": "text", "text": "again", "cache_control": CACHED}],
            },
        ],
        "metadata": {"user_id": "session-1"},
        "top_k": 5,
        **extra,
    }


def _sent(fake: FakeUpstreamThread) -> list[Any]:
    return [r for r in fake.requests() if r.path == "/v1/messages"]


def _check_sent(fake: FakeUpstreamThread, body: dict[str, Any], *, stream: bool) -> None:
    """The deployment got the client's body as it was (model and stream aside), with the
    deployment's key and the client's protocol headers; no hostile extra."""
    (sent,) = _sent(fake)
    expected = {**body, "model": "claude-sonnet-4-5", "stream": stream}
    expected.pop("api_base", None)
    assert sent.json == expected
    assert sent.headers["x-api-key"] == SECRET
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.headers["anthropic-beta"] == "interleaved-thinking-2025-05-14"
    assert "authorization" not in sent.headers
    assert not [r for r in fake.requests() if r.path.endswith("/chat/completions")]


def _direct(fake: FakeUpstreamThread, body: dict[str, Any]) -> httpx.Response:
    """The same request straight to the fake Anthropic deployment."""
    sent = {**body, "model": "claude-sonnet-4-5"}
    return httpx.post(fake.url + "/v1/messages", json=sent, timeout=10)


def _ledger_row(tmp_path: Path) -> Any:
    with Ledger(tmp_path / "ledger.db") as ledger:
        (row,) = ledger.rows()
    return row


def _client(gateway: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=gateway,
        api_key="client-key",
        max_retries=0,
        default_headers={
            "anthropic-beta": "interleaved-thinking-2025-05-14",
            "anthropic-version": "2023-06-01",
        },
    )


def test_plain_message_reaches_anthropic_natively_and_comes_back_untranslated(
    gateway: str, fake: FakeUpstreamThread, tmp_path: Path
) -> None:
    body = _body()
    raw = _client(gateway).messages.with_raw_response.create(
        **{k: v for k, v in body.items() if k != "top_k"},
        extra_body={"top_k": 5, "api_base": "http://evil.invalid"},
    )
    _check_sent(fake, body, stream=False)
    answer = json.loads(raw.http_response.text)
    # The deployment's own answer, byte for byte what it says to a direct call (its id, its
    # model name, its blocks and usage), not a translation of a chat reply.
    direct = _direct(fake, body).json()
    assert answer["id"] == "msg_fake1" and direct["id"] == "msg_fake2"
    assert {**answer, "id": ""} == {**direct, "id": ""}
    message = raw.parse()
    assert [block.type for block in message.content] == ["thinking", "text"]
    assert message.content[1].text.startswith("fake reply from claude-sonnet-4-5: again")
    assert raw.headers["x-triage-route"] == "claude"
    row = _ledger_row(tmp_path)
    usage = answer["usage"]
    assert (row.route, row.status, row.usage_source) == ("claude", 200, "upstream")
    assert (row.prompt_tokens, row.completion_tokens) == (
        usage["input_tokens"],
        usage["output_tokens"],
    )
    assert row.cost_usd == IN_PRICE * usage["input_tokens"] + OUT_PRICE * usage["output_tokens"]
    assert row.cost_usd > 0
    assert raw.headers["x-triage-cost-usd"]


def test_stream_reaches_anthropic_natively_and_its_events_come_back_as_sent(
    gateway: str, fake: FakeUpstreamThread, tmp_path: Path
) -> None:
    body = _body(stream=True)
    headers = {
        "x-api-key": "client-key",
        "anthropic-version": "2023-06-01",
        "anthropic-beta": "interleaved-thinking-2025-05-14",
    }
    response = httpx.post(gateway + "/v1/messages", json=body, headers=headers, timeout=10)
    assert response.status_code == 200
    _check_sent(fake, {k: v for k, v in body.items() if k != "stream"}, stream=True)
    events = _events(response.text)
    # The fake sends its ping after the answer's block opens; Triage's own translation sends
    # it right after message_start: this order shows the events were not re-made.
    kinds = [e["type"] for e in events]
    assert kinds[:2] == ["message_start", "content_block_start"] and kinds.index("ping") > 2
    deltas = [e["delta"]["type"] for e in events if e["type"] == "content_block_delta"]
    assert deltas[:2] == ["thinking_delta", "signature_delta"]
    assert kinds[-2:] == ["message_delta", "message_stop"]
    assert events[0]["message"]["id"] == "msg_fake1"
    direct = _events(_direct(fake, body).text)
    events[0]["message"]["id"] = direct[0]["message"]["id"]
    assert events == direct
    text = "".join(e["delta"].get("text", "") for e in events if e["type"] == "content_block_delta")
    assert text.startswith("fake reply from claude-sonnet-4-5: again")
    row = _ledger_row(tmp_path)
    assert (row.route, row.status, row.usage_source) == ("claude", 200, "upstream")
    prompt = events[0]["message"]["usage"]["input_tokens"]
    output = events[-2]["usage"]["output_tokens"]
    assert (row.prompt_tokens, row.completion_tokens) == (prompt, output)
    assert row.cost_usd == IN_PRICE * prompt + OUT_PRICE * output > 0


def test_the_sdk_assembles_a_native_stream(gateway: str, fake: FakeUpstreamThread) -> None:
    body = _body()
    with _client(gateway).messages.stream(**{k: v for k, v in body.items() if k != "top_k"}) as s:
        final = s.get_final_message()
    assert final.id.startswith("msg_fake") and final.model == "claude-sonnet-4-5"
    assert final.content[1].type == "text"
    assert final.content[1].text.startswith("fake reply from claude-sonnet-4-5: again")
    assert final.stop_reason == "end_turn" and final.usage.output_tokens > 0
    (sent,) = _sent(fake)
    assert sent.json["messages"][1]["content"][0] == SIGNED


@pytest.mark.parametrize("stream", [False, True])
def test_the_deployments_signed_thinking_reaches_the_sdk(gateway: str, stream: bool) -> None:
    """The other direction: Claude's thinking block and its signature (a `signature_delta`
    when streamed) reach the client, which must pass them back on the next turn."""
    body = {k: v for k, v in _body().items() if k != "top_k"}
    client = _client(gateway)
    if stream:
        with client.messages.stream(**body) as s:
            message = s.get_final_message()
    else:
        message = client.messages.create(**body)
    thinking, text = message.content
    assert thinking.type == "thinking" and thinking.signature == "fake-signature=="
    assert thinking.thinking == "Let me think."
    assert text.type == "text" and text.text.startswith("fake reply from claude-sonnet-4-5")


def test_a_failing_anthropic_deployment_is_an_anthropic_shaped_error(
    gateway: str, fake: FakeUpstreamThread
) -> None:
    fake.add_fault(kind="status", status=429)
    with pytest.raises(anthropic.RateLimitError):
        _client(gateway).messages.create(
            model="claude", max_tokens=8, messages=[{"role": "user", "content": "hi"}]
        )
    assert len(_sent(fake)) == 1


def test_other_groups_still_get_the_chat_translation(
    gateway: str, fake: FakeUpstreamThread
) -> None:
    body = {**_body(), "model": "local"}
    body.pop("tools")
    message = _client(gateway).messages.create(**{k: v for k, v in body.items() if k != "top_k"})
    assert message.model == "local" and not _sent(fake)
    (chat,) = [r.json for r in fake.requests() if r.path.endswith("/chat/completions")]
    assert "cache_control" not in json.dumps(chat) and "signature" not in json.dumps(chat)


def test_sensitive_data_only_in_a_native_field_keeps_the_request_off_anthropic(
    gateway: str, fake: FakeUpstreamThread
) -> None:
    """A thinking block never reaches a chat backend, but it does reach Anthropic: the
    sensitive scan covers the native body too."""
    body = _body()
    body["messages"][1]["content"][0] = {**SIGNED, "thinking": f"The card is {CARD}."}
    response = httpx.post(gateway + "/v1/messages", json=body, timeout=10)
    assert response.status_code == 403
    assert response.json()["error"]["type"] == "permission_error"
    assert not _sent(fake)


def test_a_native_stream_that_fails_midway_ends_with_an_error_event(
    gateway: str, fake: FakeUpstreamThread
) -> None:
    fake.configure(tokens_per_second=20, completion_tokens=8)
    fake.add_fault(kind="stream_error", after_chunks=5)
    body = {"model": "claude", "max_tokens": 64, "stream": True, "messages": [_user_turn()]}
    response = httpx.post(gateway + "/v1/messages", json=body, timeout=10)
    assert response.status_code == 200
    events = _events(response.text)
    kinds = [e["type"] for e in events]
    assert kinds[0] == "message_start" and "content_block_delta" in kinds
    assert kinds[-1] == "error" and "message_stop" not in kinds
    assert events[-1]["error"]["type"] == "overloaded_error", events[-1]
    assert SECRET not in response.text


def _user_turn() -> dict[str, Any]:
    return {"role": "user", "content": "count"}


@pytest.mark.parametrize("stream", [False, True])
def test_a_fallback_from_anthropic_to_a_chat_backend_is_translated(
    fake: FakeUpstreamThread, stream: bool
) -> None:
    """The lane is chosen per attempt: the native body goes to Anthropic, and when that fails
    the same request falls back to a chat deployment and comes back translated."""
    config = config_from(
        {
            "model_list": [
                deployment("claude", "anthropic/claude-sonnet-4-5", fake.url),
                deployment("local", "hosted_vllm/tiny", fake.url + "/v1"),
            ],
            "router_settings": {"num_retries": 0, "fallbacks": [{"claude": ["local"]}]},
            "triage": {"ledger": {"enabled": False}},
        }
    )
    fake.add_fault(kind="status", status=500)
    body = {**_body(), "stream": stream}
    body.pop("tools")
    with serve(create_app(config)) as url:
        response = httpx.post(url + "/v1/messages", json=body, timeout=10)
    assert response.status_code == 200
    assert response.headers["x-triage-route"] == "local"
    assert response.headers["x-triage-fallbacks"] == "1"
    assert len(_sent(fake)) == 1  # the failed native attempt
    (chat,) = [r.json for r in fake.requests() if r.path.endswith("/chat/completions")]
    assert "signature" not in json.dumps(chat)
    if stream:
        events = _events(response.text)
        assert [e["type"] for e in events][:2] == ["message_start", "ping"]  # Triage's own
        assert events[0]["message"]["model"] == "claude"
    else:
        assert response.json()["model"] == "claude"  # the name the client sent


@pytest.mark.parametrize("stream", [False, True])
def test_the_response_cache_serves_messages_to_chat_backends_but_never_native_ones(
    fake: FakeUpstreamThread, tmp_path: Path, stream: bool
) -> None:
    """The cache keeps the chat form: a replayed Claude answer would lose its signatures, so
    calls that may reach Anthropic skip it; Messages to chat backends still use it."""
    data = _config(fake, tmp_path).model_dump(mode="json")
    data["triage"]["cache"] = {"enabled": True}
    with serve(create_app(config_from(data, env={"ANT_KEY": SECRET}))) as url:
        for model in ("local", "claude", "local", "claude"):
            body = {"model": model, "max_tokens": 32, "stream": stream}
            body["messages"] = [_user_turn()]
            response = httpx.post(url + "/v1/messages", json=body, timeout=10)
            assert response.status_code == 200
    assert len(_sent(fake)) == 2  # both Claude calls went upstream
    chats = [r for r in fake.requests() if r.path.endswith("/chat/completions")]
    assert len(chats) == 1  # the second local call was a cache hit
