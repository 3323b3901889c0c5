"""The fake upstream's Ollama API against Ollama's own OpenAPI document in ../shared/specs: it
marks fields required that the `ollama` client's models (tests/unit) leave optional."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.contract.openapi_spec import validate
from triage.fakeupstream import FakeUpstreamThread

pytestmark = pytest.mark.shared

CHAT = {"model": "llama3", "messages": [{"role": "user", "content": "Why is the sky blue?"}]}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_current_weather",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
    },
}


def _lines(url: str, payload: dict[str, Any]) -> list[dict[str, Any]]:
    with httpx.stream("POST", url, json=payload) as response:
        return [json.loads(line) for line in response.iter_lines() if line]


def _answers(url: str) -> list[tuple[Any, str]]:
    *chunks, last = _lines(url + "/api/chat", CHAT)
    *parts, end = _lines(url + "/api/generate", {"model": "llama3", "prompt": "Tell me"})
    tool = {**CHAT, "tools": [WEATHER], "stream": False}
    tool["messages"] = [{"role": "user", "content": "What is the weather in Paris?"}]
    return [
        *[(chunk, "ChatStreamEvent") for chunk in chunks],
        (last, "ChatResponse"),
        (httpx.post(url + "/api/chat", json={**CHAT, "stream": False}).json(), "ChatResponse"),
        (httpx.post(url + "/api/chat", json=tool).json(), "ChatResponse"),
        *[(part, "GenerateStreamEvent") for part in parts],
        (end, "GenerateResponse"),
        (httpx.get(url + "/api/tags").json(), "ListResponse"),
        (
            httpx.post(url + "/api/embed", json={"model": "e", "input": ["a"]}).json(),
            "EmbedResponse",
        ),
        (httpx.get(url + "/api/version").json(), "VersionResponse"),
        (httpx.post(url + "/api/generate", json={"prompt": "hi"}).json(), "ErrorResponse"),
    ]


def test_the_fake_matches_ollamas_openapi_document(
    fake: FakeUpstreamThread, shared_dir: Path
) -> None:
    document = shared_dir / "specs" / "ollama" / "openapi.yaml"
    answers = _answers(fake.url)
    assert len(answers) > 10
    for body, schema in answers:
        validate(body, schema, document)
