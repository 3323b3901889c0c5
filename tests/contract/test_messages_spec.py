"""The Messages translation on what the fake upstream does not send: reasoning text, parallel
tool calls, stop sequences, cached prompt tokens, odd tool call ids, a failure after the start.
Every Message and event is validated against the official Anthropic spec."""

from __future__ import annotations

from typing import Any

from tests.contract.openapi_spec import validate
from tests.integration.test_messages import validate_events
from triage.errors import RateLimited, UpstreamUnavailable
from triage.protocols.anthropic import MessagesRequest, to_chat
from triage.protocols.anthropic_output import Draft, from_chat
from triage.protocols.anthropic_stream import MessageEvents


def _draft(**fields: Any) -> Draft:
    body = {"model": "claude-x", "max_tokens": 64, "messages": [{"role": "user", "content": "x"}]}
    return Draft(MessagesRequest.model_validate({**body, **fields}))


def _chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish, **extra}]}


def _call(index: int, call_id: str | None, name: str | None, arguments: str) -> dict[str, Any]:
    function = {"arguments": arguments, **({"name": name} if name else {})}
    call = {"index": index, "function": function, **({"id": call_id} if call_id else {})}
    return _chunk({"tool_calls": [call]})


def test_stream_with_reasoning_text_and_parallel_calls_follows_the_spec() -> None:
    events = MessageEvents(_draft())
    out = events.start()
    for chunk in (
        _chunk({"reasoning_content": "let me "}),
        _chunk({"reasoning_content": "think"}),
        _chunk({"content": "Checking both."}),
        _call(0, "call_a", "get_weather", '{"city":'),
        _call(0, None, None, '"Paris"}'),
        _call(1, "call.b:2", "get_time", '{"tz": "CET"}'),
        _call(0, None, None, "late"),  # an interleaved delta for a closed block: dropped
        _chunk({}, "tool_calls"),
        {"choices": [], "usage": {"prompt_tokens": 50, "completion_tokens": 9}},
    ):
        out += events.feed(chunk)
    out += events.finish()
    validate_events(out)
    starts = [e["content_block"] for e in out if e["type"] == "content_block_start"]
    assert [b["type"] for b in starts] == ["thinking", "text", "tool_use", "tool_use"]
    assert [b.get("id") for b in starts[2:]] == ["call_a", "call_b_2"]
    deltas = [e["delta"] for e in out if e["type"] == "content_block_delta"]
    assert "".join(d.get("thinking", "") for d in deltas) == "let me think"
    first_call = [e["delta"]["partial_json"] for e in out if e.get("index") == 2 and "delta" in e]
    assert "".join(first_call) == '{"city":"Paris"}'
    assert out[-2]["delta"]["stop_reason"] == "tool_use"
    assert out[-2]["usage"]["input_tokens"] == 50 and out[-2]["usage"]["output_tokens"] == 9


def test_a_failure_after_the_start_ends_with_an_error_event() -> None:
    events = MessageEvents(_draft(), request_id="req-1")
    out = events.start() + events.feed(_chunk({"content": "par"}))
    out += events.fail(UpstreamUnavailable("the backend went away"))
    validate_events(out)
    assert out[-1]["error"] == {"type": "overloaded_error", "message": "the backend went away"}
    assert events.fail(RateLimited("slow down"))[0]["error"]["type"] == "rate_limit_error"


def test_whole_answer_with_reasoning_stop_sequence_and_cache_reads() -> None:
    body = {
        "choices": [
            {
                "message": {"role": "assistant", "content": "42", "reasoning_content": "hmm"},
                "finish_reason": "stop",
                "stop_reason": "END",  # vLLM names the stop string it hit
            }
        ],
        "usage": {
            "prompt_tokens": 100,
            "completion_tokens": 3,
            "prompt_tokens_details": {"cached_tokens": 60},
        },
    }
    message = from_chat(_draft(stop_sequences=["END"]), body)
    validate(message, "Message", "anthropic")
    assert [b["type"] for b in message["content"]] == ["thinking", "text"]
    assert (message["stop_reason"], message["stop_sequence"]) == ("stop_sequence", "END")
    assert message["usage"]["input_tokens"] == 40
    assert message["usage"]["cache_read_input_tokens"] == 60
    truncated = from_chat(
        _draft(), {"choices": [{"message": {"content": "a"}, "finish_reason": "length"}]}
    )
    assert truncated["stop_reason"] == "max_tokens"


def test_request_translation_orders_tool_results_first_and_maps_every_option() -> None:
    request = MessagesRequest.model_validate(
        {
            "model": "claude-x",
            "max_tokens": 100,
            "system": "sys",
            "thinking": {"type": "enabled", "budget_tokens": 20000},
            "tools": [{"name": "f", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
            "messages": [
                {"role": "user", "content": "go"},
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}}],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "here:"},
                        {
                            "type": "tool_result",
                            "tool_use_id": "t1",
                            "is_error": True,
                            "content": "boom",
                        },
                    ],
                },
            ],
        }
    )
    chat = to_chat(request, "auto")
    assert chat["reasoning_effort"] == "high"
    assert chat["tool_choice"] == "required" and chat["parallel_tool_calls"] is False
    assert chat["tools"] == [
        {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    ]
    assert [m["role"] for m in chat["messages"]] == ["system", "user", "assistant", "tool", "user"]
    assert chat["messages"][3] == {"role": "tool", "tool_call_id": "t1", "content": "Error: boom"}
