"""The Responses API through the official openai SDK, against the real app on a real server in
front of the fake upstream: plain, streaming, a function-tool round trip, structured output,
conversations continued with previous_response_id, the ledger, and the failure paths."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from pydantic import BaseModel

from tests.helpers import config_from, deployment, serve
from triage.api import create_app
from triage.fakeupstream import FakeUpstreamThread
from triage.ledger import Ledger

WEATHER: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather of a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}


def _config(fake: FakeUpstreamThread, tmp_path: Path, **extra: Any) -> Any:
    base = fake.url + "/v1"
    return config_from(
        {
            "model_list": [
                deployment("local", "hosted_vllm/tiny", base),
                deployment("backup", "hosted_vllm/spare", base),
            ],
            "router_settings": {
                "num_retries": 0,
                "timeout": 5,
                "fallbacks": [{"local": ["backup"]}],
            },
            "triage": {"ledger": {"path": str(tmp_path / "ledger.db")}},
            "responses": {"path": str(tmp_path / "responses.db")},
            **extra,
        }
    )


@pytest.fixture
def gateway(fake: FakeUpstreamThread, tmp_path: Path) -> Iterator[str]:
    with serve(create_app(_config(fake, tmp_path))) as url:
        yield url


@pytest.fixture
def client(gateway: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway + "/v1", api_key="unused", max_retries=0)


def _chat_bodies(fake: FakeUpstreamThread) -> list[dict[str, Any]]:
    return [r.json for r in fake.requests() if r.path.endswith("/chat/completions")]


def test_plain_response_through_the_sdk(client: openai.OpenAI, fake: FakeUpstreamThread) -> None:
    raw = client.responses.with_raw_response.create(
        model="local",
        input="say hello",
        instructions="answer briefly",
        max_output_tokens=64,
        temperature=0.5,
        metadata={"ticket": "T-1"},
    )
    response = raw.parse()
    assert response.status == "completed"
    assert response.output_text.startswith("fake reply from tiny: say hello")
    assert response.metadata == {"ticket": "T-1"}
    assert response.usage is not None and response.usage.output_tokens > 0
    assert raw.headers["x-triage-route"] == "local"
    (sent,) = _chat_bodies(fake)
    assert sent["messages"] == [
        {"role": "system", "content": "answer briefly"},
        {"role": "user", "content": "say hello"},
    ]
    # vLLM deployments get the older name (engine/payload.py); either way the limit arrives.
    assert sent.get("max_completion_tokens", sent.get("max_tokens")) == 64
    assert sent["temperature"] == 0.5
    assert "metadata" not in sent and "instructions" not in sent


def test_stream_through_the_sdk(client: openai.OpenAI) -> None:
    events = list(client.responses.create(model="local", input="count to five", stream=True))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text.startswith("fake reply from tiny")
    done = events[-1]
    assert done.type == "response.completed"
    assert done.response.output_text == text
    assert done.response.usage is not None and done.response.usage.output_tokens > 0


def test_function_tool_round_trip_without_storage(
    client: openai.OpenAI, fake: FakeUpstreamThread
) -> None:
    question = [{"role": "user", "content": "what is the weather in Paris?"}]
    first = client.responses.create(model="local", input=question, tools=[WEATHER], store=False)
    (call,) = first.output
    assert call.type == "function_call" and call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "Paris"}
    result = {"type": "function_call_output", "call_id": call.call_id, "output": "21 C, sunny"}
    turn: Any = [*question, call.model_dump(exclude_none=True), result]
    second = client.responses.create(model="local", input=turn, tools=[WEATHER], store=False)
    assert second.output_text.startswith("fake reply from tiny")
    messages = _chat_bodies(fake)[-1]["messages"]
    assert messages[1]["tool_calls"][0]["id"] == call.call_id
    assert messages[1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert messages[2] == {"role": "tool", "tool_call_id": call.call_id, "content": "21 C, sunny"}
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)  # store=False keeps nothing


def test_streamed_tool_call_then_answer(client: openai.OpenAI) -> None:
    events = list(
        client.responses.create(
            model="local", input="weather in Oslo?", tools=[WEATHER], stream=True
        )
    )
    done = events[-1]
    assert done.type == "response.completed"
    (call,) = done.response.output
    assert call.type == "function_call" and json.loads(call.arguments) == {"city": "Oslo"}
    output = {"type": "function_call_output", "call_id": call.call_id, "output": "-3 C"}
    answer = client.responses.create(
        model="local", previous_response_id=done.response.id, input=[output], tools=[WEATHER]
    )
    assert answer.output[0].type == "message"


class Trip(BaseModel):
    city: str
    days: int


def test_text_format_json_schema_through_the_sdk(
    client: openai.OpenAI, fake: FakeUpstreamThread
) -> None:
    parsed = client.responses.parse(model="local", input="a trip to Rome", text_format=Trip)
    assert isinstance(parsed.output_parsed, Trip)
    sent = _chat_bodies(fake)[-1]["response_format"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["name"] == "Trip"
    assert sent["json_schema"]["schema"]["required"] == ["city", "days"]


def test_previous_response_id_continues_over_two_turns(
    client: openai.OpenAI, fake: FakeUpstreamThread
) -> None:
    first = client.responses.create(model="local", input="my name is Ada", instructions="be nice")
    second = client.responses.create(
        model="local", input="what is my name?", previous_response_id=first.id
    )
    assert second.previous_response_id == first.id
    messages = _chat_bodies(fake)[-1]["messages"]
    # The stored turn comes back; the first turn's instructions do not (the spec's rule).
    assert messages == [
        {"role": "user", "content": "my name is Ada"},
        {"role": "assistant", "content": first.output_text},
        {"role": "user", "content": "what is my name?"},
    ]
    third = client.responses.create(model="local", input="and now?", previous_response_id=second.id)
    assert len(_chat_bodies(fake)[-1]["messages"]) == 5
    items = client.responses.input_items.list(third.id, order="asc")
    assert [i.type for i in items.data] == ["message"]


def test_retrieve_and_delete(client: openai.OpenAI) -> None:
    created = client.responses.create(model="local", input="remember this")
    fetched = client.responses.retrieve(created.id)
    assert fetched.id == created.id and fetched.output_text == created.output_text
    client.responses.delete(created.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(created.id)
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model="local", input="more", previous_response_id=created.id)
    assert info.value.body["param"] == "previous_response_id"  # type: ignore[index]


def test_input_items_pages_both_ways(client: openai.OpenAI) -> None:
    texts = [f"part {n}" for n in range(5)]
    created = client.responses.create(
        model="local", input=[{"role": "user", "content": t} for t in texts]
    )
    first = client.responses.input_items.list(created.id, order="asc", limit=2)
    assert [i.content[0].text for i in first.data] == texts[:2]  # type: ignore[union-attr]
    assert first.has_more
    rest = client.responses.input_items.list(created.id, order="asc", after=first.last_id)
    assert [i.content[0].text for i in rest.data] == texts[2:]  # type: ignore[union-attr]
    newest = client.responses.input_items.list(created.id, limit=1)
    assert newest.data[0].content[0].text == texts[-1]  # type: ignore[union-attr]


def test_each_turn_is_in_the_ledger(client: openai.OpenAI, tmp_path: Path) -> None:
    first = client.responses.create(model="local", input="one")
    list(
        client.responses.create(
            model="local", input="two", previous_response_id=first.id, stream=True
        )
    )
    with Ledger(tmp_path / "ledger.db") as ledger:
        rows = ledger.rows()
    assert [(r.route, r.status, r.stream) for r in rows] == [("local", 200, 0), ("local", 200, 1)]


def test_stream_falls_back_before_the_first_event(
    client: openai.OpenAI, fake: FakeUpstreamThread
) -> None:
    fake.add_fault(kind="status", status=503)
    raw = client.responses.with_raw_response.create(model="local", input="hi", stream=True)
    events = list(raw.parse())
    assert raw.headers["x-triage-route"] == "backup"
    assert raw.headers["x-triage-fallbacks"] == "1"
    assert [e.type for e in events][:2] == ["response.created", "response.in_progress"]
    assert events[-1].type == "response.completed"
    assert "fake reply from spare" in events[-1].response.output_text


def test_stream_cut_after_the_first_event_ends_with_response_failed(
    client: openai.OpenAI, fake: FakeUpstreamThread
) -> None:
    fake.add_fault(kind="cut_stream", after_chunks=3)
    events = list(client.responses.create(model="local", input="count to nine", stream=True))
    assert events[0].type == "response.created"
    assert any(e.type == "response.output_text.delta" for e in events)
    failed = events[-1]
    assert failed.type == "response.failed"
    assert failed.response.status == "failed"
    assert failed.response.error is not None and failed.response.error.code == "server_error"
    assert failed.response.error.message
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(failed.response.id)  # a failed turn is not continued


def test_a_backend_failure_before_any_event_is_an_openai_error(
    client: openai.OpenAI, fake: FakeUpstreamThread
) -> None:
    fake.add_fault(kind="status", status=503, times=2)
    with pytest.raises(openai.APIStatusError) as info:
        client.responses.create(model="local", input="hi", stream=True)
    assert info.value.status_code >= 500
    assert set(info.value.body) >= {"message", "type", "code"}  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": [{"type": "web_search_call", "id": "x"}]}, "input"),
        ({"input": [{"role": "robot", "content": "hi"}]}, "input"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
            "input",
        ),
        (
            {"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
            "input",
        ),
        ({"input": [{"type": "function_call_output", "output": "x"}]}, "input"),
        ({"input": ["not an item"]}, "input[0]"),
        ({"input": "hi", "tools": [{"type": "function"}]}, "tools[0].name"),
        ({"input": "hi", "tool_choice": {"type": "web_search"}}, "tool_choice"),
        ({"input": "hi", "text": {"format": {"type": "json_schema"}}}, "text"),
        ({"input": "hi", "temperature": 9}, "temperature"),
        ({}, "input"),
    ],
)
def test_hostile_requests_are_400s_naming_the_field(
    gateway: str, fake: FakeUpstreamThread, body: dict[str, Any], param: str
) -> None:
    response = httpx.post(gateway + "/v1/responses", json={"model": "local", **body})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
    assert not _chat_bodies(fake)  # refused before any upstream call


def test_client_fields_off_the_allow_list_never_reach_the_upstream(
    gateway: str, fake: FakeUpstreamThread
) -> None:
    body = {
        "model": "local",
        "input": "hi",
        "api_base": "http://evil.example",
        "mock_response": "pwned",
        "prompt_cache_key": "conv-1",
        "include": ["reasoning.encrypted_content"],
    }
    response = httpx.post(gateway + "/v1/responses", json=body)
    assert response.status_code == 200
    (sent,) = _chat_bodies(fake)
    assert not {"api_base", "mock_response", "include", "prompt_cache_key"} & set(sent)


def test_fixed_client_model_names_map_through_model_group_alias(
    fake: FakeUpstreamThread, tmp_path: Path
) -> None:
    """Codex sends its own model name: `router_settings.model_group_alias` maps it to a group,
    and the Response still names the model the client asked for."""
    config = _config(fake, tmp_path)
    data = config.model_dump(mode="json", exclude_none=True)
    data["router_settings"]["model_group_alias"] = {"gpt-5*": "backup"}
    mapped = config_from(data)
    with serve(create_app(mapped)) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        raw = client.responses.with_raw_response.create(model="gpt-5-codex", input="hi")
        with pytest.raises(openai.NotFoundError):
            client.responses.create(model="o4-unmapped", input="hi")
    assert raw.headers["x-triage-route"] == "backup"
    assert raw.parse().model == "gpt-5-codex"
    assert [b["model"] for b in _chat_bodies(fake)] == ["spare"]
