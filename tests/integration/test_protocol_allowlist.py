"""Only documented OpenAI keys leave Triage, at every level: top-level fields, the keys of each
message, content part and tool call, and `stream_options`. Checked on the body the fake
upstream actually received, on both lanes."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.helpers import config_from, deployment, serve
from triage.api import create_app
from triage.engine.lanes import Lanes
from triage.fakeupstream import FakeUpstreamThread

SMUGGLED = "smuggled-4b1d"  # a value that must not reach the upstream under any key


def _messages() -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": "be brief", "api_base": SMUGGLED, "name": "sys"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "look", "mock_response": SMUGGLED},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            ],
            "metadata": {"note": SMUGGLED},
        },
        {
            "role": "assistant",
            "content": None,
            "refusal": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": "{}"},
                    "api_key": SMUGGLED,
                }
            ],
            "reasoning_trace": SMUGGLED,
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "42", "x-evil": SMUGGLED},
        {"role": "user", "content": "and?"},
    ]


@pytest.fixture(params=["native", "litellm"])
def lane(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _sent(fake: FakeUpstreamThread, lane: str, body: dict[str, Any]) -> dict[str, Any]:
    config = config_from(
        {"model_list": [deployment("m", "hosted_vllm/fake-model", fake.url + "/v1")]}
    )
    with serve(create_app(config, lanes=Lanes(config, force=lane))) as url:  # type: ignore[arg-type]
        response = httpx.post(url + "/v1/chat/completions", json=body, timeout=30)
    assert response.status_code == 200, response.text
    sent: dict[str, Any] = fake.requests()[-1].json
    return sent


def test_unknown_keys_inside_messages_are_not_forwarded(
    fake: FakeUpstreamThread, lane: str
) -> None:
    sent = _sent(fake, lane, {"model": "m", "messages": _messages(), "api_base": SMUGGLED})
    assert SMUGGLED not in json.dumps(sent)
    if lane == "native":  # the native lane sends our body as it is: check it key by key
        system, user, assistant, tool, _ = sent["messages"]
        assert system == {"role": "system", "content": "be brief", "name": "sys"}
        assert user["content"][0] == {"type": "text", "text": "look"}
        assert user["content"][1]["image_url"] == {"url": "data:image/png;base64,AAAA"}
        assert set(user) == {"role", "content"}
        assert assistant["tool_calls"] == [
            {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
        ]
        assert tool == {"role": "tool", "tool_call_id": "call_1", "content": "42"}


def test_unknown_stream_options_are_not_forwarded(fake: FakeUpstreamThread, lane: str) -> None:
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": True, "api_key": SMUGGLED, "mock_response": "x"},
    }
    sent = _sent(fake, lane, body)
    assert SMUGGLED not in json.dumps(sent)
    assert sent["stream_options"] == {"include_usage": True}


def test_documented_message_keys_still_go_through(fake: FakeUpstreamThread) -> None:
    messages = [
        {"role": "user", "content": "hi", "name": "alice"},
        {
            "role": "assistant",
            "content": "ok",
            "refusal": "no",
            "audio": {"id": "audio_1"},
            "function_call": {"name": "f", "arguments": "{}"},
        },
        {"role": "user", "content": "again"},
    ]
    sent = _sent(fake, "native", {"model": "m", "messages": messages})
    assert sent["messages"] == messages


def test_a_non_boolean_stream_option_is_refused(fake: FakeUpstreamThread) -> None:
    config = config_from(
        {"model_list": [deployment("m", "hosted_vllm/fake-model", fake.url + "/v1")]}
    )
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_obfuscation": "please"},
    }
    with serve(create_app(config)) as url:
        response = httpx.post(url + "/v1/chat/completions", json=body, timeout=30)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "stream_options.include_obfuscation"
    assert fake.requests() == []
