"""The native Anthropic lane's wire helpers: where it posts, what it meters, what it sends."""

from __future__ import annotations

import json

import pytest

from tests.helpers import config_from, deployment
from triage.engine.anthropic_wire import (
    StreamTally,
    chat_reply,
    chat_usage,
    messages_url,
    native_body,
)
from triage.engine.base import Call, Native
from triage.engine.lanes import Lanes


@pytest.mark.parametrize(
    "base",
    [
        "http://h:1",
        "http://h:1/",
        "http://h:1/v1",
        "http://h:1/v1/",
        "http://h:1/v1/messages",
    ],
)
def test_messages_url_takes_a_base_with_or_without_v1(base: str) -> None:
    assert messages_url(base) == "http://h:1/v1/messages"


def test_usage_counts_cached_prompt_tokens_as_prompt_tokens() -> None:
    usage = {
        "input_tokens": 10,
        "cache_creation_input_tokens": 200,
        "cache_read_input_tokens": 3000,
        "output_tokens": 7,
    }
    assert chat_usage(usage) == {
        "prompt_tokens": 3210,
        "completion_tokens": 7,
        "total_tokens": 3217,
    }
    assert chat_usage({"input_tokens": True, "output_tokens": "9"}) == {
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "total_tokens": 0,
    }
    assert chat_usage(None) is None


def test_reply_keeps_text_thinking_and_tool_calls_for_metering() -> None:
    message = {
        "id": "msg_1",
        "model": "claude-x",
        "stop_reason": "tool_use",
        "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "s"},
            {"type": "text", "text": "let me look"},
            {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 1}},
        ],
        "usage": {"input_tokens": 3, "output_tokens": 4},
    }
    reply = chat_reply(message)
    choice = reply["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "let me look"
    assert choice["message"]["reasoning_content"] == "hmm"
    (call,) = choice["message"]["tool_calls"]
    assert call["id"] == "toolu_1" and json.loads(call["function"]["arguments"]) == {"a": 1}
    assert reply["usage"]["total_tokens"] == 7


def test_native_body_drops_fields_off_the_allow_list_and_sets_the_model() -> None:
    config = config_from({"model_list": [deployment("c", "anthropic/claude-x", "http://h")]})
    (claude,) = config.model_list
    hostile = {
        "model": "c",
        "max_tokens": 5,
        "messages": [],
        "api_base": "http://evil",
        "api_key": "x",
        "mock_response": "hi",
        "system": [{"type": "text", "text": "s", "cache_control": {"type": "ephemeral"}}],
    }
    call = Call("chat", {}, stream=True, native=Native("anthropic", hostile))
    assert native_body(claude, call) == {
        "model": "claude-x",
        "max_tokens": 5,
        "messages": [],
        "system": hostile["system"],
        "stream": True,
    }


def test_stream_tally_meters_input_at_start_and_output_at_the_end() -> None:
    tally = StreamTally()
    start = {
        "type": "message_start",
        "message": {"id": "m", "model": "c", "usage": {"input_tokens": 5, "output_tokens": 1}},
    }
    delta = {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "text_delta", "text": "hi"},
    }
    first = tally.chunk([start, {"type": "ping"}, delta])
    assert first["choices"][0]["delta"] == {"content": "hi"} and "usage" not in first
    end = tally.chunk(
        [{"type": "message_delta", "usage": {"output_tokens": 9}}, {"type": "message_stop"}]
    )
    assert end["usage"] == {"prompt_tokens": 5, "completion_tokens": 9, "total_tokens": 14}
    assert tally.finished


def test_anthropic_deployments_take_the_native_lane_unless_pinned_to_litellm() -> None:
    config = config_from(
        {
            "model_list": [
                deployment("a", "anthropic/claude-x", "http://h"),
                deployment("b", "anthropic/claude-x", "http://h", lane="litellm"),
                deployment("c", "hosted_vllm/tiny", "http://h/v1"),
            ]
        }
    )
    auto, pinned, vllm = config.model_list
    lanes = Lanes(config)
    assert lanes.for_deployment(auto) is lanes.anthropic
    assert lanes.for_deployment(pinned) is lanes.litellm
    assert lanes.for_deployment(vllm) is lanes.native
    forced = Lanes(config, force="litellm")
    assert forced.for_deployment(auto) is forced.litellm
    everything = config_from({**config.model_dump(mode="json"), "triage": {"lane": "litellm"}})
    all_litellm = Lanes(everything)
    assert all_litellm.for_deployment(everything.model_list[0]) is all_litellm.litellm
