"""What real client libraries rely on, through the openai SDK against the real app on a real
server: forced tool calls on the Ollama lane, one id and model per stream, embeddings under an
alias, `encoding_format` on every lane, and errors that never carry a library's own text."""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from pydantic import BaseModel

from tests.helpers import config_from, deployment, serve
from triage.api import create_app
from triage.config import ConfigError
from triage.fakeupstream import FakeUpstreamThread

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "the weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city", "days"],
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {
            "type": "object",
            "properties": {"zone": {"type": "string", "enum": ["UTC", "CET"]}},
            "required": ["zone"],
        },
    },
}
FORCE_WEATHER = {"type": "function", "function": {"name": "get_weather"}}
ASK = [{"role": "user", "content": "What should I pack for Paris?"}]


def _config(fake: FakeUpstreamThread, **triage: Any) -> Any:
    return config_from(
        {
            "model_list": [
                deployment("ollama", "ollama_chat/llama3.2", fake.url),
                deployment("ollama-gen", "ollama/llama3.2", fake.url),
                deployment("native", "hosted_vllm/llama", fake.url + "/v1"),
                deployment("emb-ollama", "ollama/nomic-embed-text", fake.url),
                deployment(
                    "emb-native",
                    "openai/text-embedding-3-small",
                    fake.url + "/v1",
                    params={"api_key": "k"},
                ),
                deployment(
                    "emb-litellm",
                    "openai/text-embedding-3-small",
                    fake.url + "/v1",
                    lane="litellm",
                    params={"api_key": "sk-emb"},
                ),
            ],
            "router_settings": {"num_retries": 0, "timeout": 10, "allowed_fails": 1000},
            "triage": {"ledger": {"enabled": False}, **triage},
        }
    )


@pytest.fixture
def gateway(fake: FakeUpstreamThread) -> Iterator[str]:
    with serve(create_app(_config(fake, embedding_route="emb-ollama"))) as url:
        yield url


@pytest.fixture
def client(gateway: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway + "/v1", api_key="unused", max_retries=0)


class Weather(BaseModel):
    city: str
    days: int


# --- forced tool_choice on the Ollama lane ------------------------------------------------


@pytest.mark.parametrize("model", ["ollama", "ollama-gen"])
def test_forced_tool_choice_on_ollama_answers_with_that_tool_call(
    client: openai.OpenAI, fake: FakeUpstreamThread, model: str
) -> None:
    reply = client.chat.completions.create(
        model=model, messages=ASK, tools=[WEATHER, TIME], tool_choice=FORCE_WEATHER
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    (call,) = choice.message.tool_calls or []
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "get_weather"
    Weather.model_validate_json(call.function.arguments)
    (sent,) = fake.requests()
    # The tool's schema constrains the answer; Ollama never sees a tool_choice it would drop.
    assert sent.json["format"] == WEATHER["function"]["parameters"]  # type: ignore[index]
    assert "tools" not in sent.json and "tool_choice" not in sent.json


def test_forced_tool_choice_streams_as_tool_call_deltas(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="ollama", messages=ASK, tools=[WEATHER], tool_choice=FORCE_WEATHER, stream=True
        )
    )
    deltas = [d for c in chunks if c.choices for d in c.choices[0].delta.tool_calls or []]
    assert len({d.id for d in deltas if d.id}) == 1 and deltas[0].id
    assert [d.function.name for d in deltas if d.function and d.function.name] == ["get_weather"]
    assert all(not (c.choices and c.choices[0].delta.content) for c in chunks)
    arguments = "".join(d.function.arguments or "" for d in deltas if d.function)
    Weather.model_validate_json(arguments)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"


def test_sdk_parse_with_a_pydantic_tool_on_ollama(client: openai.OpenAI) -> None:
    """What instructor and langchain do: a strict pydantic tool, forced, parsed by the SDK."""

    class Place(BaseModel):
        name: str
        country: str

    class Trip(BaseModel):
        destination: Place  # a nested model: `$ref` into `$defs` in the schema
        nights: int
        notes: str | None

    tool = openai.pydantic_function_tool(Trip)
    reply = client.chat.completions.parse(
        model="ollama",
        messages=ASK,
        tools=[tool],
        tool_choice={"type": "function", "function": {"name": "Trip"}},
    )
    (call,) = reply.choices[0].message.tool_calls or []
    assert isinstance(call.function.parsed_arguments, Trip)


def test_response_format_parse_on_ollama(client: openai.OpenAI) -> None:
    reply = client.chat.completions.parse(model="ollama", messages=ASK, response_format=Weather)
    assert isinstance(reply.choices[0].message.parsed, Weather)


@pytest.mark.parametrize("stream", [False, True])
def test_required_with_several_tools_calls_one_of_them(
    client: openai.OpenAI, fake: FakeUpstreamThread, stream: bool
) -> None:
    kwargs: dict[str, Any] = {"tools": [TIME, WEATHER], "tool_choice": "required"}
    if stream:
        chunks = list(
            client.chat.completions.create(model="ollama", messages=ASK, stream=True, **kwargs)
        )
        deltas = [d for c in chunks if c.choices for d in c.choices[0].delta.tool_calls or []]
        (delta,) = deltas  # the call comes whole, once its name is known
        assert delta.function is not None
        name, arguments = delta.function.name, delta.function.arguments or ""
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    else:
        reply = client.chat.completions.create(model="ollama", messages=ASK, **kwargs)
        (call,) = reply.choices[0].message.tool_calls or []
        name, arguments = call.function.name, call.function.arguments
        assert reply.choices[0].finish_reason == "tool_calls"
    assert name == "get_time"  # the fake answers the first branch of the choice
    assert json.loads(arguments) == {"zone": "UTC"}
    schema = fake.requests()[-1].json["format"]
    assert [b["properties"]["name"] for b in schema["anyOf"]] == [
        {"const": "get_time"},
        {"const": "get_weather"},
    ]


def test_tool_choice_naming_a_missing_tool_is_a_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="ollama",
            messages=ASK,
            tools=[TIME],
            tool_choice={"type": "function", "function": {"name": "rm_rf"}},
        )
    assert caught.value.param == "tool_choice"


def test_auto_tool_choice_on_ollama_is_left_to_the_model(
    client: openai.OpenAI, fake: FakeUpstreamThread
) -> None:
    client.chat.completions.create(model="ollama", messages=ASK, tools=[WEATHER])
    (sent,) = fake.requests()
    assert sent.json["tools"] and "format" not in sent.json


# --- one id, one model per stream ---------------------------------------------------------


@pytest.mark.parametrize("model", ["ollama", "native"])
def test_a_stream_has_one_id_and_the_non_stream_answers_model(
    client: openai.OpenAI, model: str
) -> None:
    whole = client.chat.completions.create(model=model, messages=ASK)
    chunks = list(
        client.chat.completions.create(
            model=model, messages=ASK, stream=True, stream_options={"include_usage": True}
        )
    )
    assert len(chunks) > 3
    assert {c.id for c in chunks} == {chunks[0].id}
    assert {c.model for c in chunks} == {whole.model}
    assert chunks[0].id.startswith("chatcmpl-") and whole.id.startswith("chatcmpl-")
    assert "/" not in whole.model  # never litellm's `provider/model` routing string


# --- embeddings ---------------------------------------------------------------------------


def test_embeddings_under_an_alias_use_the_embedding_route(
    gateway: str, client: openai.OpenAI
) -> None:
    raw = client.embeddings.with_raw_response.create(model="auto", input=["hello there"])
    assert raw.headers["x-triage-route"] == "emb-ollama"
    assert len(raw.parse().data[0].embedding) > 0


def test_embeddings_under_an_alias_without_a_route_name_the_setting(
    fake: FakeUpstreamThread,
) -> None:
    with serve(create_app(_config(fake))) as url:
        response = httpx.post(url + "/v1/embeddings", json={"model": "auto", "input": "hi"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert "triage.embedding_route" in error["message"] and error["param"] == "model"
    assert "litellm" not in error["message"].lower()
    assert fake.requests() == []


def test_an_unknown_embedding_route_is_a_path_named_config_error(
    fake: FakeUpstreamThread,
) -> None:
    with pytest.raises(ConfigError) as caught:
        _config(fake, embedding_route="nope")
    assert any("triage.embedding_route" in p for p in caught.value.problems)


def _floats(encoded: str) -> list[float]:
    raw = base64.b64decode(encoded)
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


@pytest.mark.parametrize("model", ["emb-ollama", "emb-native", "emb-litellm"])
def test_encoding_format_is_honoured_on_every_lane(gateway: str, model: str) -> None:
    texts = ["one", "two words"]

    def post(fmt: str | None) -> list[Any]:
        body: dict[str, Any] = {"model": model, "input": texts}
        if fmt is not None:
            body["encoding_format"] = fmt
        response = httpx.post(gateway + "/v1/embeddings", json=body, timeout=30)
        assert response.status_code == 200, response.text
        return [item["embedding"] for item in response.json()["data"]]

    as_base64, as_floats, default = post("base64"), post("float"), post(None)
    assert all(isinstance(e, str) for e in as_base64)
    assert all(isinstance(e, list) and isinstance(e[0], float) for e in as_floats + default)
    assert as_floats == default
    for encoded, floats in zip(as_base64, as_floats, strict=True):
        assert _floats(encoded) == pytest.approx(floats, abs=1e-6)
    # The SDK asks for base64 unless told otherwise, and decodes it.
    sdk = openai.OpenAI(base_url=gateway + "/v1", api_key="unused", max_retries=0)
    decoded = [d.embedding for d in sdk.embeddings.create(model=model, input=texts).data]
    for got, floats in zip(decoded, as_floats, strict=True):
        assert got == pytest.approx(floats, abs=1e-6)
