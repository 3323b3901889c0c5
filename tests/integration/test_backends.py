"""One test per backend: the exact request that leaves Triage and the response the client gets.

Local backends are played by the project's fake upstream on loopback (which records what it
received); cloud APIs are faked with respx at their real URLs, with the litellm lane on httpx.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import respx

from tests.helpers import config_from, deployment
from triage.api import create_app
from triage.engine.lanes import Lanes
from triage.fakeupstream import FakeUpstreamThread

CHAT = {"messages": [{"role": "user", "content": "hello there"}], "max_completion_tokens": 20}


async def _post(
    app: Any, body: dict[str, Any], path: str = "/v1/chat/completions"
) -> httpx.Response:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://localhost"
    ) as c:
        return await c.post(path, json=body)


def _app(entry: dict[str, Any], lane: str | None = None) -> Any:
    config = config_from({"model_list": [entry]})
    lanes = (
        Lanes(config, http_client="httpx", force=lane)
        if lane
        else Lanes(config, http_client="httpx")
    )
    return create_app(config, lanes=lanes)


@pytest.mark.parametrize(
    ("model", "suffix", "path"),
    [
        ("hosted_vllm/meta-llama/Llama-3.1-8B", "/v1", "/v1/chat/completions"),  # vLLM
        ("openai/llama3.2", "/v1", "/v1/chat/completions"),  # Ollama's /v1
        ("openai/tgi", "/v1", "/v1/chat/completions"),  # TGI's Messages API
        ("hosted_vllm/qwen2.5-0.5b", "/v1", "/v1/chat/completions"),  # llama.cpp server
    ],
    ids=["vllm", "ollama-v1", "tgi", "llamacpp"],
)
async def test_openai_protocol_backend_gets_the_expected_request(
    fake: FakeUpstreamThread, model: str, suffix: str, path: str
) -> None:
    app = _app(deployment("local", model, fake.url + suffix, params={"api_key": "k-1"}))
    response = await _post(app, {"model": "local", **CHAT})
    assert response.status_code == 200, response.text
    (sent,) = fake.requests()
    assert sent.path == path
    assert sent.json["model"] == model.split("/", 1)[1]
    assert sent.json["messages"] == CHAT["messages"]
    assert sent.json["max_tokens"] == 20 and "max_completion_tokens" not in sent.json
    assert sent.headers["authorization"] == "Bearer k-1"
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["content"]


async def test_ollama_native_chat_gets_api_chat(fake: FakeUpstreamThread) -> None:
    app = _app(deployment("local", "ollama_chat/llama3.2", fake.url))
    response = await _post(app, {"model": "local", **CHAT})
    assert response.status_code == 200, response.text
    (sent,) = fake.requests()
    assert sent.path == "/api/chat"
    assert sent.json["model"] == "llama3.2"
    assert sent.json["messages"][0]["content"] == "hello there"
    assert sent.json["options"]["num_predict"] == 20
    body = response.json()
    assert body["choices"][0]["message"]["content"]
    assert body["usage"]["completion_tokens"] > 0


def _openai_reply(model: str) -> dict[str, Any]:
    return {
        "id": "x-1",
        "object": "chat.completion",
        "created": 1,
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
        # Real APIs send these; litellm 1.101's Groq path fails without `service_tier`.
        "service_tier": "default",
        "system_fingerprint": "fp_1",
    }


@pytest.mark.parametrize(
    ("model", "url", "sent_model"),
    [
        ("openai/gpt-4o-mini", "https://api.openai.com/v1/chat/completions", "gpt-4o-mini"),
        (
            "groq/llama-3.1-8b-instant",
            "https://api.groq.com/openai/v1/chat/completions",
            "llama-3.1-8b-instant",
        ),
        (
            "together_ai/meta-llama/Llama-3-8b-chat-hf",
            "https://api.together.ai/v1/chat/completions",
            "meta-llama/Llama-3-8b-chat-hf",
        ),
    ],
    ids=["openai", "groq", "together"],
)
async def test_cloud_openai_protocol_backend(model: str, url: str, sent_model: str) -> None:
    app = _app(deployment("cloud", model, params={"api_key": "sk-cloud"}), lane="litellm")
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(url).mock(
            return_value=httpx.Response(200, json=_openai_reply(sent_model))
        )
        response = await _post(app, {"model": "cloud", **CHAT})
    assert response.status_code == 200, response.text
    sent = json.loads(route.calls.last.request.content)
    assert sent["model"] == sent_model
    assert sent["messages"] == CHAT["messages"]
    assert route.calls.last.request.headers["authorization"] == "Bearer sk-cloud"
    assert response.json()["choices"][0]["message"]["content"] == "ok"


async def test_anthropic_messages_api() -> None:
    app = _app(
        deployment("claude", "anthropic/claude-3-5-haiku-20241022", params={"api_key": "sk-ant"})
    )
    reply = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-3-5-haiku-20241022",
        "content": [{"type": "text", "text": "bonjour"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 4, "output_tokens": 2},
    }
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post("https://api.anthropic.com/v1/messages").mock(
            return_value=httpx.Response(200, json=reply)
        )
        response = await _post(app, {"model": "claude", **CHAT})
    assert response.status_code == 200, response.text
    request = route.calls.last.request
    sent = json.loads(request.content)
    assert sent["model"] == "claude-3-5-haiku-20241022"
    assert sent["max_tokens"] == 20
    assert sent["messages"][0]["role"] == "user"
    assert request.headers["x-api-key"] == "sk-ant"
    body = response.json()
    assert body["choices"][0]["message"]["content"] == "bonjour"
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"] == {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}
