"""The fake upstream's Ollama-native API: NDJSON streaming by default, nanosecond timings,
object tool arguments and Ollama-shaped errors.

Shapes are checked against the official `ollama` Python client's typed responses (pinned in the
`dev` extra), read strictly: exact JSON types and no key the client does not model, so a field
the fake invents or mistypes fails here rather than in a user's client.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

import httpx
import pytest
from ollama import (
    ChatResponse,
    EmbeddingsResponse,
    EmbedResponse,
    GenerateResponse,
    ListResponse,
    ProcessResponse,
    ShowResponse,
)
from pydantic import BaseModel, ValidationError

from triage.fakeupstream import FakeSettings, FakeUpstreamThread

Typed = TypeVar("Typed", bound=BaseModel)

CHAT = {"model": "llama3", "messages": [{"role": "user", "content": "Why is the sky blue?"}]}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_current_weather",
            "parameters": {
                "type": "object",
                "properties": {
                    "location": {"type": "string"},
                    "format": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                },
                "required": ["location", "format"],
            },
        },
    }
]
DURATIONS = ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration")
# Real Ollama sends these on every /api/chat and /api/generate object; the client's models
# leave them optional, so their presence is checked apart.
ALWAYS = {"model", "created_at", "done"}
OPENAI_STYLE = {"name": "get_current_weather", "arguments": '{"location": "Paris"}'}


def conforms(raw: str | bytes, model: type[Typed]) -> Typed:
    """Read one JSON document as the `ollama` client's model, strictly."""
    return model.model_validate_json(raw, strict=True, extra="forbid")


def conforms_generation(raw: str | bytes, model: type[Typed]) -> Typed:
    parsed = conforms(raw, model)
    assert parsed.model_fields_set >= ALWAYS, raw
    return parsed


def ndjson(url: str, payload: dict[str, Any]) -> tuple[httpx.Response, list[str]]:
    with httpx.stream("POST", url, json=payload) as response:
        lines = [line for line in response.iter_lines() if line]
    return response, lines


def test_chat_streams_ndjson_by_default(fake: FakeUpstreamThread) -> None:
    response, raw = ndjson(fake.url + "/api/chat", CHAT)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-ndjson"
    *chunks, last = [conforms_generation(line, ChatResponse) for line in raw]
    assert len(chunks) == 12 and all(c.done is False for c in chunks)
    assert all(c.message.role == "assistant" and c.model == "llama3" for c in chunks)
    text = "".join(c.message.content or "" for c in chunks)
    assert text == "fake reply from llama3: Why is the sky blue Why is the"
    assert last.done is True and last.done_reason == "stop"
    assert (last.prompt_eval_count, last.eval_count) == (5, 12)
    assert all(isinstance(last[k], int) and last[k] > 0 for k in DURATIONS)


def test_stream_false_returns_one_json_object(fake: FakeUpstreamThread) -> None:
    response = httpx.post(fake.url + "/api/chat", json={**CHAT, "stream": False})
    assert response.headers["content-type"].startswith("application/json")
    body = conforms_generation(response.content, ChatResponse)
    assert body.done is True
    assert (body.message.content or "").startswith("fake reply from llama3:")
    assert all(isinstance(body[k], int) for k in DURATIONS)


def test_durations_are_measured_in_nanoseconds() -> None:
    settings = FakeSettings(latency_ms=30, ttft_ms=60)
    with FakeUpstreamThread(settings) as fake:
        _, raw = ndjson(fake.url + "/api/chat", CHAT)
    last = json.loads(raw[-1])
    assert 30e6 <= last["load_duration"] < 1e9
    assert 60e6 <= last["prompt_eval_duration"] < 1e9
    assert last["total_duration"] >= 90e6
    assert last["total_duration"] >= last["load_duration"] + last["prompt_eval_duration"]


@pytest.mark.parametrize("stream", [False, True])
def test_tool_call_arguments_are_objects(fake: FakeUpstreamThread, stream: bool) -> None:
    payload = {
        "model": "qwen3",
        "messages": [{"role": "user", "content": "What is the weather today in Paris?"}],
        "tools": TOOLS,
        "stream": stream,
    }
    _, raw = ndjson(fake.url + "/api/chat", payload)
    lines = [conforms_generation(line, ChatResponse) for line in raw]
    calls = [c.model_dump() for line in lines for c in line.message.tool_calls or []]
    assert calls == [
        {
            "function": {
                "name": "get_current_weather",
                "arguments": {"location": "Paris", "format": "celsius"},
            }
        }
    ]
    assert lines[-1].done is True


def test_mid_stream_error_is_a_final_json_line_under_200(fake: FakeUpstreamThread) -> None:
    fake.add_fault(kind="stream_error", after_chunks=2, message="model runner crashed")
    response, raw = ndjson(fake.url + "/api/chat", CHAT)
    assert response.status_code == 200
    assert [conforms(line, ChatResponse).done for line in raw[:2]] == [False, False]
    assert [json.loads(line) for line in raw[2:]] == [{"error": "model runner crashed"}]


def test_errors_are_ollama_shaped(fake: FakeUpstreamThread) -> None:
    fake.add_fault(kind="status", status=500, message="out of memory")
    failed = httpx.post(fake.url + "/api/chat", json=CHAT)
    assert (failed.status_code, failed.json()) == (500, {"error": "out of memory"})

    missing = httpx.post(fake.url + "/api/generate", json={"prompt": "hi"})
    assert missing.status_code == 400
    body = missing.json()
    assert list(body) == ["error"] and isinstance(body["error"], str) and body["error"]


def test_generate_streams_and_honours_num_predict(fake: FakeUpstreamThread) -> None:
    payload = {"model": "llama3", "prompt": "Tell me a story", "options": {"num_predict": 5}}
    _, raw = ndjson(fake.url + "/api/generate", payload)
    lines = [conforms_generation(line, GenerateResponse) for line in raw]
    assert "".join(line.response or "" for line in lines) == "fake reply from llama3: Tell"
    assert lines[-1].done_reason == "length" and lines[-1].eval_count == 5

    plain = httpx.post(fake.url + "/api/generate", json={**payload, "stream": False})
    assert conforms_generation(plain.content, GenerateResponse).response == (
        "fake reply from llama3: Tell"
    )


@pytest.mark.parametrize(("path", "key"), [("/api/chat", "messages"), ("/api/generate", "prompt")])
def test_an_empty_prompt_only_loads_the_model(
    fake: FakeUpstreamThread, path: str, key: str
) -> None:
    body = {"model": "llama3", key: [] if key == "messages" else "", "stream": False}
    model = ChatResponse if key == "messages" else GenerateResponse
    loaded = conforms_generation(httpx.post(fake.url + path, json=body).content, model)
    assert (loaded.done, loaded.done_reason) == (True, "load")


def test_json_format_returns_json_content(fake: FakeUpstreamThread) -> None:
    response = httpx.post(fake.url + "/api/chat", json={**CHAT, "format": "json", "stream": False})
    body = conforms_generation(response.content, ChatResponse)
    assert json.loads(body.message.content or "")["reply"].startswith("fake reply")


def test_tags_embed_show_ps_and_version(fake: FakeUpstreamThread) -> None:
    fake.configure(models=["llama3:latest", "nomic-embed-text:latest"])
    tags = httpx.get(fake.url + "/api/tags").json()
    # Real Ollama sends each model's `name` beside `model`; the client reads only `model`.
    assert [m.pop("name") for m in tags["models"]] == ["llama3:latest", "nomic-embed-text:latest"]
    listed = conforms(json.dumps(tags), ListResponse)
    assert [m.model for m in listed.models] == ["llama3:latest", "nomic-embed-text:latest"]

    embedded = httpx.post(
        fake.url + "/api/embed", json={"model": "nomic-embed-text", "input": ["a", "b"]}
    )
    vectors = conforms(embedded.content, EmbedResponse).embeddings
    assert [len(v) for v in vectors] == [8, 8] and vectors[0] != vectors[1]
    legacy = httpx.post(fake.url + "/api/embeddings", json={"model": "e", "prompt": "a"})
    assert len(conforms(legacy.content, EmbeddingsResponse).embedding) == 8

    shown = conforms(httpx.post(fake.url + "/api/show", json={"model": "m"}).content, ShowResponse)
    assert shown.details is not None and "tools" in (shown.capabilities or [])
    assert conforms(httpx.get(fake.url + "/api/ps").content, ProcessResponse).models == []

    version = httpx.get(fake.url + "/api/version").json()
    assert list(version) == ["version"] and isinstance(version["version"], str)


@pytest.mark.parametrize(
    ("document", "model"),
    [
        ({"model": "m", "created_at": "t", "done": True, "invented": 1}, GenerateResponse),
        ({"model": "m", "created_at": "t", "done": True, "eval_count": 1.5}, GenerateResponse),
        ({"model": "m", "created_at": "t", "done": "true"}, GenerateResponse),
        ({"model": "m", "created_at": "t", "done": True}, ChatResponse),
        ({"message": {"role": "assistant", "tool_calls": [{"function": {}}]}}, ChatResponse),
        (  # OpenAI's JSON-string arguments are not Ollama's object arguments.
            {"message": {"role": "assistant", "tool_calls": [{"function": OPENAI_STYLE}]}},
            ChatResponse,
        ),
        ({"message": {"role": "assistant", "content": None, "refusal": None}}, ChatResponse),
        ({"embeddings": [["0.1"]]}, EmbedResponse),
        ({"models": [{"model": "m", "modified_at": "yesterday"}]}, ListResponse),
    ],
)
def test_the_check_refuses_what_the_client_would_not_model(
    document: dict[str, Any], model: type[BaseModel]
) -> None:
    with pytest.raises(ValidationError):
        conforms(json.dumps(document), model)


def test_a_generation_line_without_created_at_is_refused() -> None:
    with pytest.raises(AssertionError):
        conforms_generation('{"model": "m", "response": "", "done": false}', GenerateResponse)
