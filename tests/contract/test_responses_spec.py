"""What `/v1/responses` sends validates against the official OpenAI OpenAPI description: every
Response body, every streamed event (against the schema its `type` names), the stored-response
endpoints and the errors; and the events come in the spec's order with rising sequence numbers."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.contract.openapi_spec import components, validate
from tests.helpers import config_from, deployment, serve
from triage.api import create_app
from triage.errors import UpstreamError
from triage.fakeupstream import FakeUpstreamThread
from triage.protocols.responses import ResponsesRequest
from triage.protocols.responses_output import Draft
from triage.protocols.responses_stream import ResponseEvents

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather of a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
    "strict": True,
}


@pytest.fixture
def gateway(fake: FakeUpstreamThread, tmp_path: Path) -> Iterator[str]:
    config = config_from(
        {
            "model_list": [
                deployment("local", "hosted_vllm/tiny", fake.url + "/v1"),
            ],
            "router_settings": {"num_retries": 0},
            "responses": {"path": str(tmp_path / "responses.db")},
        }
    )
    with serve(create_app(config)) as url:
        yield url


@functools.cache
def event_schemas() -> dict[str, str]:
    """Event type -> the component schema describing it, from ResponseStreamEvent's members."""
    schemas = components("openai")["components"]["schemas"]
    out = {}
    for member in schemas["ResponseStreamEvent"]["anyOf"]:
        name = member["$ref"].rsplit("/", 1)[1]
        for kind in schemas[name]["properties"]["type"].get("enum", []):
            out[kind] = name
    return out


def events_of(body: str) -> list[dict[str, Any]]:
    """The SSE body's events; each frame's `event:` line must name its data's `type`."""
    events = []
    for frame in body.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in frame.split("\n"))
        event = json.loads(lines["data"])
        assert lines["event"] == event["type"]
        events.append(event)
    return events


def validate_stream(events: list[dict[str, Any]]) -> None:
    for event in events:
        validate(event, event_schemas()[event["type"]])
    assert [e["sequence_number"] for e in events] == list(range(len(events)))


def _create(gateway: str, **body: Any) -> httpx.Response:
    validate(body, "CreateResponse")  # the tests send only what the spec allows
    return httpx.post(gateway + "/v1/responses", json=body, timeout=30)


def test_plain_response_matches_the_spec(gateway: str) -> None:
    response = _create(gateway, model="local", input="say hello", instructions="be brief")
    assert response.status_code == 200, response.text
    body = response.json()
    validate(body, "Response")
    assert body["status"] == "completed" and body["instructions"] == "be brief"
    assert body["output"][0]["content"][0]["text"].startswith("fake reply from tiny")
    usage = body["usage"]
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"] > 0


def test_function_call_response_and_items_match_the_spec(gateway: str) -> None:
    first = _create(gateway, model="local", input="what is the weather in Paris?", tools=[WEATHER])
    body = first.json()
    validate(body, "Response")
    (call,) = body["output"]
    assert call["type"] == "function_call" and call["name"] == "get_weather"
    assert json.loads(call["arguments"]) == {"city": "Paris"}
    follow = [
        {"type": "function_call_output", "call_id": call["call_id"], "output": '{"temp": 21}'}
    ]
    second = _create(
        gateway, model="local", previous_response_id=body["id"], input=follow, tools=[WEATHER]
    )
    validate(second.json(), "Response")
    items = httpx.get(f"{gateway}/v1/responses/{second.json()['id']}/input_items").json()
    validate(items, "ResponseItemList")
    assert [i["type"] for i in items["data"]] == ["function_call_output"]


def test_text_stream_events_match_the_spec_in_order(gateway: str) -> None:
    response = _create(gateway, model="local", input="count to five", stream=True)
    assert response.headers["content-type"].startswith("text/event-stream")
    events = events_of(response.text)
    validate_stream(events)
    kinds = [e["type"] for e in events]
    deltas = kinds.count("response.output_text.delta")
    assert deltas > 1
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * deltas,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    done = events[-1]["response"]
    assert done["output"][0]["content"][0]["text"] == text
    assert done["usage"]["output_tokens"] > 0


def test_tool_call_stream_events_match_the_spec_in_order(gateway: str) -> None:
    response = _create(
        gateway, model="local", input="weather in Oslo?", tools=[WEATHER], stream=True
    )
    events = events_of(response.text)
    validate_stream(events)
    kinds = [e["type"] for e in events]
    deltas = kinds.count("response.function_call_arguments.delta")
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        *["response.function_call_arguments.delta"] * deltas,
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    args = "".join(e["delta"] for e in events if e["type"].endswith("arguments.delta"))
    assert json.loads(args) == {"city": "Oslo"}
    assert events[-2]["item"]["arguments"] == args


def test_stored_endpoints_match_the_spec(gateway: str) -> None:
    created = _create(gateway, model="local", input=[{"role": "user", "content": "hi"}]).json()
    fetched = httpx.get(f"{gateway}/v1/responses/{created['id']}")
    validate(fetched.json(), "Response")
    assert fetched.json() == created
    items = httpx.get(f"{gateway}/v1/responses/{created['id']}/input_items").json()
    validate(items, "ResponseItemList")
    assert items["data"][0]["content"] == [{"type": "input_text", "text": "hi"}]
    deleted = httpx.delete(f"{gateway}/v1/responses/{created['id']}")
    assert deleted.json() == {"id": created["id"], "object": "response", "deleted": True}
    gone = httpx.get(f"{gateway}/v1/responses/{created['id']}")
    assert gone.status_code == 404
    validate(gone.json(), "ErrorResponse")


def test_json_schema_format_matches_the_spec(gateway: str) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city", "days"],
        "additionalProperties": False,
    }
    text = {"format": {"type": "json_schema", "name": "plan", "schema": schema, "strict": True}}
    body = _create(gateway, model="local", input="plan a trip to Rome", text=text).json()
    validate(body, "Response")
    value = json.loads(body["output"][0]["content"][0]["text"])
    assert set(value) == {"city", "days"} and isinstance(value["days"], int)
    assert body["text"] == text


@pytest.mark.parametrize("tool", ["web_search", "file_search", "code_interpreter", "computer"])
def test_built_in_tools_are_a_400_naming_the_tool(gateway: str, tool: str) -> None:
    response = httpx.post(
        gateway + "/v1/responses",
        json={"model": "local", "input": "hi", "tools": [{"type": tool}]},
    )
    assert response.status_code == 400
    validate(response.json(), "ErrorResponse")
    message = response.json()["error"]["message"]
    assert f"`{tool}`" in message and "`local`" in message


def _delta(**delta: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]}


def test_reasoning_text_and_parallel_calls_become_spec_events_in_order() -> None:
    """The state machine alone (pure: chat chunks in, events out), on what reasoning backends
    send: reasoning text, then text, then two tool calls, then usage; cut by the token limit."""
    machine = ResponseEvents(Draft(ResponsesRequest(model="m", input="x"), created_at=1))
    call = {"type": "function", "function": {"name": "f", "arguments": ""}}
    chunks = [
        _delta(role="assistant", reasoning_content="Let me"),
        _delta(reasoning_content=" think."),
        _delta(content="Calling."),
        _delta(tool_calls=[{"index": 0, "id": "call_a", **call}]),
        _delta(tool_calls=[{"index": 0, "function": {"arguments": '{"a":'}}]),
        _delta(tool_calls=[{"index": 1, "id": "call_b", **call}]),
        _delta(tool_calls=[{"index": 0, "function": {"arguments": "1}"}}]),
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]},
        {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 9, "total_tokens": 12}},
    ]
    events = machine.start()
    for chunk in chunks:
        events += machine.feed(chunk)
    events += machine.finish()
    validate_stream(events)
    kinds = [e["type"] for e in events]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.incomplete",
    ]
    final = events[-1]["response"]
    assert final["status"] == "incomplete"
    assert final["incomplete_details"] == {"reason": "max_output_tokens"}
    assert [i["type"] for i in final["output"]] == [
        "reasoning",
        "message",
        "function_call",
        "function_call",
    ]
    assert final["output"][0]["summary"][0]["text"] == "Let me think."
    assert final["output"][2]["arguments"] == '{"a":1}'
    assert final["output"][3]["call_id"] == "call_b"
    assert final["usage"]["output_tokens"] == 9


def test_a_failure_mid_stream_is_a_spec_response_failed() -> None:
    machine = ResponseEvents(Draft(ResponsesRequest(model="m", input="x"), created_at=1))
    events = machine.start() + machine.feed(_delta(content="partial"))
    events += machine.fail(UpstreamError("the backend went away"))
    validate_stream(events)
    failed = events[-1]["response"]
    assert failed["status"] == "failed"
    assert failed["error"] == {"code": "server_error", "message": "the backend went away"}


def test_namespaced_tools_are_called_by_namespace_and_name(gateway: str) -> None:
    """Codex sends function tools grouped in a `namespace` tool: the call comes back naming both."""
    crm = {"type": "namespace", "name": "crm", "description": "the CRM", "tools": [WEATHER]}
    body = _create(gateway, model="local", input="weather in Rome?", tools=[crm]).json()
    validate(body, "Response")
    (call,) = body["output"]
    assert (call["namespace"], call["name"]) == ("crm", "get_weather")
    follow = [
        call,
        {"type": "function_call_output", "call_id": call["call_id"], "output": "sunny"},
    ]
    again = _create(gateway, model="local", input=follow, tools=[crm], store=False)
    assert again.json()["output"][0]["type"] == "message"
