"""The fake upstream's Ollama-native API: NDJSON streaming by default, nanosecond timings,
object tool arguments and Ollama-shaped errors; shapes are checked against Ollama's OpenAPI spec
when it is available."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import yaml

from triage.fakeupstream import FakeSettings, FakeUpstreamThread

SPEC = Path(__file__).resolve().parents[3] / "shared" / "specs" / "ollama" / "openapi.yaml"
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


@cache
def _components() -> dict[str, Any]:
    return dict(yaml.safe_load(SPEC.read_text())["components"])


def conforms(document: Any, schema_name: str) -> None:
    """Validate against a schema of Ollama's own OpenAPI spec (../shared beside the clone)."""
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": _components()}
    jsonschema.validate(document, schema)


def ndjson(url: str, payload: dict[str, Any]) -> tuple[httpx.Response, list[dict[str, Any]]]:
    with httpx.stream("POST", url, json=payload) as response:
        lines = [json.loads(line) for line in response.iter_lines() if line]
    return response, lines


def test_chat_streams_ndjson_by_default(fake: FakeUpstreamThread) -> None:
    response, lines = ndjson(fake.url + "/api/chat", CHAT)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-ndjson"
    *chunks, last = lines
    assert len(chunks) == 12 and all(c["done"] is False for c in chunks)
    assert all(c["message"]["role"] == "assistant" and c["model"] == "llama3" for c in chunks)
    text = "".join(c["message"]["content"] for c in chunks)
    assert text == "fake reply from llama3: Why is the sky blue Why is the"
    assert last["done"] is True and last["done_reason"] == "stop"
    assert (last["prompt_eval_count"], last["eval_count"]) == (5, 12)
    assert all(isinstance(last[k], int) and last[k] > 0 for k in DURATIONS)
    for chunk in chunks:
        conforms(chunk, "ChatStreamEvent")
    conforms(last, "ChatResponse")


def test_stream_false_returns_one_json_object(fake: FakeUpstreamThread) -> None:
    response = httpx.post(fake.url + "/api/chat", json={**CHAT, "stream": False})
    body = response.json()
    assert response.headers["content-type"].startswith("application/json")
    assert body["done"] is True
    assert body["message"]["content"].startswith("fake reply from llama3:")
    conforms(body, "ChatResponse")


def test_durations_are_measured_in_nanoseconds() -> None:
    settings = FakeSettings(latency_ms=30, ttft_ms=60)
    with FakeUpstreamThread(settings) as fake:
        _, lines = ndjson(fake.url + "/api/chat", CHAT)
    last = lines[-1]
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
    _, lines = ndjson(fake.url + "/api/chat", payload)
    calls = [c for line in lines for c in line.get("message", {}).get("tool_calls", [])]
    assert calls == [
        {
            "function": {
                "name": "get_current_weather",
                "arguments": {"location": "Paris", "format": "celsius"},
            }
        }
    ]
    assert lines[-1]["done"] is True
    conforms(lines[0], "ChatResponse")


def test_mid_stream_error_is_a_final_json_line_under_200(fake: FakeUpstreamThread) -> None:
    fake.add_fault(kind="stream_error", after_chunks=2, message="model runner crashed")
    response, lines = ndjson(fake.url + "/api/chat", CHAT)
    assert response.status_code == 200
    assert [line.get("done") for line in lines[:2]] == [False, False]
    assert lines[2:] == [{"error": "model runner crashed"}]


def test_errors_are_ollama_shaped(fake: FakeUpstreamThread) -> None:
    fake.add_fault(kind="status", status=500, message="out of memory")
    failed = httpx.post(fake.url + "/api/chat", json=CHAT)
    assert (failed.status_code, failed.json()) == (500, {"error": "out of memory"})

    missing = httpx.post(fake.url + "/api/generate", json={"prompt": "hi"})
    assert missing.status_code == 400
    assert isinstance(missing.json()["error"], str)
    conforms(missing.json(), "ErrorResponse")


def test_generate_streams_and_honours_num_predict(fake: FakeUpstreamThread) -> None:
    payload = {"model": "llama3", "prompt": "Tell me a story", "options": {"num_predict": 5}}
    _, lines = ndjson(fake.url + "/api/generate", payload)
    assert "".join(line["response"] for line in lines) == "fake reply from llama3: Tell"
    assert lines[-1]["done_reason"] == "length" and lines[-1]["eval_count"] == 5
    for line in lines:
        conforms(line, "GenerateStreamEvent")

    plain = httpx.post(fake.url + "/api/generate", json={**payload, "stream": False}).json()
    assert plain["response"] == "fake reply from llama3: Tell"
    conforms(plain, "GenerateResponse")


def test_json_format_returns_json_content(fake: FakeUpstreamThread) -> None:
    body = httpx.post(
        fake.url + "/api/chat", json={**CHAT, "format": "json", "stream": False}
    ).json()
    assert json.loads(body["message"]["content"])["reply"].startswith("fake reply")


def test_tags_embed_and_version(fake: FakeUpstreamThread) -> None:
    fake.configure(models=["llama3:latest", "nomic-embed-text:latest"])
    tags = httpx.get(fake.url + "/api/tags").json()
    assert [m["name"] for m in tags["models"]] == ["llama3:latest", "nomic-embed-text:latest"]
    conforms(tags, "ListResponse")

    embedded = httpx.post(
        fake.url + "/api/embed", json={"model": "nomic-embed-text", "input": ["a", "b"]}
    ).json()
    assert [len(v) for v in embedded["embeddings"]] == [8, 8]
    assert embedded["embeddings"][0] != embedded["embeddings"][1]
    conforms(embedded, "EmbedResponse")

    version = httpx.get(fake.url + "/api/version").json()
    assert isinstance(version["version"], str)
    conforms(version, "VersionResponse")
