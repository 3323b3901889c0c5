"""Triage in front of a real llama.cpp server (llama-cpp-python) running a tiny generated model.

Every relayed response — chat, each stream chunk, models, embeddings, errors — is validated
against the official OpenAI spec. Chat and streaming run on both lanes; the rest on the lane
`auto` picks for `hosted_vllm/…` deployments (native). Run with `make test-real`.
"""

from __future__ import annotations

import json
import time

import httpx
import pytest

from tests.contract.openapi_spec import validate
from tests.real.gateway import (
    FORCED_TOOL,
    HELLO,
    SKIP_REASON,
    WEATHER_TOOL,
    Gateway,
    chat,
    llama_cpp_missing,
    stream_chunks,
    streamed_text,
)
from tests.real.server import LlamaServer

if llama_cpp_missing():
    pytest.skip(SKIP_REASON, allow_module_level=True)

pytestmark = pytest.mark.real


def test_chat_reply_from_llamacpp_matches_the_spec(any_lane: Gateway) -> None:
    response = chat(any_lane.url)
    assert response.status_code == 200, response.text
    body = response.json()
    validate(body, "CreateChatCompletionResponse")
    assert response.headers["x-triage-route"] == "tiny-a"
    assert body["choices"][0]["message"]["content"]
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 16
    assert body["usage"]["prompt_tokens"] > 0


def test_temperature_zero_gives_the_same_reply_from_either_alias(any_lane: Gateway) -> None:
    first = chat(any_lane.url, "tiny-a").json()["choices"][0]["message"]["content"]
    again = chat(any_lane.url, "tiny-a").json()["choices"][0]["message"]["content"]
    other = chat(any_lane.url, "tiny-b")
    assert other.headers["x-triage-route"] == "tiny-b"
    assert first == again == other.json()["choices"][0]["message"]["content"]


def test_every_llamacpp_stream_chunk_matches_the_spec(any_lane: Gateway) -> None:
    chunks = stream_chunks(any_lane.url)
    assert len(chunks) > 2
    for chunk in chunks:
        validate(chunk, "CreateChatCompletionStreamResponse")
    assert chunks[0]["choices"][0]["delta"].get("role") == "assistant"
    assert not any("usage" in chunk for chunk in chunks)


def test_stream_carries_the_same_text_as_the_plain_reply(any_lane: Gateway) -> None:
    plain = chat(any_lane.url, max_tokens=32).json()["choices"][0]["message"]["content"]
    assert streamed_text(stream_chunks(any_lane.url)) == plain


def test_max_completion_tokens_limits_the_llamacpp_reply(gateway: str) -> None:
    # llama-cpp-python ignores max_completion_tokens; Triage sends it as max_tokens.
    response = chat(gateway, max_tokens=None, max_completion_tokens=5)
    body = response.json()
    validate(body, "CreateChatCompletionResponse")
    assert body["usage"]["completion_tokens"] == 5


def test_request_with_tools_is_accepted_and_answered(gateway: str) -> None:
    response = chat(gateway, tools=[WEATHER_TOOL], tool_choice="auto")
    assert response.status_code == 200, response.text
    body = response.json()
    validate(body, "CreateChatCompletionResponse")
    assert body["choices"][0]["message"]["content"]


def test_forced_tool_choice_comes_back_as_a_tool_call(gateway: str) -> None:
    response = chat(gateway, tools=[WEATHER_TOOL], tool_choice=FORCED_TOOL, max_tokens=48)
    assert response.status_code == 200, response.text
    body = response.json()
    validate(body, "CreateChatCompletionResponse")
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    (call,) = choice["message"]["tool_calls"]
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"])["unit"] in {"c", "f"}


def test_logprobs_from_llamacpp_match_the_spec(gateway: str) -> None:
    response = chat(gateway, logprobs=True, top_logprobs=2, max_tokens=3)
    body = response.json()
    validate(body, "CreateChatCompletionResponse")
    tokens = body["choices"][0]["logprobs"]["content"]
    assert len(tokens) == 3
    assert all(len(token["top_logprobs"]) == 2 for token in tokens)


def test_json_object_response_format_reaches_llamacpp_grammar(gateway: str) -> None:
    # Random weights rarely close the object within the budget; the grammar still forces `{`.
    response = chat(gateway, response_format={"type": "json_object"})
    body = response.json()
    validate(body, "CreateChatCompletionResponse")
    content = body["choices"][0]["message"]["content"]
    assert content.startswith("{")
    assert content != chat(gateway).json()["choices"][0]["message"]["content"]


def test_embeddings_from_llamacpp_match_the_spec(gateway: str) -> None:
    response = httpx.post(
        gateway + "/v1/embeddings", json={"model": "embed", "input": ["one", "two words"]}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    validate(body, "CreateEmbeddingResponse")
    assert [item["index"] for item in body["data"]] == [0, 1]
    assert {len(item["embedding"]) for item in body["data"]} == {64}
    assert body["data"][0]["embedding"] != body["data"][1]["embedding"]
    assert body["usage"]["prompt_tokens"] > 0


def test_models_listing_matches_the_spec(gateway: str) -> None:
    listing = httpx.get(gateway + "/v1/models").json()
    validate(listing, "ListModelsResponse")
    assert {"auto", "tiny-a", "tiny-b", "embed", "dead"} <= {m["id"] for m in listing["data"]}
    validate(httpx.get(gateway + "/v1/models/tiny-b").json(), "Model")


def test_auto_request_follows_the_forced_task_route(gateway: str) -> None:
    response = httpx.post(
        gateway + "/v1/chat/completions",
        json={"model": "auto", "messages": HELLO, "max_tokens": 8},
        headers={"x-triage-task": "code"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    validate(response.json(), "CreateChatCompletionResponse")
    assert response.headers["x-triage-task"] == "code"
    assert response.headers["x-triage-route"] == "tiny-a"


def test_auto_request_is_classified_and_routed(gateway: str) -> None:
    prompt = "Summarize this: the river runs through Oslo and the gateway routes requests."
    response = httpx.post(
        gateway + "/v1/chat/completions",
        json={"model": "auto", "messages": [{"role": "user", "content": prompt}], "max_tokens": 8},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    validate(response.json(), "CreateChatCompletionResponse")
    task = response.headers["x-triage-task"]
    assert response.headers["x-triage-route"] == ("tiny-a" if task == "code" else "tiny-b")


def test_readiness_probes_the_real_server(gateway: str) -> None:
    body = httpx.get(gateway + "/health/ready", timeout=10).json()
    states = {item["id"]: item["state"] for item in body["deployments"]}
    assert states.pop("dead-1") != "healthy"
    assert set(states.values()) == {"healthy"}
    assert body["unavailable_groups"] == ["dead"]


def test_dead_deployment_falls_back_to_the_live_one(gateway: str) -> None:
    response = chat(gateway, "dead")
    assert response.status_code == 200, response.text
    validate(response.json(), "CreateChatCompletionResponse")
    assert response.headers["x-triage-route"] == "tiny-a"
    assert response.headers["x-triage-attempts"] == "2"
    assert response.headers["x-triage-fallbacks"] == "1"


def test_dead_deployment_stream_falls_back_before_the_first_byte(gateway: str) -> None:
    chunks = stream_chunks(gateway, model="dead")
    for chunk in chunks:
        validate(chunk, "CreateChatCompletionStreamResponse")
    assert streamed_text(chunks) == streamed_text(stream_chunks(gateway))


def test_context_overflow_from_llamacpp_is_an_openai_400(gateway: str) -> None:
    long = " ".join(["Oslo river mountain gateway"] * 300)
    response = chat(gateway, messages=[{"role": "user", "content": long}])
    assert response.status_code == 400, response.text
    validate(response.json(), "ErrorResponse")
    assert response.json()["error"]["code"] == "context_length_exceeded"


def test_llamacpp_500_is_an_openai_error_without_its_stack(gateway: str) -> None:
    # llama-cpp-python answers a request body it cannot validate with a 500 whose message
    # quotes a stack frame (`File ".../llama_cpp/server/app.py", line …`). 502 today; 400 would
    # be fairer (see the report on issue 7).
    schema = {"name": "w", "schema": {"type": "object"}}
    response = chat(gateway, response_format={"type": "json_schema", "json_schema": schema})
    assert response.status_code in (400, 502), response.text
    validate(response.json(), "ErrorResponse")
    assert "llama_cpp" not in response.text and "line " not in response.text


def test_client_disconnect_mid_stream_stops_llamacpp_generation(
    gateway: str, llama: LlamaServer
) -> None:
    disconnects, generations = llama.disconnects(), llama.generations()
    body = {"model": "tiny-b", "messages": HELLO, "max_tokens": 64, "stream": True}
    with httpx.stream("POST", gateway + "/v1/chat/completions", json=body, timeout=60) as r:
        next(line for line in r.iter_lines() if line.startswith("data: "))
    # Leaving the block dropped the connection after the first chunk of 64.
    deadline = time.monotonic() + 10
    while llama.disconnects() == disconnects:
        assert time.monotonic() < deadline, "Triage kept the upstream stream open"
        time.sleep(0.05)
    assert llama.generations() == generations, "the generation ran to its end"
    assert chat(gateway).status_code == 200
